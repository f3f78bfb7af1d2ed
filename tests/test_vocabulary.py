"""The token vocabulary index on a small synthetic vocabulary."""

import numpy as np
import pytest

from monitors.vocabulary import Vocabulary

PIECES = [b"<eos>", b"a", b"ap", b"app", b"append", b"appendleft", b"(", b"()", b"append(", b" ", b"\n",
          b"\xe2", b"x", b"_", b"ext", b"extend", b".", b"", b"app.", b"apply"]
EOS, CONTROL = 0, [0]


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(PIECES, control=CONTROL)


def ids(arr):
    return sorted(int(i) for i in arr)


def tok(*texts):
    return sorted(PIECES.index(t.encode()) for t in texts)


def test_control_and_opaque_have_no_text(vocab):
    assert vocab.text(EOS) is None
    assert vocab.text(PIECES.index(b"\xe2")) is None  # half a UTF-8 sequence
    assert vocab.is_opaque[PIECES.index(b"\xe2")]
    assert vocab.text(PIECES.index(b"")) is None
    assert vocab.text(1) == "a"


def test_starting_with(vocab):
    assert ids(vocab.ids_starting_with("app")) == tok("app", "append", "appendleft", "append(", "app.", "apply")
    assert ids(vocab.ids_starting_with("appendl")) == tok("appendleft")
    assert ids(vocab.ids_starting_with("zzz")) == []
    assert EOS not in ids(vocab.ids_starting_with(""))


def test_prefix_of(vocab):
    assert ids(vocab.ids_prefix_of("append(x)")) == tok("a", "ap", "app", "append", "append(")


def test_consistent_with(vocab):
    assert ids(vocab.ids_consistent_with("app")) == tok("a", "ap", "app", "append", "appendleft", "append(", "app.", "apply")


def test_finishing_word(vocab):
    # tokens whose identifier run is exactly "append": "append" itself and "append("
    assert ids(vocab.finishing_word("append")) == tok("append", "append(")
    # with nothing left of the name: tokens that start with a non-word character
    assert ids(vocab.finishing_word("")) == tok("(", "()", " ", "\n", ".")


def test_has_longer_than(vocab):
    assert vocab.has_longer_than("app")
    assert not vocab.has_longer_than("appendleft")
    assert not vocab.has_longer_than("q")


def test_duplicate_texts_are_all_found():
    v = Vocabulary([b"ab", b"ab", b"abc"])
    assert ids(v.ids_for_text("ab")) == [0, 1]
    assert ids(v.ids_prefix_of("abc")) == [0, 1, 2]


def test_validation():
    with pytest.raises(ValueError, match="at least one"):
        Vocabulary([])
    with pytest.raises(ValueError, match="outside"):
        Vocabulary([b"a"], control=[5])


def test_word_run(vocab):
    wr = vocab.word_run
    assert wr[PIECES.index(b"append(")] == 6
    assert wr[PIECES.index(b"(")] == 0
    assert wr[PIECES.index(b"_")] == 1
    assert isinstance(wr, np.ndarray)
