"""Token healing: which tokens are backed off, and the constraint that regenerates them."""

import pytest

from completion.constraints import HealingConstraint
from completion.prompt import heal_tokens
from monitors.vocabulary import Vocabulary

PIECES = [b"<s>", b"obj", b".", b"ba", b"bar", b"baz", b" ", b"  ", b"    ", b"\n", b"\n    ", b"x", b".b", b" =", b"b", b"a", b"r", b"    return"]


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(PIECES, control=[0])


def t(*texts):
    return [PIECES.index(x.encode()) for x in texts]


def test_half_identifier_is_backed_off(vocab):
    kept, removed = heal_tokens(t("obj", ".", "ba"), vocab)
    # ".ba" is not the start of any token, so "." stays
    assert removed == "ba"
    assert kept == t("obj", ".")


def test_merge_across_boundary_backs_off_two_tokens():
    v = Vocabulary([b"obj", b".", b"ba", b".bar", b"bar"])
    kept, removed = heal_tokens([0, 1, 2], v)
    assert removed == ".ba"
    assert kept == [0]


def test_complete_token_without_extension_is_kept(vocab):
    kept, removed = heal_tokens(t("x", " ="), vocab)
    assert removed == ""
    assert kept == t("x", " =")


def test_indentation_after_newline(vocab):
    kept, removed = heal_tokens(t("x", "\n", "    "), vocab)
    # "    " could merge into a longer token; "\n" + "    " is itself a token start
    assert removed == "\n    "
    assert kept == t("x")


def test_fixed_prefix_is_never_healed(vocab):
    kept, removed = heal_tokens(t("<s>", "ba"), vocab, n_fixed=2)
    assert removed == "" and kept == t("<s>", "ba")


def test_heal_is_pure(vocab):
    toks = t("obj", ".", "ba")
    heal_tokens(toks, vocab)
    assert toks == t("obj", ".", "ba")


def test_constraint_requires_a_token_starting_with_the_text(vocab):
    c = HealingConstraint("ba", vocab)
    assert c.check("", 0, "bar")
    assert c.check("", 0, "ba")
    assert not c.check("", 0, "b")  # " b"+"a" is not how "ba" tokenizes
    assert not c.check("", 0, "x")
    assert not c.check("", 0, None)  # control tokens cannot heal
    assert sorted(int(i) for i in c.allowed("")) == sorted(t("ba", "bar", "baz"))
    # once the text is reproduced the constraint has no opinion
    assert c.check("bar", 0, "(")
    assert c.allowed("bar") is None


def test_constraint_falls_back_to_prefixes_when_no_single_token_covers_it():
    v = Vocabulary([b"ab", b"c", b"abc_not"])
    c = HealingConstraint("abcd", v)  # no token starts with "abcd"
    assert c.check("", 0, "ab")
    assert c.check("ab", 0, "c")
    assert not c.check("ab", 0, "abc_not")


def test_constraint_validates():
    with pytest.raises(ValueError, match="non-empty"):
        HealingConstraint("", Vocabulary([b"a"]))


@pytest.mark.model
def test_real_tokenizer_heals_partial_identifier(engine):
    m = engine._model
    text = "import os\nresult = os.path.jo"
    prompt = m.builder.build(text, len(text), budget=256)
    assert prompt.healing.endswith("jo")
    assert prompt.decode_start == len(text) - len(prompt.healing)
