"""tree-sitter helpers shared by the line-mode decision, the monitors and grammar constraints.

Grammars come from per-language wheels (tree-sitter-python, -javascript, -typescript); nothing is
downloaded at run time. Positions in steercode are code-point offsets into a ``str``; tree-sitter
works in UTF-8 bytes, so the conversions live here too.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import PurePath

log = logging.getLogger(__name__)

__all__ = [
    "CursorSyntax",
    "available_grammars",
    "bracket_depth",
    "byte_to_offset",
    "canonical_language",
    "cursor_in_code",
    "cursor_syntax",
    "language_for_path",
    "offset_to_byte",
    "open_brackets",
    "parse",
    "string_start",
]

# LSP languageId (and friendly aliases) -> grammar key
_ALIASES = {
    "python": "python",
    "py": "python",
    "javascript": "javascript",
    "js": "javascript",
    "javascriptreact": "javascript",
    "jsx": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
}

_EXTENSIONS = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".hpp": "cpp",
    ".rb": "ruby",
    ".sh": "shellscript",
    ".lua": "lua",
    ".md": "markdown",
    ".json": "json",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
}

# grammar key -> (module, function)
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
}

_STRING_TYPES = {"string", "string_content", "string_fragment", "template_string", "string_start", "escape_sequence"}
_COMMENT_TYPES = {"comment", "line_comment", "block_comment"}

_local = threading.local()
_lock = threading.Lock()
_languages: dict[str, object] = {}


def language_for_path(path: str | None) -> str:
    """LSP-style language id guessed from a file name ('plaintext' when unknown)."""
    if not path:
        return "plaintext"
    return _EXTENSIONS.get(PurePath(path).suffix.lower(), "plaintext")


def canonical_language(language: str | None) -> str | None:
    """The grammar key for an LSP language id, or None when steercode has no grammar for it."""
    if not language:
        return None
    return _ALIASES.get(language.lower())


def _language(key: str):
    with _lock:
        if key not in _languages:
            from tree_sitter import Language

            module_name, func = _GRAMMARS[key]
            module = importlib.import_module(module_name)
            _languages[key] = Language(getattr(module, func)())
        return _languages[key]


def _parser(key: str):
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if key not in parsers:
        from tree_sitter import Parser

        parsers[key] = Parser(_language(key))
    return parsers[key]


def available_grammars() -> dict[str, str]:
    """Grammar key -> 'ok' or the reason it cannot be loaded (for ``steercode doctor``)."""
    out: dict[str, str] = {}
    for key in _GRAMMARS:
        try:
            _language(key)
            out[key] = "ok"
        except Exception as exc:  # a missing wheel must not break anything else
            out[key] = f"unavailable: {exc}"
    return out


_parse_cache: OrderedDict[tuple, tuple] = OrderedDict()
_parse_lock = threading.Lock()


def parse(text: str, language: str | None, *, incremental: bool = True):
    """Parse ``text``; returns (tree, utf8_bytes) or None when there is no grammar.

    The last few results are cached by (language, text): one request asks several times
    (line mode, each monitor) about the same document. A miss re-parses incrementally from the
    latest tree of the same language (a keystroke's edit costs ~2 ms instead of ~7-13 ms for a
    2,000-line file); ``incremental=False`` parses from scratch.
    """
    key = canonical_language(language)
    if key is None:
        return None
    ck = (key, len(text), hash(text))
    base = None
    with _parse_lock:
        hit = _parse_cache.get(ck)
        if hit is not None and hit[0] == text:
            _parse_cache.move_to_end(ck)
            return hit[1]
        if incremental:
            base = next((v[1] for k, v in reversed(_parse_cache.items()) if k[0] == key), None)
    try:
        data = text.encode("utf-8", "surrogatepass")
        old = _edited(base[0], base[1], data) if base is not None else None
        result = (_parser(key).parse(data, old) if old is not None else _parser(key).parse(data), data)
    except Exception:
        log.warning("tree-sitter parse failed for %s", language, exc_info=True)
        return None
    with _parse_lock:
        _parse_cache[ck] = (text, result)
        while len(_parse_cache) > 4:
            _parse_cache.popitem(last=False)
    return result


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]; slices compare at C speed
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _point(data: bytes, b: int) -> tuple[int, int]:
    return data.count(b"\n", 0, b), b - (data.rfind(b"\n", 0, b) + 1)


def _edited(tree, old: bytes, new: bytes):
    """A copy of ``tree`` (the parse of ``old``) told that ``old`` became ``new``: one edit
    spanning everything between their common prefix and common suffix. None when the texts
    share too little for reuse to pay."""
    p = _common_prefix(old, new)
    room = min(len(old), len(new)) - p
    s = _common_prefix(old[::-1][:room], new[::-1][:room]) if room > 0 else 0
    if p + s < min(len(old), len(new)) // 2:
        return None  # another document: a fresh parse is as fast
    old_end, new_end = len(old) - s, len(new) - s
    t = tree.copy()
    t.edit(
        start_byte=p, old_end_byte=old_end, new_end_byte=new_end,
        start_point=_point(old, p), old_end_point=_point(old, old_end), new_end_point=_point(new, new_end),
    )
    return t


def offset_to_byte(text: str, offset: int) -> int:
    """UTF-8 byte offset of code-point ``offset`` in ``text``."""
    return len(text[:offset].encode("utf-8", "surrogatepass"))


def byte_to_offset(data: bytes, byte: int) -> int:
    """Code-point offset of UTF-8 byte ``byte`` in ``data`` (rounded down inside a character)."""
    return len(data[:byte].decode("utf-8", "ignore"))


@dataclass(frozen=True)
class CursorSyntax:
    """What the syntax tree says about the cursor position."""

    in_string: bool = False
    in_comment: bool = False
    open_brackets: int = 0  # enclosing brackets opened before the cursor and not closed before it
    has_error: bool = False


_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")", "]", "}"}


def cursor_syntax(text: str, offset: int, language: str | None) -> CursorSyntax | None:
    """Classify the cursor position with tree-sitter; None when the language has no grammar."""
    parsed = parse(text, language)
    if parsed is None:
        return None
    tree, data = parsed
    b = offset_to_byte(text, offset)
    root = tree.root_node
    # the node immediately left of the cursor decides strings/comments
    probe = max(b - 1, 0)
    node = root.descendant_for_byte_range(probe, b) if len(data) else root
    in_string = in_comment = False
    n = node
    while n is not None:
        if n.type in _COMMENT_TYPES and n.start_byte < b and (b < n.end_byte or _line_comment_open(data, n, b)):
            in_comment = True
            break
        if n.type in _STRING_TYPES and n.start_byte < b < n.end_byte:
            in_string = True
            break
        n = n.parent
    if not in_string and not in_comment:
        in_string = _unterminated_string_on_line(text, offset)
    # brackets: a lexical scan of the recent lines (unclosed brackets make tree-sitter ERROR nodes),
    # started outside any string
    depth = bracket_depth(text, offset, canonical_language(language))
    return CursorSyntax(in_string=in_string, in_comment=in_comment, open_brackets=depth, has_error=root.has_error)



def string_start(text: str, offset: int, language: str | None) -> int | None:
    """Where the string literal that holds ``offset`` starts (a code-point offset); None when
    ``offset`` is not inside one (or the language has no grammar)."""
    parsed = parse(text, language)
    if parsed is None:
        return None
    tree, data = parsed
    b = offset_to_byte(text, offset)
    node = tree.root_node.descendant_for_byte_range(b, b)
    while node is not None:
        if node.type in ("string", "template_string") and node.start_byte < b < node.end_byte:
            return byte_to_offset(data, node.start_byte)
        node = node.parent
    return None


def cursor_in_code(text: str, offset: int, language: str | None) -> bool:
    """Is ``offset`` in code (not in a string or comment)? True when the language has no grammar."""
    syn = cursor_syntax(text, offset, language)
    return syn is None or not (syn.in_string or syn.in_comment)

def _line_comment_open(data: bytes, node, b: int) -> bool:
    # a line comment runs to the end of its line: the cursor at its end is still inside it
    return node.end_byte == b and not data[node.start_byte : node.end_byte].startswith(b"/*")


def bracket_depth(text: str, offset: int, language: str | None = "python", max_lines: int = 80) -> int:
    """Brackets opened before ``offset`` (within the last ``max_lines`` lines) and not yet closed.

    Skips strings (including triple-quoted ones) and comments (``#`` for Python, ``//`` and
    ``/* */`` otherwise).
    """
    return len(open_brackets(text, offset, language, max_lines))


def open_brackets(
    text: str, offset: int, language: str | None = "python", max_lines: int = 80, start: int | None = None
) -> list[int]:
    """Positions of the brackets opened before ``offset`` and not yet closed, outermost first
    (the scan of ``bracket_depth``), scanning from ``start`` when given (a place known to be
    outside strings) instead of ``max_lines`` lines back. A line start that tree-sitter finds
    inside a string (a docstring) moves back to that string's start: scanning from inside one
    reads its closing quotes as opening ones."""
    if start is not None:
        return _open_brackets_from(text, start, offset, language)
    start = offset
    for _ in range(max_lines):
        nl = text.rfind("\n", 0, start - 1 if start > 0 else 0)
        if nl < 0:
            start = 0
            break
        start = nl + 1
    if start > 0:
        in_string = string_start(text, start, language)
        if in_string is not None:
            start = in_string
    return _open_brackets_from(text, start, offset, language)


def _open_brackets_from(text: str, start: int, offset: int, language: str | None) -> list[int]:
    py = language in (None, "python")
    stack: list[int] = []
    i = start
    n = offset
    while i < n:
        ch = text[i]
        if ch in "\"'`":
            q = text[i : i + 3] if py and text[i : i + 3] in ('"""', "'''") else ch
            j = i + len(q)
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(q, j):
                    break
                if text[j] == "\n" and len(q) == 1 and q != "`":
                    break  # unterminated one-line string ends at the line end
                j += 1
            i = j + len(q)
            continue
        if (py and ch == "#") or (not py and text.startswith("//", i)):
            nl = text.find("\n", i, n)
            i = n if nl < 0 else nl + 1
            continue
        if not py and text.startswith("/*", i):
            end = text.find("*/", i + 2, n)
            i = n if end < 0 else end + 2
            continue
        if ch in _OPENERS:
            stack.append(i)
        elif ch in _CLOSERS and stack:
            stack.pop()
        i += 1
    return stack


def _unterminated_string_on_line(text: str, offset: int) -> bool:
    start = text.rfind("\n", 0, offset) + 1
    quote: str | None = None
    escaped = False
    line = text[start:offset]
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif ch == "#":
            return False
        elif ch in "\"'`":
            quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else ch
            i += len(quote) - 1
        i += 1
    return quote is not None
