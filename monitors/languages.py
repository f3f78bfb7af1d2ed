"""Which languages have a language server for the LSP-backed monitors, and where it lives.

Data and paths only (standard library, no monitor code): the monitor (``monitors.lsp``) asks
which languages it can serve, the analysis worker (``monitors.worker``) starts their servers,
and ``steercode install-servers`` / ``doctor`` install and report them. Keeping the table here
lets all three import it at module level without importing each other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["LANGUAGE_SERVERS", "TS_PACKAGES", "server_status", "ts_binary", "ts_install_dir"]

#: what ``steercode install-servers`` installs with npm (pinned: the monitor was checked against them)
TS_PACKAGES = ("typescript@5.5.4", "typescript-language-server@4.3.3")

#: grammar key -> (multilspy language, executable on PATH, or None for the npm-installed TS server)
LANGUAGE_SERVERS: dict[str, tuple[str, str | None]] = {
    "typescript": ("typescript", None),
    "tsx": ("typescript", None),
    "javascript": ("javascript", None),
    "go": ("go", "gopls"),
    "rust": ("rust", "rust-analyzer"),
    "cpp": ("cpp", "clangd"),
    "c": ("cpp", "clangd"),
}


def ts_install_dir() -> Path:
    """Where ``steercode install-servers`` puts typescript-language-server."""
    env = os.environ.get("STEERCODE_CACHE_DIR")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steercode"
    return base / "ts-lsp"


def ts_binary() -> Path:
    """The typescript-language-server executable ``install-servers`` installs (it may be missing)."""
    return ts_install_dir() / "node_modules" / ".bin" / "typescript-language-server"


def server_status() -> dict[str, str]:
    """Language -> 'ok' or why it is skipped (for ``steercode doctor``)."""
    out = {}
    for key, (_, exe) in LANGUAGE_SERVERS.items():
        if exe is None:
            if not shutil.which("node"):
                out[key] = "skipped: node is not installed"
            elif ts_binary().exists():
                out[key] = "ok"
            else:
                out[key] = "skipped: run `steercode install-servers`"
        else:
            out[key] = "ok" if shutil.which(exe) else f"skipped: {exe} not on PATH"
    return out
