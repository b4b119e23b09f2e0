"""zerosum's on-disk cache of derived artefacts (converted models, CFR+ tables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where zerosum caches derived artefacts: `$ZEROSUM_CACHE`, else ~/.cache/zerosum."""
    root = os.environ.get("ZEROSUM_CACHE") or Path.home() / ".cache" / "zerosum"
    return Path(root)
