"""CLI: ``python -m pipeline.training --stage N`` (also ``python -m pipeline.train``). See recipe.main."""
import sys

from pipeline.training.recipe import main

sys.exit(main())
