"""The repeats monitor: the cursor's line must not end as a copy of the assignment above."""

from __future__ import annotations

import pytest
from conftest import split_cursor
from fakes import FakeBackend

from completion.decoding import Decoder
from monitors.base import MonitorContext, Rewind
from monitors.repeats import RepeatsMonitor
from monitors.vocabulary import Vocabulary

PIECES = [b"<eos>", b"pos", b" = ", b"lineno", b"\n", b"x"]
VOCAB = Vocabulary(PIECES, control=[0])
EOS, POS, EQ, LINENO, NL, X = range(len(PIECES))

SRC = "class P:\n    def __init__(self, pos, lineno):\n        self.pos = pos\n\n        self.┃\n"


def start(source: str, healed: int = 0):
    text, off = split_cursor(source)
    ctx = MonitorContext(text=text, offset=off - healed, cursor=off, language="python", path=None, vocab=VOCAB)
    return RepeatsMonitor().start(ctx)


@pytest.mark.parametrize(
    "generated, token, verdict",
    [
        ("pos = pos", NL, "rewind"),  # the copy ends here (the blank line between does not count)
        ("pos = pos", EOS, "rewind"),  # ... or with the end of the suggestion
        ("pos = pos", X, True),  # the line goes on: ``pos = posx``
        ("pos = lineno", NL, True),
        ("", NL, True),  # nothing generated: not the model's copy
        ("pos = pos\n", X, True),  # later lines are not judged
    ],
)
def test_verdicts(generated, token, verdict):
    r = start(SRC).check(generated, token, VOCAB.text(token))
    assert (isinstance(r, Rewind) and r.to == 0) if verdict == "rewind" else r is True


def test_token_healing_the_user_text_is_not_the_models_copy():
    # cursor after "self.po": healing regenerates "po"; the rewind goes to the model's own text
    sess = start(SRC.replace("self.┃", "self.po┃"), healed=2)
    r = sess.check("pos = pos", NL, "\n")
    assert isinstance(r, Rewind) and r.to == 2
    # the user typed the copy themselves: ending their line is not the model's to refuse
    sess = start(SRC.replace("self.┃", "self.pos = pos┃"), healed=3)
    assert sess.check("pos", NL, "\n") is True


@pytest.mark.parametrize(
    "above",
    [
        "        self.pos = next(tokens)",  # a call: running it twice is not running it once
        "        self.pos += 1",  # changes the value each time
        "        # self.pos = pos",
        "        if self.pos == pos:",
    ],
)
def test_no_opinion_unless_the_line_above_is_an_idempotent_assignment(above):
    assert start(f"def f(self):\n{above}\n        self.┃\n") is None


def test_the_decoder_takes_its_next_choice_instead_of_the_copy():
    # the model's favourite line is a copy of the one above; the monitor rewinds to its first token
    script = {(9,): POS, (9, POS): EQ, (9, POS, EQ): POS, (9, POS, EQ, POS): NL}
    plain = Decoder(FakeBackend(len(PIECES), script=script), VOCAB, {EOS}).generate([9], max_tokens=4)
    assert plain.text.startswith("pos = pos\n")
    r = Decoder(FakeBackend(len(PIECES), script=script), VOCAB, {EOS}).generate([9], max_tokens=4, constraints=[start(SRC)])
    assert not r.text.split("\n")[0] == "pos = pos"
    assert r.stats.rewinds == 1
