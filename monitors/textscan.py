"""Lexical helpers over plain text: identifiers, code vs strings/comments, statement context.

Monitors decide *where* a constraint applies from the text alone (the document before the decode
start plus the generated text), with these small scanners; *what* is legal there comes from
static analysis. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "after_member_dot",
    "code_state",
    "code_tokens",
    "dotted_start",
    "identifiers_from",
    "is_word",
    "likely_next",
    "line_start",
    "prev_significant",
    "string_open",
    "string_step",
    "trailing_word_start",
]


def is_word(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def trailing_word_start(text: str, end: int | None = None) -> int:
    """Start of the run of identifier characters that ends at ``end``."""
    i = len(text) if end is None else end
    while i > 0 and is_word(text[i - 1]):
        i -= 1
    return i


def dotted_start(full: str, dot: int) -> int | None:
    """Start of the plain dotted name (``self``, ``os.path``) that ends at ``full[dot]``."""
    j = dot
    while j > 0 and (is_word(full[j - 1]) or full[j - 1] == "."):
        j -= 1
    if j == dot or not (full[j] == "_" or full[j].isalpha()):
        return None
    if j > 0 and full[j - 1] in ")]}\"'":
        return None
    return j


def likely_next(text: str, name: str) -> str | None:
    """How ``text`` goes on after ``name`` most often: "." (an attribute access), "(" (a
    call), or None when it does neither. Predicts the keystroke after a name is typed."""
    dots, calls = text.count(name + "."), text.count(name + "(")
    if not dots and not calls:
        return None
    return "." if dots >= calls else "("


def identifiers_from(text: str, start: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every identifier-character run that ends after ``start``.

    The first run may begin before ``start`` (an identifier being continued).
    """
    i = trailing_word_start(text, start)
    n = len(text)
    while i < n:
        if is_word(text[i]):
            j = i + 1
            while j < n and is_word(text[j]):
                j += 1
            yield i, j
            i = j
        else:
            i += 1


def string_open(text: str, i: int, *, triple: bool = True) -> str:
    """The quote that opens a string literal at ``text[i]`` (``\"\"\"`` / ``'''`` when ``triple``)."""
    return text[i : i + 3] if triple and text[i : i + 3] in ('"""', "'''") else text[i]


def string_step(text: str, i: int, quote: str) -> tuple[int, str | None]:
    """One step through a string literal opened by ``quote``, at ``text[i]``: the next index, and
    the quote still open (None once this step closed it). Backslash escapes skip a character."""
    if text[i] == "\\":
        return i + 2, quote
    if text.startswith(quote, i):
        return i + len(quote), None
    return i + 1, quote


def code_state(text: str, pos: int, *, python: bool = True) -> str:
    """'code', 'string' or 'comment' at ``pos``, scanning the line that holds it.

    One-line scan: a string opened on an earlier line (triple quotes) is not seen, which is why
    monitors decline to start when the cursor is already inside a string.
    """
    i = line_start(text, pos)
    quote: str | None = None
    while i < pos:
        ch = text[i]
        if quote:
            i, quote = string_step(text, i, quote)
            continue
        if (python and ch == "#") or (not python and text.startswith("//", i)):
            return "comment"
        if ch in "\"'" or (not python and ch == "`"):
            quote = string_open(text, i, triple=python)
            i += len(quote)
            continue
        i += 1
    return "string" if quote else "code"


def code_tokens(text: str, i: int, end: int) -> Iterator[tuple[int, str]]:
    """(index, token) through ``text[i:end]`` outside strings and comments (``#``), where a token
    is a whole run of identifier characters or any other single character but spaces."""
    quote: str | None = None
    while i < end:
        ch = text[i]
        if quote:
            i, quote = string_step(text, i, quote)
            continue
        if ch == "#":
            nl = text.find("\n", i, end)
            i = end if nl < 0 else nl + 1
            continue
        if ch in "\"'":
            quote = string_open(text, i)
            i += len(quote)
            continue
        if is_word(ch):
            j = i + 1
            while j < end and is_word(text[j]):
                j += 1
            yield i, text[i:j]
            i = j
            continue
        if ch not in " \t":
            yield i, ch
        i += 1


def prev_significant(text: str, pos: int) -> tuple[str, int]:
    """The character before ``pos`` skipping spaces and tabs on the same line, and its index."""
    i = pos - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    if i < 0:
        return "", -1
    return text[i], i


def word_before(text: str, pos: int) -> tuple[str, int]:
    """The identifier that ends at ``pos`` (after skipping spaces), and its start."""
    ch, i = prev_significant(text, pos)
    if not ch or not is_word(ch):
        return "", pos
    start = trailing_word_start(text, i + 1)
    return text[start : i + 1], start


def after_member_dot(full: str, s: int, closers: str) -> bool:
    """Is ``full[s]`` right after the ``.`` of a member access? Not ``..`` / ``...``, not the dot
    of a number (``1.5``), and the character before the dot ends an expression: an identifier
    character or one of ``closers`` (brackets, quotes)."""
    if s == 0 or full[s - 1] != ".":
        return False
    if s >= 2 and full[s - 2] == ".":
        return False
    w, _ = word_before(full, s - 1)
    if w and w[0].isdigit():
        return False
    return s < 2 or is_word(full[s - 2]) or full[s - 2] in closers
