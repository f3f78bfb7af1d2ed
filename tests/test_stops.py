"""Line mode from the syntax at the cursor, and the stop rules (cursor marked with ┃)."""

import pytest
from conftest import split_cursor

from completion.stops import LineMode, StopRules, decide_line_mode


def mode(source, language="python", policy="auto"):
    text, off = split_cursor(source)
    return decide_line_mode(text, off, language, policy, 8)


@pytest.mark.parametrize(
    "source, multiline, reason",
    [
        ("def f(x):\n    ┃", True, "empty line"),
        ("def f(x):┃", True, "after a block opener"),
        ("x = foo(┃)", False, "text after"),  # only closers after: fill inside, one line
        ("x = foo(a┃, b)", False, "text after the cursor"),
        ("x = [\n    1,\n    ┃", True, "inside brackets"),
        # a docstring longer than the bracket scan's 80 lines before the open bracket
        ('"""\n' + "docstring line\n" * 100 + '"""\nx = f(\n    ┃', True, "inside brackets"),
        ("total = price * ┃", False, "mid-statement"),
        ("s = 'hello ┃", False, "in a string"),
        ('"""doc\nstring ┃\n"""', False, "in a string"),
        ("# a comment ┃", False, "in a comment"),
        ("function f() {┃", True, "after a block opener"),
    ],
)
def test_line_mode(source, multiline, reason):
    lang = "javascript" if "function" in source else "python"
    m = mode(source, lang)
    assert m.multiline is multiline, m
    assert reason in m.reason or (reason == "text after" and not m.multiline)


def test_policies():
    assert not mode("def f():\n    ┃", policy="single").multiline
    assert mode("x = ┃", policy="multi").multiline


def rules(source, multiline=None):
    text, off = split_cursor(source)
    m = decide_line_mode(text, off, "python", "auto", 8)
    if multiline is not None:
        m = LineMode(multiline, 8, "test")
    return StopRules(text, off, m, "python")


def run(r, gen):
    """Feed ``gen`` one character at a time as a decoder would; return the final suggestion."""
    for i in range(1, len(gen) + 1):
        cut = r.feed(gen[:i])
        if cut is not None:
            return r.finish(gen[:i][:cut])
    return r.finish(gen)


def test_single_line_stops_at_end_of_line():
    assert run(rules("x = ┃"), "compute(1)\nmore()") == "compute(1)"


def test_single_line_stops_before_closer_already_on_the_line():
    assert run(rules("print(┃)"), 'len(x))') == "len(x)"
    assert run(rules("x = [┃]"), "1, 2, 3]\n") == "1, 2, 3"


def test_single_line_stops_before_a_bracket_that_closes_nothing():
    """The model closed one bracket more than it opened (seen on ``os.pa``); brackets opened on
    earlier lines may be closed; closers in strings and comments are text; other languages
    are not judged."""
    assert run(rules("import os\n\nos.pa┃"), "th.join(os.path.dirname(os.path.abspath(__file__)), '..'))") == (
        "th.join(os.path.dirname(os.path.abspath(__file__)), '..')")
    assert run(rules("x = [1, 2┃"), ", 3])\n") == ", 3]"
    assert run(rules("x = [1, 2┃"), ", 3)]\n") == ", 3"  # ) where [ is open
    assert run(rules("total = add(1,\n          2┃"), ", 3)\n") == ", 3)"
    assert run(rules("x = f(┃"), "')', 1)\n") == "')', 1)"
    assert run(rules("x = 1┃"), "  # closes f()) twice\n") == "  # closes f()) twice"
    assert run(rules('s = "a )┃'), ') b"\n') == ') b"'  # inside a string: not code
    # a docstring longer than the scan's 80 lines: its closing quotes must not read as opening ones
    doc = 'x = 1\n"""\n' + "a line of the docstring\n" * 100 + '"""\nprint(len(data┃'
    assert run(rules(doc), "))\n") == "))"
    text, off = split_cursor("let x = 1┃")
    js = StopRules(text, off, decide_line_mode(text, off, "javascript", "auto", 8), "javascript")
    assert run(js, "));\n") == "));"


def test_single_line_drops_suffix_repeated_at_end():
    assert run(rules('print("┃")'), 'hello")\n') == "hello"


def test_block_stops_at_dedent():
    src = "def f(x):\n    ┃\n\ndef g():\n    pass\n"
    assert run(rules(src), "y = x + 1\n    return y\ndef h():\n") == "y = x + 1\n    return y"


def test_block_after_opener_needs_indented_body():
    src = "def f(x):┃"
    assert run(rules(src), "\n    return x\nprint(1)") == "\n    return x"
    assert run(rules(src), "\nprint(1)\n") == ""


def test_block_never_repeats_the_line_below():
    src = "def f(x):\n    ┃\n    return y\n"
    assert run(rules(src), "y = x * 2\n    return y\n") == "y = x * 2"
    # a suggestion that is just the line below is dropped
    assert run(rules(src), "return y\n") == ""


def test_block_max_lines_and_blank_lines():
    src = "def f():\n    ┃"
    r = rules(src)
    r.mode = LineMode(True, 2, "test")
    assert run(r, "a = 1\n    b = 2\n    c = 3\n") == "a = 1\n    b = 2"
    assert run(rules(src), "a = 1\n\n\n    b = 2\n") == "a = 1"


def test_block_stops_on_repeating_lines():
    assert run(rules("def f():\n    ┃"), "x()\n    x()\n    x()\n    x()\n") == "x()\n    x()"


def test_trailing_whitespace_trimmed():
    assert run(rules("x = ┃"), "1   ") == "1"
    assert run(rules("x = ┃"), "   ") == ""


def test_string_closed_by_the_line_suffix():
    assert run(rules('print("┃")'), 'hi there")\n') == "hi there"
    assert run(rules('print("┃")'), 'say \\"x\\"")') == 'say \\"x\\"'


def test_suggestion_that_rewrites_the_closers_replaces_the_rest_of_the_line():
    from completion.engine import CompletionRequest, Engine

    text, off = split_cursor('print(┃")')
    r = rules('print(┃")')
    req = CompletionRequest(text=text, offset=off)
    # the suggestion brings its own quote and paren: it replaces `")` rather than inserting before it
    assert Engine._suffix_replacement(req, '"hello")', r) == len(text)
    # a plain insertion keeps the range empty
    assert Engine._suffix_replacement(req, "x", r) == off


def test_repetition_is_cut():
    assert run(rules("x = ┃"), "co_filename, f.clear, f.clear, f.clear, f.clear") == "co_filename, f.clear"
    assert run(rules("x = ┃"), "[1, 2, 3]") == "[1, 2, 3]"
