"""What the measurement tools know about static analysis that the engine does not need.

* ``TruthWorker``: jedi as the eval's source of truth, in a process of its own, started by the
  tool. jedi with call-site inference (``dynamic_params``) builds far more than the monitors'
  analyses do: in the monitors' worker its garbage and caches would slow the analyses being
  measured (an editor's worker never runs it), and in the tool's process it would hold the GIL
  the decode loop wants back after every llama.cpp call.
* ``trigger_job_ms``: the monitors' worker's own time (no queueing) for the analyses monitors
  ask for at their triggers, read from the runner's record of finished jobs
  (``AnalysisRunner.job_ms``).
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

__all__ = ["TRIGGER_JOBS", "TRUTH_TASKS", "TruthWorker", "trigger_job_ms"]

#: the jedi analyses monitors ask for at their triggers (``monitors.worker.run`` job kinds)
TRIGGER_JOBS = frozenset({"py-members", "py-signatures", "py-imports"})

#: eval task -> the ``JediAnalyzer`` query that gives a site's truth
TRUTH_TASKS = {"members": "members", "calls": "signatures", "names": "scope_names"}


def trigger_job_ms(runner: Any, since: int = 0, min_lines: int = 0) -> list[float]:
    """The worker's own ms of the monitors' trigger analyses among ``runner.job_ms[since:]``
    (an ``AnalysisRunner``'s), in documents of at least ``min_lines`` lines (warm-ups left out)."""
    return [ms for kind, ms, lines in list(runner.job_ms)[since:] if kind in TRIGGER_JOBS and lines >= min_lines]


def _serve(conn: Any, root: str | None) -> None:
    """The truth process: answer jobs from ``conn`` until it is closed (the tool ended, however
    it ended: the pipe's other end is gone and ``recv`` raises EOFError)."""
    logging.basicConfig(level=logging.WARNING)
    analyzer = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            if job[0] == "ping":
                reply: tuple[bool, Any] = (True, True)
            else:
                task, before, after, path = job
                if analyzer is None:
                    from monitors.python.jedi_analysis import JediAnalyzer

                    analyzer = JediAnalyzer(root, dynamic_params=True)  # jedi with its default settings
                reply = (True, getattr(analyzer, TRUTH_TASKS[task])(before, after, path))
        except Exception as exc:
            reply = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class TruthWorker:
    """jedi with its default settings (call-site inference on) in a process of its own: the
    truth of ``steercode eval`` at a site, asked one site at a time."""

    def __init__(self, root: str | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process running llama.cpp's threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, root), name="steercode-truth", daemon=True)
        self._proc.start()
        child.close()

    def _ask(self, job: tuple, timeout: float) -> Any:
        self._conn.send(job)
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the truth worker gave no answer in {timeout:.0f} s")
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"truth analysis failed: {value}")
        return value

    def ping(self, timeout: float = 120) -> bool:
        """Wait until the process is up."""
        return self._ask(("ping",), timeout)

    def truth(self, task: str, before: str, after: str, path: str | None, timeout: float = 300) -> Any:
        """jedi's answer for ``task`` (a ``TRUTH_TASKS`` key) at the end of ``before``: member
        or scope names (a frozenset), or signatures (a tuple); None when jedi knows nothing."""
        if task not in TRUTH_TASKS:
            raise ValueError(f"no truth for task {task!r} (known: {', '.join(TRUTH_TASKS)})")
        return self._ask((task, before, after, path), timeout)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(5)
        if self._proc.is_alive():  # stuck in an analysis
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()

    def __enter__(self) -> TruthWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
