"""tree-sitter parsing: an incremental re-parse gives the tree a fresh parse gives."""

import argparse
from pathlib import Path

import monitors.syntax as syntax


def _fresh(text: str) -> str:
    return str(syntax.parse(text, "python", incremental=False)[0].root_node)


def _edits(src: str):
    """A session of edits on ``src``: typing (ASCII, accented, astral characters), an unclosed
    bracket and string, deleting, pasting a block, another document and back."""
    k = src.index("    def _get_formatter(self):")
    for i in range(1, 12):
        yield src[:k] + "    x = f(é😀, "[:i] + src[k:]  # an unclosed call and astral chars mid-file
    yield src[:k] + '    s = "abc\n' + src[k:]  # an unterminated string
    yield src[:k] + src[k + 200 :]  # a deletion
    block = src[: src.index("\n\n\n", 1000)]
    yield src[:k] + block + src[k:]  # a paste
    yield "import os\nprint(os.sep)\n"  # another document
    yield src
    yield src[: len(src) // 2]  # the end cut off


def test_incremental_parse_equals_a_fresh_parse(monkeypatch):
    src = Path(argparse.__file__).read_text(encoding="utf-8")
    syntax.parse(src, "python")
    reused = []
    real = syntax._edited

    def spy(tree, old, new):
        t = real(tree, old, new)
        reused.append(t is not None)
        return t

    monkeypatch.setattr(syntax, "_edited", spy)
    for text in _edits(src):
        tree, data = syntax.parse(text, "python")
        assert data == text.encode("utf-8")
        assert str(tree.root_node) == _fresh(text)
    # every edit re-used the previous tree, except the switches to another document and back
    assert reused == [True] * 14 + [False, False, True], reused


def test_common_prefix():
    assert syntax._common_prefix(b"abcdef", b"abcxef") == 3
    assert syntax._common_prefix(b"abc", b"abcdef") == 3
    assert syntax._common_prefix(b"", b"abc") == 0
    assert syntax._common_prefix(b"xbc", b"abc") == 0
    assert syntax._common_prefix(b"a" * 1000 + b"b", b"a" * 1000 + b"c") == 1000


def test_string_start():
    text = 'x = 1\ns = """a\nb\nc"""\ny = "é😀q"\n'
    assert syntax.string_start(text, text.index("b"), "python") == text.index('"""')
    assert syntax.string_start(text, text.index("q"), "python") == text.index('"é')
    assert syntax.string_start(text, text.index("y"), "python") is None
    assert syntax.string_start(text, 0, "python") is None
    assert syntax.string_start(text, 3, "no-such-language") is None
