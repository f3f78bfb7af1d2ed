"""Plain-text positions: (line, character) in code points <-> offsets into a ``str``.

The engine works with code-point offsets. LSP's UTF-16 (or UTF-8) columns are converted in
``lsp_server.lsp_utils``; CLI and JSON-lines callers give code points directly. Lines end at
``\\n``, ``\\r\\n`` or ``\\r`` as in LSP.
"""

from __future__ import annotations

import re

__all__ = ["PositionError", "line_bounds", "offset_to_position", "position_to_offset", "split_lines"]

_LINE_END = re.compile(r"\r\n|\r|\n")


class PositionError(ValueError):
    """A position that does not exist in the document (the message says why)."""


def split_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point offsets of every line, line terminators excluded."""
    spans = []
    start = 0
    for m in _LINE_END.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def position_to_offset(text: str, line: int, character: int, *, clamp_character: bool = True) -> int:
    """Offset of (line, character), both 0-based, character counted in code points.

    Raises PositionError for a negative position or a line past the end of the document. A
    character past the end of its line is clamped to the line end (LSP's rule) unless
    ``clamp_character`` is False.
    """
    if isinstance(line, bool) or not isinstance(line, int) or isinstance(character, bool) or not isinstance(character, int):
        raise PositionError(f"line and character must be integers, got line={line!r} character={character!r}")
    if line < 0 or character < 0:
        raise PositionError(f"position ({line}, {character}) is negative")
    start = 0
    for _ in range(line):
        m = _LINE_END.search(text, start)
        if m is None:
            n_lines = len(_LINE_END.findall(text)) + 1
            raise PositionError(f"line {line} is past the end of the document ({n_lines} lines)")
        start = m.end()
    m = _LINE_END.search(text, start)
    end = m.start() if m else len(text)
    if start + character > end:
        if not clamp_character:
            raise PositionError(f"character {character} is past the end of line {line} ({end - start} characters)")
        return end
    return start + character


def offset_to_position(text: str, offset: int) -> tuple[int, int]:
    """(line, character) of a code-point offset."""
    if not 0 <= offset <= len(text):
        raise PositionError(f"offset {offset} is outside the document (length {len(text)})")
    line = 0
    start = 0
    for m in _LINE_END.finditer(text, 0, offset):
        if m.end() > offset:
            break
        line += 1
        start = m.end()
    return line, offset - start


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    """(start, end) of the line holding ``offset``, terminator excluded."""
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    m = _LINE_END.search(text, offset)
    end = m.start() if m else len(text)
    return start, end
