"""FIM templates: detection from vocabularies, and the template path on a real llama.cpp model."""

import numpy as np
import pytest
from conftest import split_cursor

from completion.engine import CompletionRequest, Engine
from completion.fim import FIM_TEMPLATES, detect_template
from completion.settings import Settings

VOCABS = {
    "qwen": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|endoftext|>"],
    "codegemma": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>", "<eos>"],
    "starcoder2": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<file_sep>", "<|endoftext|>"],
    "starcoder": ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<filename>", "<|endoftext|>"],
    "deepseek": ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"],
    "codellama": ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"],
    "codestral": ["[PREFIX]", "[SUFFIX]", "</s>"],
}


@pytest.mark.parametrize("family", sorted(VOCABS))
def test_detection(family):
    ids = {tok: 1000 + i for i, tok in enumerate(VOCABS[family])}
    t = detect_template(ids)
    assert t is not None and t.name == family
    assert t.prefix_id == ids[t.template.prefix]
    assert t.stop_ids  # every family has an end marker


def test_no_fim_tokens_means_prefix_only():
    assert detect_template({"<bos>": 2, "<eos>": 1}) is None


def test_explicit_choice():
    ids = {tok: i for i, tok in enumerate(VOCABS["qwen"])}
    assert detect_template(ids, "none") is None
    assert detect_template(ids, "fim-pipes").name == "fim-pipes"
    with pytest.raises(ValueError, match="does not fit"):
        detect_template(ids, "starcoder")
    with pytest.raises(ValueError, match="unknown"):
        detect_template(ids, "nonsense")


def test_templates_are_well_formed():
    names = [t.name for t in FIM_TEMPLATES]
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def tiny_engine(tiny_fim_model):
    path, ids = tiny_fim_model
    e = Engine(Settings(model_path=path, context_size=512, context_tokens=200, suffix_tokens=64, max_tokens=12))
    e.load()
    yield e, ids
    e.close()


def test_tiny_model_detects_starcoder2_like_llama_cpp(tiny_engine):
    e, ids = tiny_engine
    m = e._model
    assert m.template.name == "starcoder2"
    # llama.cpp's own detection agrees with ours
    assert m.backend.llama_fim_ids() == {"pre": ids["<fim_prefix>"], "suf": ids["<fim_suffix>"], "mid": ids["<fim_middle>"]}


def test_prompt_layout_puts_typed_line_after_middle(tiny_engine):
    e, ids = tiny_engine
    b = e._model.builder
    text, off = split_cursor("def f(x):\n    ret┃\n    pass\n")
    p = b.build(text, off, budget=200, suffix_budget=64, path="/src/pkg/mod.py")
    toks = p.tokens
    pre, suf, mid, sep = ids["<fim_prefix>"], ids["<fim_suffix>"], ids["<fim_middle>"], ids["<file_sep>"]
    assert toks[0] == sep
    assert toks.index(pre) < toks.index(suf) < toks.index(mid)
    detok = e._model.backend.detokenize
    assert detok(toks[toks.index(pre) + 1 : toks.index(suf)]) == b"def f(x):\n"
    assert detok(toks[toks.index(suf) + 1 : toks.index(mid)]) == b"\n    pass\n"
    # the typed part of the cursor line comes after the middle marker (minus what healing backs off)
    assert (detok(toks[toks.index(mid) + 1 :]).decode() + p.healing) == "    ret"
    assert detok(toks[1 : toks.index(pre)]) == b"mod.py\n"


def test_typing_appends_to_the_fim_prompt(tiny_engine):
    e, _ = tiny_engine
    b = e._model.builder
    text = "def f(x):\n    retur\n    pass\n"
    off = text.index("retur") + 5
    p1 = b.build(text, off, budget=200, suffix_budget=64)
    text2 = text[:off] + "n" + text[off:]
    p2 = b.build(text2, off + 1, budget=200, suffix_budget=64)
    common = 0
    while common < min(len(p1.tokens), len(p2.tokens)) and p1.tokens[common] == p2.tokens[common]:
        common += 1
    assert common >= p1.n_fixed  # everything up to the middle marker is reused


def test_completion_through_template_has_no_control_text(tiny_engine):
    e, ids = tiny_engine
    text, off = split_cursor("import os\n\ndef main():\n    ┃\n")
    for line_mode in ("single", "multi"):
        c = e.complete(CompletionRequest(text=text, offset=off, language="python", options={"line_mode": line_mode}))
        assert c.stats["template"] == "starcoder2"
        assert c.stats["generated_tokens"] >= 1
        for marker in ids:
            assert marker not in c.insert_text


def test_a_generated_control_token_ends_the_suggestion_before_it(tiny_engine, monkeypatch):
    """Random weights rarely choose a marker on their own, so make the model choose one: from the
    third generated token on, ``<file_sep>`` has the highest logit. The suggestion is the text
    before it, and the marker's text never reaches the editor."""
    e, ids = tiny_engine
    backend = e._model.backend
    sep = ids["<file_sep>"]
    calls = {"n": 0}
    real = backend.logits

    def logits(k=-1):
        row = np.array(real(k))
        calls["n"] += 1
        if calls["n"] >= 3:
            row[sep] = row.max() + 100.0
        return row

    monkeypatch.setattr(backend, "logits", logits)
    text, off = split_cursor("import os\n\ndef main():\n    ┃\n")
    c = e.complete(CompletionRequest(text=text, offset=off, language="python",
                                     options={"line_mode": "multi", "cache": False, "drafting": False}))
    assert calls["n"] >= 3  # the forced choice was reached
    assert c.stats["generated_tokens"] < 12  # it ended there, not at the token limit
    for marker in ids:
        assert marker not in c.insert_text
