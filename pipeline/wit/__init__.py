"""WIT filtering (next step): a text-quality filter, then NLLB-CLIP image-caption similarity >= the
profile's threshold. Each filter is a small step that keeps or drops a row with a reason, dropped rows
go to an exclusion file, and every step reports a `pipeline.stats.StepStats`."""
