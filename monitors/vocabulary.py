"""Token vocabulary index: which tokens can continue a given text.

Built once per model from the token pieces (bytes) the backend reports, then shared by every
request. It answers the questions constrained decoding asks, without scanning the vocabulary in
Python:

* ``ids_starting_with(s)``  -- tokens whose text starts with ``s`` (a contiguous range of the
  sorted token texts, found by binary search);
* ``ids_prefix_of(s)``      -- tokens whose text is a non-empty prefix of ``s`` (``len(s)`` dict
  lookups);
* ``ids_consistent_with(s)`` -- the union of the two: every token that keeps the generated text
  on track to reproduce ``s`` (token healing);
* ``word_run``              -- for each token, the length of its leading run of identifier
  characters, so a monitor can ask "finish this name, then break" with one numpy comparison.

Control tokens (``<eos>``, FIM markers, ...) and "opaque" tokens whose bytes are not valid UTF-8 on
their own (byte-fallback pieces such as ``<0xE2>``) have no text here: they never match a text
query. The index never sees the model; it is plain data.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Vocabulary", "is_word_char"]

_WORD_RUN = re.compile(r"\w*")
_MAX_CHAR = "\U0010ffff"


def is_word_char(ch: str) -> bool:
    """True for characters that can be part of an identifier (Unicode word characters)."""
    return ch == "_" or ch.isalnum()


class Vocabulary:
    """Immutable index over a model's token texts.

    ``pieces[i]`` is the byte string token ``i`` contributes to the output; ``control`` lists
    token ids that are not text (special/control tokens).
    """

    def __init__(self, pieces: Sequence[bytes], control: Iterable[int] = ()) -> None:
        if not pieces:
            raise ValueError("pieces: a vocabulary needs at least one token")
        self.size = len(pieces)
        self.pieces: list[bytes] = list(pieces)
        self.is_control = np.zeros(self.size, dtype=bool)
        for tid in control:
            if not 0 <= tid < self.size:
                raise ValueError(f"control: token id {tid} is outside the vocabulary (size {self.size})")
            self.is_control[tid] = True
        self.is_opaque = np.zeros(self.size, dtype=bool)
        control_set = set(np.nonzero(self.is_control)[0].tolist())
        texts: list[str | None] = [None] * self.size
        word_run = np.zeros(self.size, dtype=np.int32)
        opaque: list[int] = []
        match = _WORD_RUN.match
        for tid, piece in enumerate(self.pieces):
            if tid in control_set:
                continue
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError:
                opaque.append(tid)
                continue
            if not text:
                opaque.append(tid)
                continue
            texts[tid] = text
            c = text[0]
            if c == "_" or c.isalnum():
                word_run[tid] = match(text).end()  # type: ignore[union-attr]
        self.is_opaque[opaque] = True
        self._texts = texts
        self.word_run = word_run
        text_ids = [i for i, t in enumerate(texts) if t is not None]
        tl: list[str] = [texts[i] for i in text_ids]  # type: ignore[misc]
        order = sorted(range(len(tl)), key=tl.__getitem__)
        self._sorted_texts: list[str] = [tl[k] for k in order]
        self._sorted_ids = np.asarray(text_ids, dtype=np.int32)[np.asarray(order, dtype=np.int64)]
        # exact text -> end of its range in the sorted arrays (duplicates are adjacent)
        self._exact_end: dict[str, int] = dict(zip(self._sorted_texts, range(1, len(tl) + 1), strict=False))
        self.max_text_len = max(map(len, tl), default=0)
        self._text_ids = np.asarray(text_ids, dtype=np.int32)

    # ---- single tokens -------------------------------------------------------------------
    def text(self, tid: int) -> str | None:
        """The token's text, or None for control and opaque (partial UTF-8) tokens."""
        return self._texts[tid]

    def ids_for_text(self, text: str) -> np.ndarray:
        """Ids of the tokens whose text is exactly ``text`` (usually zero or one)."""
        r = self._exact_range(text)
        return self._sorted_ids[r[0] : r[1]] if r else _EMPTY

    def _exact_range(self, text: str) -> tuple[int, int] | None:
        hi = self._exact_end.get(text)
        if hi is None:
            return None
        lo = hi - 1
        while lo > 0 and self._sorted_texts[lo - 1] == text:
            lo -= 1
        return lo, hi

    # ---- queries -------------------------------------------------------------------------
    def ids_starting_with(self, prefix: str) -> np.ndarray:
        """Ids of text tokens whose text starts with ``prefix`` (all text tokens for '')."""
        if not prefix:
            return self._text_ids
        lo = bisect.bisect_left(self._sorted_texts, prefix)
        hi = bisect.bisect_left(self._sorted_texts, prefix + _MAX_CHAR, lo)
        if lo >= hi:
            return _EMPTY
        return self._sorted_ids[lo:hi]

    def ids_prefix_of(self, s: str) -> np.ndarray:
        """Ids of tokens whose text is a non-empty prefix of ``s`` (including ``s`` itself)."""
        ends = self._exact_end
        found = [self._exact_range(s[:k]) for k in range(1, min(len(s), self.max_text_len) + 1) if s[:k] in ends]
        if not found:
            return _EMPTY
        if len(found) == 1:
            lo, hi = found[0]  # type: ignore[misc]
            return self._sorted_ids[lo:hi]
        return np.concatenate([self._sorted_ids[r[0] : r[1]] for r in found if r])

    def ids_consistent_with(self, required: str) -> np.ndarray:
        """Tokens that keep the output on track to start with ``required``.

        A token qualifies when its text starts with ``required`` or is a non-empty prefix of it.
        """
        longer = self.ids_starting_with(required)
        shorter = self.ids_prefix_of(required)
        if not len(shorter):
            return longer
        return np.union1d(longer, shorter).astype(np.int32)

    def has_longer_than(self, text: str) -> bool:
        """True if some token's text starts with ``text`` and is strictly longer."""
        lo = bisect.bisect_right(self._sorted_texts, text)
        return lo < len(self._sorted_texts) and self._sorted_texts[lo].startswith(text)

    def finishing_word(self, rest: str) -> np.ndarray:
        """Tokens whose leading identifier run is exactly ``rest`` (then end, or a non-word char).

        ``rest`` must consist of word characters. With ``rest == ''`` this is every text token
        that starts with a non-word character.
        """
        cands = self.ids_starting_with(rest)
        if not len(cands):
            return _EMPTY
        return cands[self.word_run[cands] == len(rest)]


_EMPTY = np.zeros(0, dtype=np.int32)
