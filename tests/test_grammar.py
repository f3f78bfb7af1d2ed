"""The syntax constraint (monitors/grammar.py) and the repetition penalty (monitors/repetition.py)
on synthetic vocabularies, and the decoder's hooks for them (may_end, penalty)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import split_cursor
from fakes import FakeBackend

from completion.decoding import Decoder
from completion.engine import _well_formed_end
from monitors.base import MonitorContext
from monitors.grammar import SyntaxChecker, SyntaxMonitor
from monitors.repetition import RepetitionMonitor, block_signatures, has_repetition, trailing_repeat
from monitors.verdicts import Rewind, Shift
from monitors.vocabulary import Vocabulary

PIECES = [b"<eos>", b"\n", b"    ", b"if", b" x", b":", b"return", b" 1", b"elif", b"el", b"#", b"x", b" = 2", b"else",
          b" n == 3", b"e"]
VOCAB = Vocabulary(PIECES, control=[0])
EOS, NL, IND, IF, SX, COLON, RET, ONE, ELIF, EL, HASH, X, EQ2, ELSE, N3, E = range(len(PIECES))


def ctx(source: str, language: str = "python", multiline: bool = False, healed: int = 0) -> MonitorContext:
    text, off = split_cursor(source)
    return MonitorContext(text=text, offset=off - healed, cursor=off, language=language, path=None, vocab=VOCAB,
                          multiline=multiline)


def session(source: str, **kw):
    return SyntaxMonitor().start(ctx(source, **kw))


FIB = "def fib(n):\n    if n < 2:\n        return n\n    ┃\n\n\ndef other():\n    pass\n"
BODY = "def f(n):\n    for i in range(n):\n        t = i\n        ┃\n            print(i)\n    return n\n"


# ---- the full check ----------------------------------------------------------------------------
@pytest.mark.parametrize("generated, ok", [
    ("return fib(n - 1) + fib(n - 2)", True),
    ("elif n == 1: return 1", True),
    ("if n > 3:", False),  # opens a block, and the next line is not indented deeper
    ("else:", False),
    ("x = (1,", False),  # a bracket that nothing closes
    ("if x:\n        return 1", True),  # the block's body is generated too
])
def test_checker_verdicts(generated, ok):
    assert SyntaxChecker(ctx(FIB)).not_worse(generated) is ok


def test_checker_needs_a_block_opener_before_a_deeper_line():
    c = SyntaxChecker(ctx(BODY))
    assert c.base_error is not None  # the document itself lacks the line: "unexpected indent"
    assert c.not_worse("if i % 2:")
    assert not c.not_worse("x = i")  # a plain statement before a deeper line


def test_checker_inside_brackets_compares_with_the_documents_own_error():
    c = SyntaxChecker(ctx("x = 1\ny = (┃\nz = 3\n"))
    assert c.not_worse("1, 2)")
    assert c.not_worse("1, 2")  # as broken as before: not worse
    assert not c.not_worse("1))")  # an error inside the suggestion


def test_javascript_uses_tree_sitter_errors():
    c = SyntaxChecker(ctx("function f(a) {\n  ┃\n}\n", language="javascript"))
    assert c.not_worse("return a + 1;")
    assert not c.not_worse("return (a + 1;")


# ---- the constraint --------------------------------------------------------------------------
def test_a_block_opener_before_a_same_indent_line_is_refused():
    s = session(FIB)
    # its first word settles it (a single line at a statement start)
    r = s.check("if", SX, " x")
    assert isinstance(r, Rewind) and r.to == 0
    assert s.check("return", ONE, " 1") is True
    # and at the line's end the whole line is checked: a rewind to its start
    r = s.check("else:", NL, "\n")
    assert isinstance(r, Rewind) and r.to == 0
    assert s.check("return 1", NL, "\n") is True
    assert isinstance(s.check("else:", EOS, None), Rewind)  # ... or where the suggestion ends


def test_healed_text_is_not_rewound_into():
    # the cursor after "    re": healing regenerates "re"; the rewind goes to the model's own text
    s = session(FIB.replace("    ┃", "    re┃"), healed=2)
    r = s.check("return (", NL, "\n")
    assert isinstance(r, Rewind) and r.to == 2


def test_multiline_next_line_after_an_opener_must_be_deeper():
    s = session(FIB, multiline=True)
    r = s.check("if x:\n    ", RET, "return")
    assert isinstance(r, Rewind) and r.to == len("if x:\n")  # at the opener's indent: rewound to the line
    assert s.check("if x:\n        ", RET, "return") is True  # deeper
    assert s.check("x = 2\n    ", RET, "return") is True
    # a line deeper than the one above without an opener
    r = s.check("x = 2\n        ", RET, "return")
    assert isinstance(r, Rewind)


def test_multiline_may_end_only_where_the_program_is_well_formed():
    s = session(FIB, multiline=True)
    assert s.may_end("return 1")
    assert not s.may_end("if x:")
    assert not s.may_end("return 1\n    else:")
    # the engine's final trim: back to the last line end that may end
    assert _well_formed_end("return 1\n    if x:", "", [s]) == "return 1"
    assert _well_formed_end("if x:", "", [s]) == ""


def test_no_opinion_on_a_broken_document():
    assert SyntaxMonitor().start(ctx("def g(:\n    x = 1\n    ┃\n")) is None
    # a broken function elsewhere is not in the region the suggestion can affect
    s = SyntaxMonitor().start(ctx("def f(:\n    x = (\n\n\ndef g():\n    x = 1\n    ┃\n"))
    assert s is not None and s.may_end("return x") and not s.may_end("return (x")


def test_no_opinion_on_a_single_line_inside_an_unfinished_statement():
    # the user is writing ``if kwargs.`` / ``x = f(a, ``: the statement breaks at the cursor
    # whatever one line says; the members eval's ``if kwargs.┃`` lost its suggestion when the
    # line's end (``[None, None``) was refused
    unfinished = "def f(kwargs):\n    if kwargs.┃\n    return 1\n"
    assert SyntaxMonitor().start(ctx(unfinished)) is None
    assert SyntaxMonitor().start(ctx("def f(a):\n    x = g(a, ┃\n    return x\n")) is None
    # a word the user started, healed back to the line's start; a continuation line in brackets
    assert SyntaxMonitor().start(ctx("def f(a):\n    ar┃['x']\n        + 1])\n", healed=2)) is None
    assert SyntaxMonitor().start(ctx("def f(a):\n    x = g(a,\n          ┃\n    return x\n")) is None
    # the statement goes on below the cursor's line and breaks there (argparse's ``''.join([``)
    assert SyntaxMonitor().start(ctx("def f(ps):\n    return ''.┃\n        for p in ps])\n")) is None
    # the same places judged when a block is asked for, or when the line would start a statement
    assert SyntaxMonitor().start(ctx(unfinished, multiline=True)) is not None
    assert SyntaxMonitor().start(ctx("def f(x):\n    if x:\n        ┃\n    return 1\n")) is not None
    # mid-line where the document is fine without the rest: still judged (``x = (1,`` is worse)
    fine = SyntaxMonitor().start(ctx("def f():\n    x = 1┃\n    return x\n"))
    assert fine is not None and not fine.may_end("1 + (2,")


def test_a_raising_constraint_is_no_opinion_and_the_suggestion_is_normal():
    class Exploding:
        name = "syntax"

        def check(self, generated, token, text):
            return True

        def allowed(self, generated):
            return None

        def may_end(self, generated):
            raise RuntimeError("boom")

        def penalty(self, generated):
            raise RuntimeError("boom")  # noqa: B904

    vocab = Vocabulary([b"<eos>"] + [bytes([97 + i]) for i in range(20)], control=[0])
    plain = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=6, stop=lambda t: 3 if len(t) >= 5 else None)
    r = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=6, constraints=[Exploding()],
                                                     stop=lambda t: 3 if len(t) >= 5 else None)
    assert r.text == plain.text and r.tokens == plain.tokens
    assert any("boom" in e for e in r.stats.constraint_errors)


def test_decoder_asks_may_end_before_a_stop_rule_ends():
    vocab = Vocabulary([b"<eos>"] + [bytes([97 + i]) for i in range(20)], control=[0])

    stop = lambda t: len(t) if len(t) >= 2 else None  # noqa: E731
    plain = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=10, stop=stop)
    assert len(plain.text) == 2

    class NotThatEnd:
        name = "ends"

        def check(self, generated, token, text):
            return True

        def allowed(self, generated):
            return None

        def may_end(self, generated):
            return generated != plain.text

    r = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=10, stop=stop, constraints=[NotThatEnd()])
    # the end the model chose was refused: its token was taken back and the next choice ends it
    assert r.stats.end_refusals == 1 and r.stats.interventions == {"ends": 1}
    assert r.text[0] == plain.text[0] and len(r.text) == 2 and r.text != plain.text


# ---- repetition -----------------------------------------------------------------------------
ELIFS = "def f(n):\n    if n < 2:\n        return n\n    ┃\n"


def test_signatures_match_a_repeated_structure_and_not_different_code():
    text = "def f(n):\n    if n < 2:\n        return n\n    elif n == 1: return 1\n    elif n == 2: return 2\n    x = f(1)\n    x = a.b\n"
    sigs = block_signatures(text, text.index("    elif"), len(text), "python")
    assert sigs[0] == sigs[1]  # elif n == 1 / elif n == 2
    assert sigs[2] != sigs[3]  # a call / an attribute
    assert trailing_repeat(["a", "b", "c", "c", "c"]) == (1, 3)
    assert trailing_repeat(["a", "b", "a", "b"]) == (2, 2)
    assert trailing_repeat(["a", "b", "c"]) == (0, 0)
    assert has_repetition(["a", "a", "a"]) and has_repetition(["x", "a", "b", "a", "b", "a", "b"])
    assert not has_repetition(["a", "a", "b"]) and not has_repetition(["a", "b", "a", "b"])  # twice is ordinary


def test_a_repeats_critical_token_is_decayed():
    text, off = split_cursor(ELIFS)
    s = RepetitionMonitor().start(ctx(ELIFS, multiline=True))
    block = "elif n == 1: return 1\n    elif n == 2: return 2\n    "
    shifts = s.penalty(block)
    assert shifts is not None
    ids, amount = shifts[0].ids, shifts[0].amount
    assert amount == pytest.approx(2 * math.log(0.9))  # two in a row so far: lambda ** 2
    assert shifts[0].end  # and a third one chosen anyway ends the suggestion before it
    mon = RepetitionMonitor(end_at=3).start(ctx(ELIFS, multiline=True))
    assert not mon.penalty(block)[0].end  # with end_at=3 a third may still come
    assert mon.penalty(block + "elif n == 3: return 3\n    ")[0].end
    assert ELIF in ids and EL in ids and E in ids  # the tokens that would start a third
    assert ELSE not in ids and RET not in ids and IND not in ids
    # once the line has started, or without a repeat, there is no penalty
    assert s.penalty(block + "return") is None
    assert s.penalty("elif n == 1: return 1\n    ") is None
    # right after the newline: the blanks are not the repeat's start, a token with the word is
    assert IND not in s.penalty("elif n == 1: return 1\n    elif n == 2: return 2\n")[0].ids


def test_the_statements_above_the_cursor_count_towards_a_repeat():
    # make run's demo: `if n < 2: return n` above, then the model writes `elif n < 3: return n + 1`
    s = RepetitionMonitor().start(ctx(ELIFS, multiline=True))
    shifts = s.penalty("elif n < 3:\n        return n + 1\n    ")
    assert shifts is not None and shifts[0].end and ELIF in shifts[0].ids
    assert shifts[0].amount == pytest.approx(2 * math.log(0.9))
    assert s.penalty("elif n == 3:\n        return n + 1\n    ") is None  # `==` is not `<`: no repeat
    # alike lines above: the first generated line is free, one more of them may follow
    src = "class P:\n    def __init__(self, a, b, c, d):\n        self.a = a\n        self.b = b\n        ┃\n"
    s = RepetitionMonitor().start(ctx(src, multiline=True))
    assert s.penalty("") is None
    shifts = s.penalty("self.c = c\n        ")
    assert shifts[0].end and shifts[0].amount == pytest.approx(3 * math.log(0.9))
    # an if's elif/else clauses are not part of its signature: `if` and `elif` lines match
    text = "if a < 1:\n    x = 1\nelif a < 2:\n    x = 2\nelse:\n    x = 3\n"
    sigs = block_signatures(text, 0, len(text), "python")
    assert sigs[0] == sigs[2] and sigs[1] == sigs[3] == sigs[5] and sigs[4] != sigs[0]


def test_a_copy_of_the_functions_header_is_rewound():
    src = 'def add(a, b):\n    """Add two numbers."""\n    ┃\n'
    s = RepetitionMonitor().start(ctx(src, multiline=True))
    r = s.check('"""Add two numbers."""', NL, "\n")
    assert isinstance(r, Rewind) and r.to == 0
    assert s.check("return a + b", NL, "\n") is True
    r = s.check("return a + b\n    def add(a, b):", NL, "\n")
    assert isinstance(r, Rewind) and r.to == len("return a + b\n")


def test_penalty_shifts_the_scores_the_decoder_chooses_from():
    vocab = Vocabulary([b"<eos>", b"a", b"b", b"c"], control=[0])

    class Decay:
        name = "repetition"

        def __init__(self, amount):
            self.amount = amount

        def check(self, generated, token, text):
            return True

        def allowed(self, generated):
            return None

        def penalty(self, generated):
            return [Shift(np.array([1]), self.amount)] if not generated else None

    script = {(2,): 1}  # after the prompt "b" the model strongly prefers "a" (+10 on its logit)
    plain = Decoder(FakeBackend(4, script=script), vocab, {0}).generate([2], max_tokens=6)
    assert plain.tokens[0] == 1
    mild = Decoder(FakeBackend(4, script=script), vocab, {0}).generate([2], max_tokens=6, constraints=[Decay(-0.5)])
    assert mild.tokens == plain.tokens and mild.stats.penalized > 0  # a small decay does not beat +10
    strong = Decoder(FakeBackend(4, script=script), vocab, {0}).generate([2], max_tokens=6, constraints=[Decay(-50.0)])
    assert strong.tokens[0] != 1 and strong.stats.penalized == 1


def test_a_repeat_chosen_despite_the_decay_ends_the_suggestion():
    vocab = Vocabulary([b"<eos>", b"a", b"b", b"c"], control=[0])

    class EndOnA:
        name = "repetition"

        def check(self, generated, token, text):
            return True

        def allowed(self, generated):
            return None

        def penalty(self, generated):
            return [Shift(np.array([1]), -0.1, end=True)] if len(generated) == 2 else None

    script = {(2,): 1}
    plain = Decoder(FakeBackend(4, script=script), vocab, {0}).generate([2], max_tokens=6)
    r = Decoder(FakeBackend(4, script={**script, tuple([2] + plain.tokens[:2]): 1}), vocab, {0}).generate(
        [2], max_tokens=6, constraints=[EndOnA()])
    assert r.stats.stop_reason == "repetition: ends before a repeat" and r.text == plain.text[:2]


def test_a_yielding_constraint_out_of_rewinds_has_no_opinion_instead_of_a_dead_end():
    vocab = Vocabulary([b"<eos>"] + [bytes([97 + i]) for i in range(20)], control=[0])

    class Insists:
        """Rewinds to the start whenever a third character comes: never satisfiable."""

        def __init__(self, yields):
            self.name = "syntax"
            self.yields = yields

        def check(self, generated, token, text):
            return Rewind(0) if len(generated) >= 2 else True

        def allowed(self, generated):
            return None

    stop = lambda t: 4 if len(t) >= 4 else None  # noqa: E731
    plain = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=8, stop=stop)
    stuck = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=8, stop=stop, constraints=[Insists(False)])
    assert stuck.stats.stop_reason == "constraints: dead end" and stuck.text == "" and stuck.stats.rewinds == 4
    r = Decoder(FakeBackend(21), vocab, {0}).generate([3], max_tokens=8, stop=stop, constraints=[Insists(True)])
    assert r.stats.rewinds == 4 and r.stats.yielded == ["syntax"]
    assert len(r.text) >= 4 and r.stats.stop_reason != "constraints: dead end"
    assert plain.text and r.text != ""
    assert SyntaxMonitor().start(ctx("x = ┃\n", multiline=True)).yields  # the syntax constraint is such a one


def test_an_empty_suggestion_is_refused_where_the_document_breaks_at_the_cursor():
    hole = "def f(x):\n    if x:\n        ┃\n    return 1\n"  # the opener's body was removed
    s = session(hole)
    assert s.checker.needs_text
    assert s.check("", NL, "\n") is False and s.check("", EOS, None) is False and not s.may_end("")
    assert s.check("return 1", NL, "\n") is True  # a body mends it
    # a token of raw UTF-8 bytes (text None, not a control token) is part of a character, not
    # the end: the check waits for the character (``print(计`` then the bytes of ``算``)
    assert s.check("", X, None) is True
    assert session("def 计算(x):\n    return x\n\nprint(计┃", multiline=True).check("计", X, None) is True
    # BODY breaks on the line below the cursor (a deeper line with no opener): also refused
    assert session(BODY).checker.needs_text and not session(BODY).may_end("")
    # a document that is fine without a suggestion: an empty one is the user's business
    fine = session(FIB)
    assert not fine.checker.needs_text and fine.check("", NL, "\n") is True and fine.may_end("")
    # broken far below the cursor: not this suggestion's to mend
    far = session("def f(x):\n    ┃\n    y = 1\n    z = 2\n    w = (\n")
    assert not far.checker.needs_text and far.may_end("")
