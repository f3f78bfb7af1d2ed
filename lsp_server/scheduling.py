"""Running engine work off the event loop: one worker thread, supersede and cancel per document.

The model is single: completions run one at a time on a dedicated thread. Each request gets a
``CancelToken``; a newer request for the same key (document URI) cancels the older one's token
("superseded"), and a client ``$/cancelRequest`` (asyncio cancellation of the awaiting task)
cancels it too ("client"). The decode loop checks the token between evaluations, so a cancelled
generation stops within one token's time, not at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import TypeVar

from completion.decoding import CancelToken

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Scheduler"]


class Scheduler:
    def __init__(self, name: str = "steercode-engine") -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._active: dict[str, CancelToken] = {}
        self._background: CancelToken | None = None

    def cancel_all(self, reason: str = "shutdown") -> None:
        for token in list(self._active.values()):
            token.cancel(reason)

    async def run(self, key: str, fn: Callable[[CancelToken], T]) -> T:
        """Run ``fn(token)`` on the worker thread; a newer run with the same key cancels this one."""
        if self._background is not None:  # a request always beats idle-time work
            self._background.cancel("request")
            self._background = None
        token = CancelToken()
        prev = self._active.get(key)
        if prev is not None:
            prev.cancel("superseded")
        self._active[key] = token
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn, token)
        try:
            return await fut
        except asyncio.CancelledError:
            token.cancel("client")
            raise
        finally:
            if self._active.get(key) is token:
                del self._active[key]

    def schedule_background(self, fn: Callable[[CancelToken], object]) -> None:
        """Queue idle-time work; the next request cancels it (it stops within one token)."""
        if self._background is not None:
            self._background.cancel("superseded")
        token = CancelToken()
        self._background = token

        def run() -> None:
            if token.is_set():
                return
            try:
                fn(token)
            except Exception:
                log.warning("background work failed", exc_info=True)

        self._executor.submit(run)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the worker thread (serialized with completions)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def shutdown(self) -> None:
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
