"""Training shards (next step): Arrow IPC files per (dataset, language) with a manifest, and the stage
mixtures that read them by weight."""
