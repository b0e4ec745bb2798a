"""``python -m pipeline.train --stage N [--no-resume] [--max-steps K]``: see `pipeline.training.cli`."""
import sys

from pipeline.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
