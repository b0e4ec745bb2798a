"""The process-group environment a launcher (torchrun, deepspeed) sets, read without importing torch."""
from __future__ import annotations

import os

DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launch_rank() -> int:
    """This process's global rank as its launcher set it (0 when started alone; an empty value is unset)."""
    return int(os.environ.get("RANK") or 0)
