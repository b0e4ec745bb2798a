"""WIT filtering: a text-quality filter, then NLLB-CLIP image-caption similarity >= the profile's threshold.
Each filter is a small step that keeps or drops a row with a reason (`filters`), dropped rows go to an
exclusion file, and every step reports a `pipeline.stats.StepStats`. Entry functions in `run`; the model
in `clip`, the score cache in `cache`, the images in `images`."""
