"""What a constraint's ``check`` answers: one of four verdicts, told apart with ``isinstance``.

* ``ACCEPT`` (``True``): the token may come next.
* ``REJECT`` (``False``): it may not; the decoder tries its next candidate.
* ``Pending``: undecided, the analysis it needs is still running. The decoder accepts the
  token provisionally and asks again once ``done()``.
* ``Rewind``: a rejection that also says the text went wrong earlier, at ``to`` characters of
  the generated text; the decoder may roll back to the token that produced that character and
  try its next choice there.

``verdict_kind`` is the one place that tells them apart; nothing else inspects a verdict's
attributes.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Final, Literal

__all__ = ["ACCEPT", "REJECT", "Pending", "Rewind", "Shift", "Verdict", "verdict_kind"]

ACCEPT: Final = True
REJECT: Final = False


class Pending:
    """An undecided answer: the analysis it needs is still running.

    The decode loop accepts the token provisionally and asks again once ``done()``; by then the
    constraint answers ACCEPT or REJECT (after the deadline: ACCEPT, "no opinion").
    """

    __slots__ = ("deadline", "future")

    def __init__(self, future: concurrent.futures.Future, deadline: float) -> None:
        self.future = future
        self.deadline = deadline

    def done(self) -> bool:
        return self.future.done() or time.monotonic() >= self.deadline

    def wait(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining > 0 and not self.future.done():
            concurrent.futures.wait([self.future], timeout=remaining)

    def __bool__(self) -> bool:  # never mistaken for a verdict
        raise TypeError("a Pending answer is neither True nor False")


class Rewind:
    """A rejection that also says the generated text went wrong earlier, at ``to`` characters.

    The decode loop may roll back to the token that produced that character and try its next
    choice there (bounded per request): a dead end found late is undone, not papered over.
    """

    __slots__ = ("to",)

    def __init__(self, to: int) -> None:
        self.to = int(to)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Rewind(to={self.to})"


Verdict = bool | Pending | Rewind


class Shift:
    """A soft answer (a penalty's): add ``amount`` to the logits of ``ids`` before choosing.
    With ``end``, a choice among ``ids`` despite the shift ends the suggestion before it (the
    model insists on what the penalty argues against: favour the end)."""

    __slots__ = ("amount", "end", "ids")

    def __init__(self, ids, amount: float, end: bool = False) -> None:
        self.ids = ids
        self.amount = float(amount)
        self.end = end

    def __repr__(self) -> str:
        return f"Shift({len(self.ids)} ids, {self.amount:+.3f}{', end' if self.end else ''})"


def verdict_kind(v: object) -> Literal["accept", "reject", "pending", "rewind"]:
    """Which of the four verdicts ``v`` is (numpy booleans count as booleans)."""
    if isinstance(v, Pending):
        return "pending"
    if isinstance(v, Rewind):
        return "rewind"
    return "accept" if v else "reject"
