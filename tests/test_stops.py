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
        ("function f() {┃}", True, "after a block opener"),
        ("g(function () {┃", True, "after a block opener"),
        # a `:` or `=>` inside brackets opens no block: as a block the closers were written twice
        ("def f(xs):\n    return xs[1:┃]", False, "inside brackets"),
        ('def f(name):\n    return {"name":┃}', False, "inside brackets"),
        ("ys = sorted(xs, key=lambda x:┃)", False, "inside brackets"),
        ("def area(radius:┃):\n    return 1", False, "inside brackets"),
        ("function f(xs) { return xs.map(x =>┃); }", False, "inside brackets"),
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


def test_single_line_leaves_the_brackets_the_rest_of_the_line_closes():
    """``print(┃, end="")`` + ``msg)`` gave ``print(msg), end="")``: the line's own ``)`` closes
    the cursor's ``(``, so the suggestion must not; strings and comments in the rest do not count."""
    assert run(rules('def f(msg):\n    print(┃, end="")'), 'msg)\n') == "msg"
    assert run(rules("x = f(a, ┃, c) + g(d)"), "b)\n") == "b"
    assert run(rules("x = f(g(┃, 1), 2)"), "y), 3)\n") == "y"
    assert run(rules("x = f(┃, ')')"), "a)\n") == "a"
    assert run(rules("x = f(┃  # g())"), "a)\n") == "a)"  # the comment closes nothing
    assert run(rules("x = f(┃, y"), "a, b)\n") == "a, b)"  # the rest leaves it open


def test_template_literal_substitution_stops_at_its_brace():
    """``${┃}`` in a JS template literal: the backtick hid the ``}`` and the suggestion ran on to
    the token limit (``name} ${name!":"a!d!e…``)."""
    assert run(js_rules("console.log(`Hello ${┃}`);"), "name} ${name!\n") == "name"
    assert run(js_rules("const s = `a ${b(1)} c┃`;"), "d` + x;\n") == "d"  # in the literal again
    assert run(js_rules("const s = `${a ? `x${┃}` : 'y'}`;"), "n} z`\n") == "n"  # nested


def test_single_line_ends_with_the_statement_in_semicolon_languages():
    """``s.len┃`` gave ``gth; console.clearTimeout(); console.getComputedStyle(s); …``."""
    assert run(js_rules("const n = s.len┃"), "gth; console.clear(); f(s);\n") == "gth;"
    assert run(js_rules("const n = s.len┃"), "gth;\n") == "gth;"
    assert run(js_rules("for (let i = 0┃"), "; i < n; i++) {\n") == "; i < n; i++) {"
    assert run(js_rules("const s = '┃"), "a; b';\n") == "a; b';"
    assert run(js_rules("x = f(┃)"), "a; b)\n") == "a; b"  # not judged with text after the cursor
    assert run(rules("x = 1┃"), "; y = 2\n") == "; y = 2"  # Python: not judged


def test_prose_apostrophes_open_no_string():
    """In plaintext and markdown an apostrophe is no quote: the closer rules stayed off after
    ``Don't`` and the suggestion ran on past the auto-closed ``)``."""
    for language in ("plaintext", "markdown"):
        text, off = split_cursor("Don't forget to buy (┃)")
        r = StopRules(text, off, decide_line_mode(text, off, language, "auto", 8), language)
        assert run(r, "milk) and eggs\n") == "milk", language
    # the same in a comment (it came out right only while the range covered the line's `)`)
    assert run(rules("x = 1  # don't call this (┃)"), "or that) now\n") == "or that"
    assert run(js_rules("let x = 1; // don't; (┃)"), "a; b) c\n") == "a; b"


def test_single_line_drops_suffix_repeated_at_end():
    assert run(rules('print("┃")'), 'hello")\n') == "hello"


def test_block_stops_at_dedent():
    src = "def f(x):\n    ┃\n\ndef g():\n    pass\n"
    assert run(rules(src), "y = x + 1\n    return y\ndef h():\n") == "y = x + 1\n    return y"


def js_rules(source):
    text, off = split_cursor(source)
    return StopRules(text, off, decide_line_mode(text, off, "javascript", "auto", 8), "javascript")


def test_block_keeps_its_own_closer_when_a_closer_is_below():
    """A bare ``}`` repeats the line below only at the same indent: the suggestion's own
    ``    }`` was cut as a repeat of the ``  }`` below, leaving its ``if`` unclosed."""
    src = "function find(xs, t) {\n  for (const x of xs) {\n    ┃\n  }\n  return -1;\n}\n"
    gen = "if (x === t) {\n      return x;\n    }\n  }\n  return -1;\n"
    assert run(js_rules(src), gen) == "if (x === t) {\n      return x;\n    }"


def test_block_between_braces_ends_on_a_line_of_its_own():
    """``{┃}`` with the editor's ``}``: the block gave ``return a + b;}``."""
    assert run(js_rules("function add(a, b) {┃}\n"), "\n  return a + b;\n}\n") == "\n  return a + b;\n"
    assert run(js_rules("  if (ok) {┃});\n"), "\n    go();\n") == "\n    go();\n  "
    assert run(js_rules("function add(a, b) {┃\n"), "\n  return a + b;\n}\n") == "\n  return a + b;"


def test_block_cut_short_drops_its_unfinished_last_line():
    """A block that ran into the token limit ended mid-line: ``"password_agent`` (an open string
    that turned the rest of the file into one) or ``epilog=\"\"\"``; the complete lines stay."""
    src = 'CONFIG = {\n    "host": "localhost",\n    ┃\n}\n'
    gen = '"port": 8080,\n    "user": "admin",\n    "password_agent'
    assert rules(src).finish(gen, cut_short=True) == '"port": 8080,\n    "user": "admin",'
    assert rules(src).finish(gen) == gen  # a natural end (the model stopped): as it is
    assert rules(src).finish('"port": 80', cut_short=True) == '"port": 80'  # one line: kept
    assert rules(src).finish('"port": 80,\n', cut_short=True) == '"port": 80,'


def test_block_stops_before_repeating_an_assignment():
    """``self.x = x`` twice in a row in one block: the second does nothing. A repeated call or
    augmented assignment is not judged (it may be meant)."""
    src = "class A:\n    def __init__(self, x):\n        ┃\n\n    def get(self):\n        return self.x\n"
    assert run(rules(src), "self.x = x\n        self.x = x\n") == "self.x = x"
    assert run(rules(src), "self.n += 1\n        self.n += 1\n") == "self.n += 1\n        self.n += 1"
    assert run(rules(src), "self.log()\n        self.log()\n") == "self.log()\n        self.log()"


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


def test_block_in_a_function_ends_at_a_blank_line_and_at_top_level_goes_on():
    r = rules("def f():\n    ┃")
    assert run(r, "a = 1\n    b = 2\n\n    def g():\n        pass\n") == "a = 1\n    b = 2"
    assert r.reason == "blank line"
    # at the module's top level a blank line separates statements of the same block
    assert run(rules("import os\n┃", multiline=True), "a = 1\n\nb = 2\n") == "a = 1\n\nb = 2"


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
    # a call inside the auto-closed paren: its own `)` closes its own `(`, the line's `)` stays
    # (the range covered the line's `)`, and accepting gave `print(len(items)`)
    for doc, suggestion in (("print(┃)", "len(items)"), ("fmt.Println(┃)", 'len("abc")'), ("f(g(┃))", "h(x)")):
        text, off = split_cursor(doc)
        req = CompletionRequest(text=text, offset=off)
        assert Engine._suffix_replacement(req, suggestion, rules(doc)) == off, doc


def test_repetition_is_cut():
    assert run(rules("x = ┃"), "co_filename, f.clear, f.clear, f.clear, f.clear") == "co_filename, f.clear"
    assert run(rules("x = ┃"), "[1, 2, 3]") == "[1, 2, 3]"


@pytest.mark.model
def test_engine_drops_the_line_the_token_limit_cut(engine):
    """End to end: a block that hits max_tokens ends at its last complete line."""
    from completion.engine import CompletionRequest

    text = 'CONFIG = {\n    "host": "localhost",\n    \n}\n'
    off = text.index("    \n") + 4
    for limit in (7, 11, 15, 19):
        c = engine.complete(CompletionRequest(text=text, offset=off, language="python",
                                              options={"max_tokens": limit, "first_line_fast": False, "cache": False}))
        assert c.stats["stop_reason"] == "max tokens", c.stats["stop_reason"]
        lines = c.insert_text.split("\n")
        # every line of a cut block is complete (the model writes `"key": value,` lines here)
        assert len(lines) == 1 or all(ln.rstrip().endswith((",", "{", "[")) for ln in lines), (limit, c.insert_text)


@pytest.mark.model
def test_engine_ends_a_line_the_token_limit_cut_at_a_word_boundary(engine):
    """A single-line suggestion cut by max_tokens ended mid-word or mid-number (``…, 1508, 150``)."""
    from completion.engine import CompletionRequest

    text = "PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, "
    seen = set()
    for limit in (5, 6, 7, 8, 9, 10):
        c = engine.complete(CompletionRequest(text=text, offset=len(text), language="python",
                                              options={"max_tokens": limit, "line_mode": "single", "cache": False}))
        assert c.stats["stop_reason"] == "max tokens"
        assert "," in c.insert_text and not c.insert_text[-1].isdigit(), (limit, c.insert_text)
        seen.add(c.insert_text)
    assert len(seen) >= 2  # the limit moved the cut
