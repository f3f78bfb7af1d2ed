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
import os
import time
from typing import Any

from .languages import LANGUAGE_SERVERS, ts_install_dir

log = logging.getLogger(__name__)

__all__ = ["initialize", "run"]

_analyzers: dict[str | None, Any] = {}
_root: str | None = None


def initialize(root: str | None = None) -> None:
    """Worker-process initializer."""
    global _root
    _root = root
    logging.basicConfig(level=logging.WARNING)
    import multiprocessing

    if multiprocessing.parent_process() is not None:  # a worker process (not a thread of the server)
        import threading

        _gc_setup()

        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="steercode-parent-watch",
                         daemon=True).start()


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """End this worker, and the language servers it started, once the process that started it
    is gone: killed with SIGKILL (or SIGTERM without a handler) it cannot shut its pool down,
    and the worker, typescript-language-server and tsserver stayed behind, orphaned."""
    import threading

    while os.getppid() == parent:
        time.sleep(interval)
    stoppers = [threading.Thread(target=_stop, args=(ctx,), daemon=True) for _, ctx in list(_servers.values())]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(3)
    os._exit(0)


def _analyzer():
    a = _analyzers.get(_root)
    if a is None:
        from .python.jedi_analysis import JediAnalyzer

        a = _analyzers[_root] = JediAnalyzer(_root)
    return a


def run(kind: str, *args: Any) -> Any:
    """Run one analysis job; exceptions propagate to the caller's future."""
    if kind == "py-members":
        return _analyzer().members(*args)
    if kind == "py-imports":
        return _analyzer().import_names(*args)
    if kind == "py-signatures":
        return _analyzer().signatures(*args)
    if kind == "lsp-members":
        return _lsp_members(*args)
    if kind == "warm-up":
        _analyzer().warm_up()
        return True
    if kind == "warm-done":  # the warm-up's last job: its state stays (see _gc_freeze)
        _gc_freeze()
        return True
    if kind == "gc-stats":
        return gc_stats()
    if kind == "warm-members":  # (before,): put its members in the type cache
        _analyzer().members(args[0], "\n", None)
        return True
    if kind == "ping":
        return True
    raise ValueError(f"unknown analysis job {kind!r}")


# ---- garbage collection between jobs ------------------------------------------------------
#
# jedi's parse trees and inference state are reference cycles. With Python's automatic
# collection, collections ran inside analyses: young ones every 700 allocations, promoting the
# analysis's live temporaries until they reached the old generation dead, and every 30 or so
# analyses a full collection over the ~500,000 objects of the parse cache (150-450 ms, in
# whichever analysis was running). Here the worker collects between jobs: after each job, the
# young generations while its result is on its way (what the job allocated is garbage by then,
# so little is promoted); a full collection only once the process has grown by GROWTH since the
# last one and no job has come for IDLE_FULL_S (the user stopped typing), or at once when it
# has grown by three times that. The warm-up's state is frozen (``gc.freeze``): full collections
# never look at it again. A young collection still runs by itself after 500,000 allocations
# with none (a burst of jobs with no gap between them), so memory stays bounded.

IDLE_FULL_S = 2.0
GROWTH = 64 * 1024 * 1024  # bytes of resident memory
_gc_state: dict[str, Any] = {"jobs": 0, "running": False, "rss_base": 0, "log": [], "t0": 0.0}
_gc_wake: Any = None


def _gc_setup() -> None:
    import gc
    import threading

    global _gc_wake
    # not ``gc.disable()``: parso turns collection back on after loading a cached parse
    gc.set_threshold(500_000, 1_000_000, 1_000_000)
    gc.callbacks.append(_gc_timing)
    _gc_state["rss_base"] = _rss()
    _gc_wake = threading.Condition()
    threading.Thread(target=_collector, name="steercode-gc", daemon=True).start()


def _rss() -> int:
    """Resident memory in bytes (0 where /proc is not there: then no full collections are
    started here, and Python's own thresholds still bound the heap)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _gc_timing(phase: str, info: dict) -> None:
    st = _gc_state
    if phase == "start":
        st["t0"] = time.perf_counter()
    else:
        log_ = st["log"]
        log_.append((info["generation"], (time.perf_counter() - st["t0"]) * 1000, st["running"]))
        if len(log_) > 4096:
            del log_[:2048]


def _collector() -> None:
    import gc

    st = _gc_state
    while True:
        with _gc_wake:
            _gc_wake.wait()
        time.sleep(0.002)  # the job's result goes out first
        if st["running"]:
            continue  # the next job came at once: it collects after itself
        gc.collect(1)
        grown = _rss() - st["rss_base"]
        if grown < GROWTH or st["rss_base"] == 0:
            continue
        if grown < 3 * GROWTH:
            jobs = st["jobs"]
            with _gc_wake:
                _gc_wake.wait(IDLE_FULL_S)
            if st["running"] or st["jobs"] != jobs:
                continue  # not idle: later
        gc.collect()
        st["rss_base"] = _rss()


def _gc_after_job() -> None:
    st = _gc_state
    st["running"] = False
    st["jobs"] += 1
    if _gc_wake is not None:
        with _gc_wake:
            _gc_wake.notify_all()


def _gc_freeze() -> None:
    """Collect, then freeze what is left (the warm-up's state): full collections skip it."""
    import gc

    if _gc_wake is None:
        return  # analysing on a thread of the server: its collection is left as it is
    gc.collect()
    gc.freeze()
    _gc_state["rss_base"] = _rss()


def gc_stats() -> dict:
    """Collections so far: per generation, how many, their ms in all and the longest; those
    that ran during a job are counted apart."""
    import gc

    out: dict[str, Any] = {}
    for gen, ms, in_job in _gc_state["log"]:
        c = out.setdefault(f"gen{gen}" + ("_in_job" if in_job else ""), [0, 0.0, 0.0])
        c[0] += 1
        c[1] = round(c[1] + ms, 1)
        c[2] = round(max(c[2], ms), 1)
    out["rss_mb"] = round(_rss() / 2**20, 1)
    out["frozen"] = gc.get_freeze_count()
    return out


def run_timed(kind: str, *args: Any) -> tuple[Any, float]:
    """``run``, and how long the job itself took in ms (the worker's own clock: no queueing)."""
    _gc_state["running"] = True
    try:
        t0 = time.perf_counter()
        result = run(kind, *args)
        return result, (time.perf_counter() - t0) * 1000
    finally:
        _gc_after_job()


# ---- language servers (multilspy), one per (language, root), started on first use -------------

_servers: dict[tuple[str, str], Any] = {}
_scratch: str | None = None


def _server(language_key: str, root: str):
    key = (language_key, root)
    srv = _servers.get(key)
    if srv is not None:
        return srv
    import shutil

    from multilspy import SyncLanguageServer
    from multilspy.multilspy_config import Language, MultilspyConfig
    from multilspy.multilspy_logger import MultilspyLogger

    logging.getLogger("multilspy").setLevel(logging.WARNING)
    lang, exe = LANGUAGE_SERVERS[language_key]
    cfg = MultilspyConfig(code_language=Language(lang), server_install_dir=str(ts_install_dir()) if exe is None else None)
    if exe is not None:
        cfg.server_binary = shutil.which(exe)
    lsp = SyncLanguageServer.create(cfg, MultilspyLogger(), root, timeout=30)
    for name in ("multilspy", "multilspy.lsp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = lsp.start_server()
    ctx.__enter__()
    import atexit

    atexit.register(lambda: _stop(ctx))
    _servers[key] = (lsp, ctx)
    return _servers[key]


def _stop(ctx) -> None:
    try:
        ctx.__exit__(None, None, None)
    except Exception:
        pass


def _lsp_members(language_key: str, root: str | None, path: str | None, before: str, after: str):
    """Member names after ``before``'s trailing dot, from the language's server (None: unknown)."""
    import tempfile

    global _scratch
    code = before + after
    line = before.count("\n")
    col = len(before) - (before.rfind("\n") + 1)
    if path and os.path.isfile(path):
        root = root or os.path.dirname(os.path.abspath(path))
        rel = os.path.relpath(os.path.abspath(path), root)
        if rel.startswith(".."):
            root, rel = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    else:  # an unsaved document: give the server a scratch file with its text
        if _scratch is None:
            _scratch = tempfile.mkdtemp(prefix="steercode-lsp-")
        root = _scratch
        ext = {"typescript": ".ts", "tsx": ".tsx", "javascript": ".js", "go": ".go", "rust": ".rs", "cpp": ".cpp", "c": ".c"}
        rel = "scratch" + ext.get(language_key, ".txt")
        with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
            f.write(code)
    lsp, _ = _server(language_key, root)
    with lsp.open_file(rel):
        old = lsp.get_open_file_text(rel)
        ol = old.count("\n")
        oc = len(old) - (old.rfind("\n") + 1)
        lsp.delete_text_between_positions(rel, {"line": 0, "character": 0}, {"line": ol, "character": oc})
        lsp.insert_text_at_position(rel, 0, 0, code)
        comps = lsp.request_completions(rel, line, col)
    # 1 Text, 14 Keyword, 15 Snippet: not members (servers offer them for untyped values)
    names = frozenset(c["completionText"] for c in comps if c.get("kind") not in (1, 14, 15))
    return names or None
