"""Converters between LSP types and steercode's plain data (``lsp_*`` functions).

Positions: LSP counts columns in the negotiated encoding -- UTF-16 code units unless the client
offered UTF-32 or UTF-8 -- while the engine counts code points. Astral characters (emoji, many
CJK extension characters) are one code point but two UTF-16 units and four UTF-8 bytes.
"""

from __future__ import annotations

from lsprotocol import types

from completion.document import PositionError, line_bounds
from completion.engine import Completion

__all__ = [
    "PositionError",
    "column_to_units",
    "lsp_completion_list",
    "lsp_inline_list",
    "lsp_inline_list_after_item",
    "lsp_position",
    "lsp_range",
    "offset_at",
    "units_to_column",
]

UTF16 = "utf-16"
UTF32 = "utf-32"
UTF8 = "utf-8"


def _enc(encoding: str | None) -> str:
    e = str(encoding or UTF16).lower()
    if e in ("utf-32", "utf32"):
        return UTF32
    if e in ("utf-8", "utf8"):
        return UTF8
    return UTF16


def units_to_column(line: str, units: int, encoding: str | None = UTF16) -> int:
    """Code points in ``line`` covered by ``units`` code units (clamped to the line's end).

    A column that falls inside a character (half a surrogate pair, part of a UTF-8 sequence)
    is rounded down to that character's start.
    """
    enc = _enc(encoding)
    if enc == UTF32 or line.isascii():
        return min(units, len(line))
    if enc == UTF16:
        data = line.encode("utf-16-le", "surrogatepass")
        return len(data[: 2 * units].decode("utf-16-le", "ignore"))
    data = line.encode("utf-8", "surrogatepass")
    return len(data[:units].decode("utf-8", "ignore"))


def column_to_units(line: str, column: int, encoding: str | None = UTF16) -> int:
    """Code units of the first ``column`` code points of ``line``."""
    enc = _enc(encoding)
    prefix = line[:column]
    if enc == UTF32 or prefix.isascii():
        return len(prefix)
    if enc == UTF16:
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    return len(prefix.encode("utf-8", "surrogatepass"))


def _line_start(text: str, line: int) -> int:
    """Offset where 0-based ``line`` starts; PositionError past the end."""
    if line < 0:
        raise PositionError(f"line {line} is negative")
    if "\r" in text:
        from completion.document import position_to_offset

        return position_to_offset(text, line, 0)
    start = 0
    for _ in range(line):
        nl = text.find("\n", start)
        if nl < 0:
            raise PositionError(f"line {line} is past the end of the document ({text.count(chr(10)) + 1} lines)")
        start = nl + 1
    return start


def offset_at(text: str, position: types.Position, encoding: str | None = UTF16) -> int:
    """Code-point offset of an LSP position. A column past the line's end is clamped (LSP rule)."""
    line, character = position.line, position.character
    if character < 0:
        raise PositionError(f"character {character} is negative")
    start = _line_start(text, line)
    _, end = line_bounds(text, start)
    return start + units_to_column(text[start:end], character, encoding)


def lsp_position(text: str, offset: int, encoding: str | None = UTF16) -> types.Position:
    """LSP position of a code-point offset."""
    if not 0 <= offset <= len(text):
        raise PositionError(f"offset {offset} is outside the document")
    if "\r" in text[:offset]:  # old-Mac line ends (alone or mixed with others): count them too
        from completion.document import offset_to_position

        line, col = offset_to_position(text, offset)
        start = offset - col
    else:
        line = text.count("\n", 0, offset)
        start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=column_to_units(text[start:offset], offset - start, encoding))


def lsp_range(text: str, start: int, end: int, encoding: str | None = UTF16) -> types.Range:
    return types.Range(start=lsp_position(text, start, encoding), end=lsp_position(text, end, encoding))


def lsp_inline_list(text: str, completion: Completion, encoding: str | None = UTF16) -> types.InlineCompletionList:
    """Inline completion items (empty list for an empty suggestion)."""
    if completion.empty:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=completion.insert_text,
        range=lsp_range(text, completion.range_start, completion.range_end, encoding),
    )
    return types.InlineCompletionList(items=[item])


def lsp_inline_list_after_item(
    completion: Completion, encoding: str | None, selection: tuple[int, int, str, str]
) -> types.InlineCompletionList:
    """The suggestion computed as if the suggest widget's selected item were accepted, as one
    inline item over the document: the item's text and then the suggestion, replacing the word
    the item replaces (``selection`` = (start, cursor, item text, document text)). The
    completion's offsets are in the text with the item applied."""
    start, cursor, item_text, text = selection
    applied = start + len(item_text)  # the cursor in the text with the item applied
    if completion.empty or completion.range_start != applied:
        return types.InlineCompletionList(items=[])
    end = cursor + max(0, completion.range_end - applied)
    item = types.InlineCompletionItem(insert_text=item_text + completion.insert_text,
                                      range=lsp_range(text, start, end, encoding))
    return types.InlineCompletionList(items=[item])


def _word_start(text: str, offset: int) -> int:
    i = offset
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
        i -= 1
    return i


def lsp_completion_list(
    text: str, completion: Completion, encoding: str | None = UTF16, *, markdown: bool = False
) -> types.CompletionList:
    """The suggestion as one completion item, for clients without inline completion.

    The item replaces the word typed before the cursor with that word plus the suggestion, so
    the client's prefix filtering keeps it; ``is_incomplete`` makes the client ask again as the
    user types.
    """
    if completion.empty:
        return types.CompletionList(is_incomplete=True, items=[])
    start = min(_word_start(text, completion.range_start), completion.range_start)
    typed = text[start : completion.range_start]
    new_text = typed + completion.insert_text
    first_line = new_text.split("\n", 1)[0]
    label = first_line.strip() or new_text.strip().split("\n", 1)[0]
    if len(label) > 80:
        label = label[:77] + "…"
    item = types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail="steercode",
        documentation=(
            types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```") if markdown else new_text
        ),
        filter_text=typed + completion.insert_text.split("\n", 1)[0] if typed else None,
        sort_text="0",
        preselect=True,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=lsp_range(text, start, completion.range_end, encoding), new_text=new_text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])
