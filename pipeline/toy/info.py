"""The info file every toy model keeps beside its weights (settings key, training stats, evaluation):
read it as a cache entry (None when missing or torn), write it atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.lake import write_text_atomic


def read_info(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_info(path: Path, info: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(info, ensure_ascii=False, indent=1))
