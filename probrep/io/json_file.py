"""JSON summaries, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from probrep.io.files import atomic_open


def write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write JSON atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    return Path(path)
