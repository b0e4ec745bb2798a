"""``python -m pipeline.train --stage N [--no-resume] [--max-steps K]``: one training stage of the active
profile (MMG4_CONFIG), single process or under ``deepspeed``/``torchrun``. The recipe is
`pipeline.training.recipe`."""
import sys

from pipeline.training.recipe import main

if __name__ == "__main__":
    sys.exit(main())
