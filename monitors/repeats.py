"""The line being written must not repeat the assignment right above it.

A small model that the members monitor steers away from its first choice often settles on the
statement it has just seen: ``self.pos = pos`` under ``self.pos = pos``. Assigning the same
call-free value to the same target twice in a row does nothing, so no project wants it. When
the cursor's line would end as a copy of the line above, the session rejects the token that
ends it with a rewind to the first token the model chose past the user's text: the decoder
tries its next choice there.

Language-agnostic, no analysis: the answer depends only on the request and the generated text.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .base import MonitorContext, MonitorStats, Rewind
from .textscan import line_start

__all__ = ["RepeatsMonitor", "is_idempotent_assignment"]

_WS = re.compile(r"\s+")
#: ``target = value`` (also ``+=``-style is excluded: repeating those changes the value), where
#: the value calls nothing: running it twice is running it once
_IDEMPOTENT = re.compile(r"[A-Za-z_$][\w$.]*(?:\[[^\]()]*\])?\s*(?::[^=()]*)?=(?!=)[^()]*")


def _norm(line: str) -> str:
    return _WS.sub(" ", line).strip()


class RepeatsSession:
    name = "repeats"

    def __init__(self, ctx: MonitorContext, above: str) -> None:
        self.ctx = ctx
        self.above = above
        self.head = ctx.text[line_start(ctx.text, ctx.offset) : ctx.offset]  # the line before where generation starts
        nl = ctx.text.find("\n", ctx.cursor)
        self.tail = ctx.text[ctx.cursor : len(ctx.text) if nl < 0 else nl]  # the line after the cursor
        self.healed = ctx.cursor - ctx.offset  # the user's text that token healing regenerates
        self.stats = MonitorStats()

    def check(self, generated: str, token: int, text: str | None) -> bool | Rewind:
        t0 = time.perf_counter()
        try:
            if "\n" in generated or len(generated) <= self.healed:
                return True  # only the cursor's own line, once the model wrote some of it
            if text and "\n" not in text and not self.ctx.vocab.is_control[token]:
                return True  # the line goes on
            line = self.head + generated + (text or "").split("\n", 1)[0] + self.tail
            self.stats.constrained.add(len(generated))
            if _norm(line).rstrip(";") == self.above:
                return Rewind(self.healed)  # the first token the model chose past the user's text
            return True
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000
            self.stats.checks += 1

    def allowed(self, generated: str) -> Any:
        return None  # rejections come with a rewind: the decoder tries its next choice there

    def describe(self) -> dict[str, Any]:
        return self.stats.as_dict()


class RepeatsMonitor:
    """No copy of the assignment above on the cursor's line."""

    name = "repeats"
    languages = frozenset({"python", "javascript", "typescript", "javascriptreact", "typescriptreact", "go", "rust",
                           "java", "c", "cpp", "csharp", "ruby", "php", "lua", "kotlin", "swift", "scala"})

    def start(self, ctx: MonitorContext) -> RepeatsSession | None:
        k = line_start(ctx.text, ctx.offset) - 1
        while k > 0:  # the last non-blank line above the cursor's
            start = line_start(ctx.text, k)
            above = ctx.text[start:k]
            if above.strip():
                break
            k = start - 1
        else:
            return None
        if not is_idempotent_assignment(above):
            return None
        return RepeatsSession(ctx, _norm(above).rstrip(";"))


def is_idempotent_assignment(line: str) -> bool:
    """``target = value`` whose value calls nothing (running it twice is running it once)."""
    norm = _norm(line).rstrip(";")
    return not norm.startswith(("#", "//")) and bool(_IDEMPOTENT.fullmatch(norm)) and "==" not in norm
