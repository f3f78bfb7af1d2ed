"""Per-token constraints: one small class per rule, one call contract.

A constraint answers two questions about the text generated so far (``generated``, decoded,
starting at the decode start -- healed text included):

* ``check(generated, token, text) -> Verdict``: may this token come next? ACCEPT (True),
  REJECT (False), ``Pending`` (an analysis is still running) or ``Rewind`` (rejected, and the
  text went wrong earlier), see ``monitors.verdicts``. Called on the decoder's preferred token
  first; cheap (microseconds).
* ``allowed(generated) -> ndarray | None``: the ids that may come next, asked only after
  ``check`` has rejected candidates; None means "no opinion".
* optionally ``may_end(generated) -> bool`` (the ``Ending`` protocol): may the suggestion end
  as exactly this text?
* optionally ``penalty(generated)`` (the ``Penalty`` protocol): amounts added to some tokens'
  logits before the decoder chooses (the repetition penalty).

Answers depend only on (request context, ``generated``), never on hidden state, so rolling back
a rejected draft costs nothing. A constraint that raises is disabled for the request by the
decoder ("no opinion"), never failing the completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from monitors.verdicts import Shift, Verdict
from monitors.vocabulary import Vocabulary

__all__ = ["Constraint", "Ending", "HealingConstraint", "Penalty"]


@runtime_checkable
class Constraint(Protocol):
    name: str

    def check(self, generated: str, token: int, text: str | None) -> Verdict:
        """May ``token`` (whose text is ``text``; None for control/opaque tokens) follow ``generated``?"""
        ...

    def allowed(self, generated: str) -> np.ndarray | None:
        """Token ids that may follow ``generated`` (None: no opinion). Does not change state."""
        ...


@runtime_checkable
class Ending(Protocol):
    """A constraint that also judges where generation ends."""

    name: str

    def may_end(self, generated: str) -> bool:
        """May the suggestion be exactly ``generated``? Asked before an end token or a stop
        rule ends generation there (a refusal: the model makes its next choice instead)."""
        ...


@runtime_checkable
class Penalty(Protocol):
    """A constraint that also shifts the model's scores (a soft rule, not a verdict)."""

    name: str

    def penalty(self, generated: str) -> Sequence[Shift] | None:
        """Shifts of some tokens' logits for the token after ``generated`` (``Shift``: ids,
        amount, and whether choosing one anyway ends the suggestion); None: nothing. Asked at
        every step: cheap unless it applies. Does not change state."""
        ...


class HealingConstraint:
    """Token healing: the output must start with ``required`` (the backed-off prompt text)."""

    name = "healing"

    def __init__(self, required: str, vocab: Vocabulary) -> None:
        if not required:
            raise ValueError("required: healing needs a non-empty text")
        self.required = required
        self.vocab = vocab
        self._single = bool(len(vocab.ids_starting_with(required)))

    def active(self, generated: str) -> bool:
        return len(generated) < len(self.required)

    def check(self, generated: str, token: int, text: str | None) -> bool:
        if len(generated) >= len(self.required):
            return True
        if text is None:
            return False
        rest = self.required[len(generated) :]
        if not generated and self._single:
            # the backed-off text was one or more whole tokens, and one token starts with all of
            # it: require that, as the tokenizer would (" " then "n" is not how " n" tokenizes)
            return text.startswith(rest)
        return text.startswith(rest) or rest.startswith(text)

    def allowed(self, generated: str) -> np.ndarray | None:
        if len(generated) >= len(self.required):
            return None
        rest = self.required[len(generated) :]
        if not generated and self._single:
            return self.vocab.ids_starting_with(rest)
        return self.vocab.ids_consistent_with(rest)
