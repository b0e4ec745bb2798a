"""CLI: ``python -m pipeline.training --stage N`` (also ``python -m pipeline.train``); see `cli.py`."""
import sys

from pipeline.training.cli import main

sys.exit(main())
