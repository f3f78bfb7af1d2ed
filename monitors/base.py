"""The monitor protocol and the machinery every monitor shares.

A **Monitor** is created once per engine; ``start(ctx)`` looks at one request and returns a
**session** (or None when it has nothing to say there). A session is a constraint for the decode
loop: ``check(generated, token, text)`` and ``allowed(generated)``, where ``generated`` is the
text produced since the decode start. Its answers are a function of (request context, generated
text) only -- analysis results are memoized by the text they were computed from, which never
changes the answer -- so rollback is free.

Static analysis runs on ``AnalysisRunner``'s thread with a time budget: a result that does not
arrive in time means "no opinion" for that trigger (the analysis still completes in the
background and fills the cache for the next request).
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import concurrent.futures.process
import contextlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import worker
from .verdicts import Pending, Rewind
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

__all__ = [
    "AnalysisRunner",
    "Pending",
    "Rewind",
    "Monitor",
    "MonitorContext",
    "MonitorStats",
    "NameSet",
    "TIMEOUT",
]


@dataclass(frozen=True)
class MonitorContext:
    """One request as monitors see it: text, offsets, a vocabulary. Never the model."""

    text: str  # the whole document
    offset: int  # decode start: generated text is inserted here (cursor - healed text)
    cursor: int  # the cursor
    language: str
    path: str | None
    vocab: Vocabulary
    root: str | None = None  # project root for analysis
    multiline: bool = False  # the suggestion may be a block (else: one line)

    @property
    def base(self) -> str:
        return self.text[: self.offset]

    @property
    def after_cursor_line(self) -> str:
        """The document after the cursor's line (what analysis keeps of the suffix)."""
        nl = self.text.find("\n", self.cursor)
        return "" if nl < 0 else self.text[nl:]


@dataclass
class MonitorStats:
    """What a session did, for the completion's stats and the server log."""

    triggers: int = 0
    analyses: int = 0
    analysis_ms: list[float] = field(default_factory=list)
    timeouts: int = 0
    semantic_hits: int = 0  # analyses answered by an equal semantic key
    errors: list[str] = field(default_factory=list)
    check_ms: float = 0.0  # time inside check()/allowed(), analysis waits included
    wait_ms: float = 0.0  # of which waiting for analysis results
    checks: int = 0
    constrained: set[int] = field(default_factory=set)  # generated lengths where a rule was in force

    @property
    def overhead_ms(self) -> float:
        """Time spent deciding, without waiting for the analysis."""
        return max(0.0, self.check_ms - self.wait_ms)

    def as_dict(self) -> dict[str, Any]:
        return {
            "constrained_tokens": len(self.constrained),
            "overhead_ms": round(self.overhead_ms, 3),
            "wait_ms": round(self.wait_ms, 1),
            "triggers": self.triggers,
            "analyses": self.analyses,
            "analysis_ms": [round(x, 1) for x in self.analysis_ms],
            "timeouts": self.timeouts,
            "semantic_hits": self.semantic_hits,
            "errors": list(self.errors),
            "check_ms": round(self.check_ms, 3),
            "checks": self.checks,
        }


class Monitor(Protocol):
    name: str
    languages: frozenset[str]

    def start(self, ctx: MonitorContext) -> Any | None:
        """A session (a constraint) for this request, or None when there is nothing to say."""
        ...


class _Timeout:
    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT: Any = _Timeout()


@contextlib.contextmanager
def _hidden_main():
    """Start worker processes without re-running the caller's ``__main__`` module in them.

    multiprocessing's "spawn" re-imports the parent's main script in each child; a script that
    is not guarded by ``if __name__ == "__main__"`` would run again there (loading a second
    model on a 2-core machine). The worker needs nothing from ``__main__``.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            if "__spec__" in saved:
                main.__spec__ = None
            if "__file__" in saved:
                del main.__file__
        yield
    finally:
        if main is not None:
            for k, v in saved.items():
                setattr(main, k, v)


class AnalysisRunner:
    """Runs static analysis jobs (``monitors.worker.run(*job)``) with a time budget and a cache.

    By default in a separate worker process (see ``monitors.worker``); with ``process=False``,
    or when a process cannot be started, on one dedicated thread. Either way jobs run one at a
    time (jedi is not thread-safe), results are cached by key (and by any alias keys), and a
    failed job yields None: "no opinion".
    """

    def __init__(self, cache_size: int = 512, *, process: bool = True, root: str | None = None) -> None:
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, concurrent.futures.Future] = {}
        # re-entrant: shutting the pool down cancels queued jobs, whose done-callbacks run at
        # once on the same thread and take this lock too
        self._lock = threading.RLock()
        self._cache_size = cache_size
        #: (job kind, ms, document lines) of the latest finished jobs, timed by the worker itself
        #: (no queueing): the ms every job's future carries anyway (``worker.run_timed``), kept
        #: for whoever wants to know what the analyses cost (the benchmarks report them)
        self.job_ms: collections.deque[tuple[str, float, int]] = collections.deque(maxlen=10000)
        self._running = 0
        self._root = root
        self._want_process = process
        self._executor: concurrent.futures.Executor | None = None
        self._closed = False  # shut down: a job that dies with the pool is no failure
        self.mode = "none"
        #: the worker's warm-up (``MonitorSuite.warm_up``): "cold", "warming" or "warm"
        self.warm_state = "cold"

    # ---- executor ------------------------------------------------------------------------
    def _ensure_executor(self) -> concurrent.futures.Executor:
        if self._executor is not None:
            return self._executor
        self._closed = False
        if self._want_process:
            try:
                import multiprocessing

                ctx = multiprocessing.get_context("spawn")
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=ctx, initializer=worker.initialize, initargs=(self._root,)
                )
                self.mode = "process"
                return self._executor
            except Exception:
                log.warning("could not start the analysis process; analysing on a thread", exc_info=True)
        worker.initialize(self._root)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="steercode-analysis")
        self.mode = "thread"
        return self._executor

    @property
    def root(self) -> str | None:
        return self._root

    def _restart(self) -> None:
        ex, self._executor = self._executor, None
        self.warm_state = "cold"  # a new worker process has none of the old one's caches
        if ex is not None:
            procs = getattr(ex, "_processes", None) or {}
            for proc in list(procs.values()):
                try:
                    proc.terminate()
                except Exception:
                    pass
            ex.shutdown(wait=False, cancel_futures=True)

    def busy(self) -> bool:
        """True while an analysis is queued or running (it then needs a CPU core)."""
        return self._running > 0

    # ---- jobs ----------------------------------------------------------------------------
    def submit(self, key: Hashable, job: tuple, aliases: tuple[Hashable, ...] = ()) -> concurrent.futures.Future:
        """Start (or join) the analysis for ``key``; its result is cached when it arrives. The
        future's value is (result, the job's own ms)."""
        with self._lock:
            if key in self._cache:
                fut: concurrent.futures.Future = concurrent.futures.Future()
                fut.set_result((self._cache[key], 0.0))  # like a job's: (result, ms)
                self._cache.move_to_end(key)
                return fut
            pending = self._pending.get(key)
            if pending is not None:
                return pending
            try:
                with _hidden_main():
                    inner = self._ensure_executor().submit(worker.run_timed, *job)
            except Exception:  # a broken pool: restart it once
                self._restart()
                with _hidden_main():
                    inner = self._ensure_executor().submit(worker.run_timed, *job)
            self._running += 1
            self._pending[key] = inner

        def done(f: concurrent.futures.Future) -> None:
            try:
                result, ms = f.result()
                lines = 1 + sum(part.count("\n") for part in job[1:3] if isinstance(part, str))  # before + after
                self.job_ms.append((job[0], ms, lines))
            except concurrent.futures.CancelledError:
                result = None  # the pool shut down before the job ran
            except Exception as exc:  # analysis failure or a dead worker: "no opinion"
                result = None
                broken = isinstance(exc, concurrent.futures.process.BrokenProcessPool)
                if broken and self._closed:  # shut down mid-job: the worker was stopped on purpose
                    log.debug("analysis %s stopped: the runner shut down", job[0])
                else:
                    log.warning("analysis %s failed: %s: %s", job[0], type(exc).__name__, exc)
                    if broken:
                        with self._lock:
                            self._restart()
            with self._lock:
                self._running -= 1
                self._pending.pop(key, None)
                for k in (key, *aliases):
                    self._cache[k] = result
                    self._cache.move_to_end(k)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)

        inner.add_done_callback(done)
        return inner

    def prefetch(self, key: Hashable, job: tuple, semantic_key: Callable[[], str | None]) -> bool:
        """Start ``job`` ahead of need, unless its answer is already known: under ``key``, or
        under ``semantic_key()`` (asked only on a miss). True when it was started (or joined)."""
        if self.cached(key) is not TIMEOUT:
            return False
        skey = semantic_key()
        if skey is not None and self.cached(("semantic", skey)) is not TIMEOUT:
            return False  # answered from the semantic cache when asked
        self.submit(key, job, (("semantic", skey),) if skey is not None else ())
        return True

    def resolve(
        self, key: Hashable, job: tuple, deadlines: dict[Hashable, float], timeout_s: float, aliases: tuple[Hashable, ...] = ()
    ) -> Any:
        """The result if ready, TIMEOUT once past the deadline, else a Pending for it.

        The deadline runs from the first time ``key`` was asked for in this request.
        """
        cached = self.cached(key)
        if cached is not TIMEOUT:
            return cached
        deadline = deadlines.setdefault(key, time.monotonic() + timeout_s)
        fut = self.submit(key, job, aliases)
        if fut.done():
            c = self.cached(key)
            if c is not TIMEOUT:
                return c
            try:
                return fut.result()[0]  # done, but its callback has not filled the cache yet
            except Exception:
                return None
        if time.monotonic() >= deadline:
            return TIMEOUT
        return Pending(fut, deadline)

    def analyse(
        self,
        key: Hashable,
        job: tuple,
        semantic_key: Callable[[], str | None],
        deadlines: dict[Hashable, float],
        timeout_s: float,
        stats: MonitorStats,
    ) -> Any:
        """``resolve`` as monitors use it: a miss first tries the semantic cache (analyses that
        must agree whatever else the document says, under ``semantic_key()``), and ``stats`` record
        semantic hits, analyses with their time, and timeouts. The result, TIMEOUT, or a Pending.
        """
        fresh = self.cached(key) is TIMEOUT
        skey = semantic_key() if fresh else None
        if skey is not None:
            hit = self.cached(("semantic", skey))
            if hit is not TIMEOUT:
                self.put(key, hit)
                stats.semantic_hits += 1
                fresh = False
        aliases = (("semantic", skey),) if skey is not None else ()
        result = self.resolve(key, job, deadlines, timeout_s, aliases)
        if isinstance(result, Pending):
            return result
        if result is TIMEOUT:
            stats.timeouts += 1
        elif fresh or key in deadlines:
            stats.analyses += 1
            started = deadlines.get(key, time.monotonic() + timeout_s) - timeout_s
            stats.analysis_ms.append((time.monotonic() - started) * 1000)
        return result

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def cached(self, key: Hashable) -> Any:
        with self._lock:
            return self._cache.get(key, TIMEOUT)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def call(self, job: tuple, timeout: float | None = None) -> Any:
        """Run ``job`` now (uncached) and wait for it."""
        with self._lock:
            ex = self._ensure_executor()
            with _hidden_main():
                fut = ex.submit(worker.run, *job)
        return fut.result(timeout=timeout)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._restart()


class NameSet:
    """A set of legal names with the two queries monitors need, and its token sets.

    ``admits(word, complete)``: is ``word`` a legal name (complete) or a prefix of one?
    ``tokens(word, vocab)``: ids of the tokens that can follow a partial identifier ``word``:
    the next piece of a legal name, or the rest of one followed by a non-identifier character.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        self._set = frozenset(self.names)
        self._token_cache: dict[str, np.ndarray] = {}
        self._spaced: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._set

    def admits(self, word: str, complete: bool) -> bool:
        if complete:
            return word in self._set
        i = bisect.bisect_left(self.names, word)
        return i < len(self.names) and self.names[i].startswith(word)

    def completions(self, word: str) -> list[str]:
        i = bisect.bisect_left(self.names, word)
        out = []
        while i < len(self.names) and self.names[i].startswith(word):
            out.append(self.names[i])
            i += 1
        return out

    def tokens(self, word: str, vocab: Vocabulary) -> np.ndarray:
        cached = self._token_cache.get(word)
        if cached is not None:
            return cached
        parts = []
        for name in self.completions(word):
            rest = name[len(word) :]
            if rest:
                parts.append(vocab.ids_prefix_of(rest))
            parts.append(vocab.finishing_word(rest))
        ids = np.unique(np.concatenate(parts)).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
        self._token_cache[word] = ids
        return ids

    def spaced_tokens(self, vocab: Vocabulary) -> np.ndarray:
        """Ids of the tokens that start a legal name after a space (`` ``, `` na``, `` name``):
        where a name may start after ``=`` or ``(``, the model's next token may be one of them
        (token healing backs off `` 计`` after ``y =``: without these, nothing was allowed)."""
        if self._spaced is None:
            parts = [vocab.ids_prefix_of(" " + name) for name in self.names]
            self._spaced = np.unique(np.concatenate(parts)).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
        return self._spaced
