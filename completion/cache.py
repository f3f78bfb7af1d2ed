"""Typed-through suggestion cache.

A suggestion made at some cursor stays valid while the user types it: if the text typed since
then is a prefix of (what was before the cursor on that line + the suggestion), the rest of the
suggestion is still the answer -- no model call. The same holds when the user deletes back
towards where it was made, and across lines after accepting the first line of a multi-line
suggestion.

Entries are anchored at a line start: key = (hash of the document up to the anchor, hash of the
document after the cursor). A lookup tries the anchors of the current line and the few lines
above it, and checks the typed text against each candidate entry. LRU, bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CacheHit", "SuggestionCache"]

_ANCHOR_LINES = 4  # how many line starts above the cursor a lookup tries


def _key(text: str) -> tuple[int, int]:
    return (len(text), hash(text))


@dataclass
class _Entry:
    typed: str  # document text from the anchor to where the suggestion was made
    suggestion: str
    multiline: bool
    complete: bool  # False while a background continuation may still extend it
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheHit:
    suggestion: str  # what is left of the cached suggestion after what the user typed
    multiline: bool
    complete: bool


class SuggestionCache:
    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple, list[_Entry]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    @staticmethod
    def _anchors(text: str, cursor: int) -> list[int]:
        out = []
        pos = cursor
        for _ in range(_ANCHOR_LINES):
            start = text.rfind("\n", 0, pos) + 1
            out.append(start)
            if start == 0:
                break
            pos = start - 1
        return out

    def store(self, text: str, cursor: int, suggestion: str, *, multiline: bool, complete: bool = True,
              stats: dict[str, Any] | None = None, config: Any = None) -> None:
        """Remember ``suggestion`` for the cursor at ``cursor`` in ``text``; ``config`` is whatever
        else the answer depended on (settings): a lookup must give the same one to hit."""
        if not suggestion:
            return
        anchor = text.rfind("\n", 0, cursor) + 1
        key = (_key(text[:anchor]), _key(text[cursor:]), config)
        entry = _Entry(text[anchor:cursor], suggestion, multiline, complete, dict(stats or {}))
        with self._lock:
            bucket = self._entries.setdefault(key, [])
            bucket[:] = [e for e in bucket if e.typed != entry.typed]
            bucket.append(entry)
            self._entries.move_to_end(key)
            while len(self) > self.capacity:
                k, b = next(iter(self._entries.items()))
                b.pop(0)
                if not b:
                    del self._entries[k]

    def lookup(self, text: str, cursor: int, config: Any = None) -> CacheHit | None:
        """The rest of a cached suggestion that the text up to ``cursor`` is typing through."""
        suffix_key = (_key(text[cursor:]), config)
        best: CacheHit | None = None
        with self._lock:
            for anchor in self._anchors(text, cursor):
                bucket = self._entries.get((_key(text[:anchor]), *suffix_key))
                if not bucket:
                    continue
                typed = text[anchor:cursor]
                for e in reversed(bucket):
                    if not typed.startswith(e.typed):
                        continue
                    full = e.typed + e.suggestion
                    if not full.startswith(typed):
                        continue
                    rest = full[len(typed) :]
                    if rest.strip() and (best is None or len(e.typed) > 0):
                        best = CacheHit(rest, e.multiline and "\n" in rest, e.complete)
                        self._entries.move_to_end((_key(text[:anchor]), *suffix_key))
                        break
                if best is not None:
                    break
            if best is None:
                self.misses += 1
            else:
                self.hits += 1
        return best

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
