"""Training shards: Arrow IPC files per (dataset, language) with a manifest, and the stage mixtures that read
them by weight.

- `sets`: every dataset the paper trains on, as a registry of shard-set specs (`SHARD_SETS`);
- `templates`: the instruction templates (stage-1 captions, Flores pairs, XStoryCloze endings, WIT);
- `writer`: the shard schema and the atomic, deterministic, resumable writer of one shard set;
- `reader`: reads a set back, each file checked against the manifest (`ShardCorruptError` names it);
- `mixture`: the profile's stage mixtures resolved against the lake (`check_mixture`);
- `run`: the entry functions of the assets (`build_shards`, `resolve_mixtures`); `python -m pipeline.shards`.
"""
