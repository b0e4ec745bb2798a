"""MMMU evaluation, scored exactly like the official MMMU code (MMMU-Benchmark/MMMU, eval/).

- `subjects.py`: the 30 subjects in the official order and their six disciplines.
- `prompts.py`: the official prompt for a question and its options.
- `scoring.py`: response parsing, per-question judging, per-subject/discipline/overall tallies.
- `cli.py`: `python -m pipeline.evaluate score PATH [--answers FILE] [--out DIR]`.
"""
