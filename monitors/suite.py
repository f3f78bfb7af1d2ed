"""The monitors of one engine: built from settings, sharing one analysis thread.

``MonitorSuite.sessions(ctx)`` asks every enabled monitor for a session for this request; a
monitor that raises is skipped for the request (logged), never failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .base import AnalysisRunner, MonitorContext

log = logging.getLogger(__name__)

__all__ = ["ALL_MONITORS", "MonitorSuite"]

#: every monitor steercode has; the LSP-backed ones cover TypeScript/JavaScript (and more when
#: their language servers are installed)
ALL_MONITORS = ("members", "calls", "imports", "names", "lsp", "repeats", "syntax", "repetition")


class MonitorSuite:
    def __init__(
        self, enabled: Iterable[str] = ALL_MONITORS, timeout_ms: float = 300.0, root: str | None = None,
        runner: AnalysisRunner | None = None,
    ) -> None:
        self.enabled = tuple(n for n in ALL_MONITORS if n in set(enabled))
        self.timeout_ms = timeout_ms
        self.root = root
        #: the analysis worker; one given by the caller is shared with other suites and outlives this one
        self._own_runner = runner is None
        self.runner = AnalysisRunner(root=root) if runner is None else runner
        self._monitors: list[Any] | None = None
        self._jedi = None
        self._lsp = None
        self._closed = False
        self._no_analysis = False

    @property
    def warm_state(self) -> str:
        """"cold", "warming" (jobs queued one at a time) or "warm": the worker's, which a suite
        sharing it finds as the one before left it."""
        return "warm" if self._no_analysis else self.runner.warm_state

    def _build(self) -> list[Any]:
        if self._monitors is not None:
            return self._monitors
        monitors: list[Any] = []
        py = [n for n in self.enabled if n in ("members", "calls", "imports", "names")]
        if py:
            try:
                from .python.calls import CallsMonitor
                from .python.names import ImportsMonitor, MembersMonitor, NamesMonitor

                classes = {"members": MembersMonitor, "imports": ImportsMonitor, "names": NamesMonitor, "calls": CallsMonitor}
                for n in py:
                    monitors.append(classes[n](self.runner, self.timeout_ms))
                self._jedi = True
            except Exception:
                log.warning("Python monitors unavailable", exc_info=True)
        if "lsp" in self.enabled:
            try:
                from .lsp import LspMembersMonitor

                self._lsp = LspMembersMonitor(self.runner, max(self.timeout_ms, 1000.0), root=self.root)
                if self._lsp.languages:
                    monitors.append(self._lsp)
            except Exception:
                log.warning("LSP-backed monitors unavailable", exc_info=True)
        if "repeats" in self.enabled:
            from .repeats import RepeatsMonitor

            monitors.append(RepeatsMonitor())
        if "syntax" in self.enabled:
            from .grammar import SyntaxMonitor

            monitors.append(SyntaxMonitor())
        if "repetition" in self.enabled:
            from .repetition import RepetitionMonitor

            monitors.append(RepetitionMonitor())
        self._monitors = monitors
        return monitors

    def warm_up(self) -> None:
        """Load jedi and its builtins in the analysis worker, then cache the members of common
        types (does not block). The type analyses are queued one at a time, each when the one
        before it is done, so a completion's own analysis never waits behind more than one."""
        self._build()
        if self._jedi is None:
            self._no_analysis = True  # no Python monitors: nothing to warm up
            return
        from .python.jedi_analysis import WARM_MEMBERS

        jobs = [("warm-up",)] + [("warm-members", before) for before in WARM_MEMBERS] + [("warm-done",)]

        def step(i: int, fut=None) -> None:
            if fut is not None and (fut.cancelled() or self._closed):
                if self.runner.warm_state == "warming":
                    self.runner.warm_state = "cold"  # the next suite on this worker starts it again
                return  # shut down
            if i >= len(jobs):
                self.runner.warm_state = "warm"
                return
            try:
                fut = self.runner.submit(jobs[i], jobs[i])
            except RuntimeError as exc:  # the interpreter is exiting: no new work
                log.debug("analysis warm-up stopped: %s", exc)
                return
            fut.add_done_callback(lambda f: step(i + 1, f))

        if self.runner.warm_state == "cold":
            self.runner.warm_state = "warming"
            step(0)

    def sessions(self, ctx: MonitorContext) -> list[Any]:
        out = []
        for m in self._build():
            if ctx.language not in m.languages:
                continue
            try:
                s = m.start(ctx)
            except Exception as exc:
                log.warning("monitor %s failed to start (%s: %s); no opinion for this request", m.name, type(exc).__name__, exc)
                continue
            if s is not None:
                out.append(s)
        return out

    def close(self) -> None:
        self._closed = True
        if self._lsp is not None:
            try:
                self._lsp.close()
            except Exception:
                log.debug("closing the LSP monitor failed", exc_info=True)
        if self._own_runner:
            self.runner.shutdown()
