"""Positions: UTF-16 (astral characters!) <-> code points <-> bytes, CRLF, bad positions."""

import pytest
from lsprotocol.types import Position

from completion.document import PositionError, line_bounds, offset_to_position, position_to_offset
from lsp_server.lsp_utils import column_to_units, lsp_position, offset_at, units_to_column
from monitors.syntax import byte_to_offset, offset_to_byte

ASTRAL = "a😀b𝄞c"  # 😀 and 𝄞 are outside the BMP: 2 UTF-16 units, 4 UTF-8 bytes each


@pytest.mark.parametrize(
    "column, utf16, utf8",
    [(0, 0, 0), (1, 1, 1), (2, 3, 5), (3, 4, 6), (4, 6, 10), (5, 7, 11)],
)
def test_columns_round_trip(column, utf16, utf8):
    assert column_to_units(ASTRAL, column, "utf-16") == utf16
    assert units_to_column(ASTRAL, utf16, "utf-16") == column
    assert column_to_units(ASTRAL, column, "utf-8") == utf8
    assert units_to_column(ASTRAL, utf8, "utf-8") == column
    assert column_to_units(ASTRAL, column, "utf-32") == column
    assert units_to_column(ASTRAL, column, "utf-32") == column


def test_half_a_surrogate_pair_rounds_down():
    assert units_to_column(ASTRAL, 2, "utf-16") == 1  # inside 😀
    assert units_to_column(ASTRAL, 3, "utf-8") == 1  # inside 😀's bytes


def test_column_past_line_end_clamps():
    assert units_to_column(ASTRAL, 99, "utf-16") == len(ASTRAL)


def test_offset_at_and_back():
    text = "x = 1\n" + ASTRAL + "\nlast"
    off = offset_at(text, Position(line=1, character=6), "utf-16")  # after 𝄞
    assert text[off] == "c"
    assert lsp_position(text, off, "utf-16") == Position(line=1, character=6)
    assert offset_at(text, Position(line=2, character=4)) == len(text)
    # past the end of a line: clamped to the line end (LSP rule)
    assert offset_at(text, Position(line=0, character=50)) == 5


def test_offset_at_rejects_lines_past_the_end():
    with pytest.raises(PositionError, match="past the end"):
        offset_at("one\ntwo", Position(line=2, character=0))
    with pytest.raises(PositionError, match="past the end"):
        offset_at("one\ntwo", Position(line=2**31 - 1, character=0))


def test_crlf_documents():
    text = "ab\r\ncd\r\nef"
    assert offset_at(text, Position(line=1, character=1)) == 5
    assert offset_at(text, Position(line=2, character=0)) == 8
    assert position_to_offset(text, 2, 1) == 9
    assert offset_to_position(text, 9) == (2, 1)
    assert line_bounds(text, 5) == (4, 6)
    assert lsp_position(text, 5) == Position(line=1, character=1)


def test_old_mac_and_mixed_line_ends():
    """A lone \\r ends a line too (LSP): ranges after one, alone or before a \\n, were a line off."""
    text = "a = 1\rb = 2\nc = a + \n"
    assert lsp_position(text, 20) == Position(line=2, character=8)
    assert offset_at(text, Position(line=2, character=8)) == 20
    for offset in range(len(text) + 1):
        pos = lsp_position(text, offset)
        assert offset_to_position(text, offset) == (pos.line, pos.character)
    with pytest.raises(PositionError, match=r"\(4 lines\)"):
        position_to_offset("a\rb\rc\r", 9, 0)


def test_code_point_positions():
    text = "αβ\n" + ASTRAL
    assert position_to_offset(text, 1, 2) == 5
    assert offset_to_position(text, 5) == (1, 2)
    with pytest.raises(PositionError, match="negative"):
        position_to_offset(text, -1, 0)
    with pytest.raises(PositionError, match="past the end of line"):
        position_to_offset(text, 0, 3, clamp_character=False)
    with pytest.raises(PositionError, match="integers"):
        position_to_offset(text, "1", 0)  # type: ignore[arg-type]


def test_byte_offsets():
    text = "é" + ASTRAL
    b = offset_to_byte(text, 3)  # é(2) a(1) 😀(4)
    assert b == 7
    assert byte_to_offset(text.encode(), b) == 3
    assert byte_to_offset(text.encode(), 5) == 2  # inside 😀: rounds down
