"""Files steercode keeps: its cache directory and the sha256 it checks them by.

Imports nothing of the project, so that ``models`` (which needs ``backend``) and ``vocab_head``
(which ``backend`` needs) can both use it without an import cycle.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "sha256"]


def cache_dir() -> Path:
    """steercode's cache directory ($STEERCODE_CACHE_DIR, else $XDG_CACHE_HOME/steercode)."""
    env = os.environ.get("STEERCODE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steercode"


def sha256(path: Path) -> str:
    """The file's sha256, read in 1 MB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
