"""`python -m pipeline.evaluate score ...`: see pipeline/evaluate/cli.py."""
import sys

from pipeline.evaluate.cli import main

if __name__ == "__main__":
    sys.exit(main())
