"""The analysis worker: static analysis in its own process.

jedi is pure Python. Run on a thread of the server it holds the GIL while the decode loop wants
it back after every llama.cpp call, and on a 2-core laptop that slows generation far more than
the analysis itself costs. In a separate process it runs truly in parallel on the other core,
keeps its caches warm between requests, and a crash or a hang in it cannot take the server
down (the worker is restarted).

Jobs are plain tuples ``(kind, *args)``; ``run`` dispatches them. The same function runs
in-process when a worker process cannot be used (``AnalysisRunner(process=False)``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["initialize", "run"]

_analyzers: dict[tuple[str | None, bool], Any] = {}
_root: str | None = None


def initialize(root: str | None = None) -> None:
    """Worker-process initializer."""
    global _root
    _root = root
    logging.basicConfig(level=logging.WARNING)


def _analyzer(dynamic: bool = False):
    key = (_root, dynamic)
    a = _analyzers.get(key)
    if a is None:
        from .python.jedi_analysis import JediAnalyzer

        a = _analyzers[key] = JediAnalyzer(_root, dynamic_params=dynamic)
    return a


def run(kind: str, *args: Any) -> Any:
    """Run one analysis job; exceptions propagate to the caller's future."""
    if kind == "py-members":
        return _analyzer().members(*args)
    if kind == "py-imports":
        return _analyzer().import_names(*args)
    if kind == "py-signatures":
        return _analyzer().signatures(*args)
    if kind == "py-members-truth":  # jedi with its default settings (the eval's truth)
        return _analyzer(True).members(*args)
    if kind == "py-signatures-truth":
        return _analyzer(True).signatures(*args)
    if kind == "warm-up":
        _analyzer().warm_up()
        return True
    if kind == "ping":
        return True
    raise ValueError(f"unknown analysis job {kind!r}")
