"""Exactness on the real model: drafting never changes the output, and the KV cache after any
request (rollbacks included) behaves like a fresh context."""

from __future__ import annotations

import pytest
from conftest import ROOT

from completion.backend import BackendConfig, LlamaBackend
from completion.engine import Engine
from completion.settings import Settings

pytestmark = pytest.mark.model

REPETITIVE = '''class Shapes:
    def area_of_square(self, side):
        """Area of a square."""
        return side * side

    def area_of_rectangle(self, width, height):
        """Area of a rectangle."""
        return width * height

    def area_of_triangle(self, base, height):
        """Area of a triangle."""
        return base * height / 2

    def area_of_circle(self, radius):
'''


def test_backend_is_batch_invariant(model_path):
    be = LlamaBackend(BackendConfig(model_path=model_path))
    try:
        assert be.batch_invariant, "llama-cpp-python was built with llamafile (see Makefile)"
        toks = be.tokenize((ROOT / "completion" / "engine.py").read_text()[:6000], add_bos=True)
        n = 300
        be.eval_prompt(toks[:n])
        seq = []
        for t in toks[n : n + 6]:
            be.eval([t])
            seq.append(be.logits(-1).copy())
        be.truncate(n)
        be.eval(toks[n : n + 6], rows="all")
        for i, row in enumerate(seq):
            assert (be.logits(i) == row).all()
        be.truncate(n)
        be.set_threads(1, 1)
        be.eval([toks[n]])
        assert (be.logits(-1) == seq[0]).all()
    finally:
        be.close()


def test_an_aborted_evaluation_leaves_the_kv_cache_as_before(model_path, caplog):
    """Background work stops mid-evaluation when a keystroke cancels it; what it leaves in the
    KV cache must give the same numbers as a fresh evaluation. Stopping it on purpose is no
    error for the log (llama.cpp reports it as four errors and warnings)."""
    import logging

    from completion.backend import EvalAborted

    caplog.set_level(logging.DEBUG, logger="steercode.llama")

    be = LlamaBackend(BackendConfig(model_path=model_path))
    try:
        toks = be.tokenize((ROOT / "completion" / "engine.py").read_text()[:3000], add_bos=True)
        be.eval_prompt(toks[:200])
        ref = be.tail_logits().copy()
        with be.abortable(lambda: True), pytest.raises(EvalAborted):
            be.eval(toks[200:400], rows="last")
        said = [r for r in caplog.records if r.name == "steercode.llama"]
        assert any("failed to decode" in r.getMessage() for r in said)  # llama.cpp did report it ...
        assert not [r.getMessage() for r in said if r.levelno >= logging.WARNING]  # ... not as a problem
        assert be.n_past == 200 and be.tokens == toks[:200]
        be.eval([toks[200]])  # no abort check any more: evaluations run to the end
        be.truncate(200)
        be.eval_prompt(toks[:200])
        assert (be.tail_logits() == ref).all()
        be.eval_prompt(toks[:260])
        after = be.tail_logits().copy()
        be.reset()
        be.eval_prompt(toks[:260])
        assert (be.tail_logits() == after).all()  # as from a fresh context
    finally:
        be.close()


def sites(text: str, every: int = 3):
    lines = text.split("\n")
    pos = 0
    for i, line in enumerate(lines):
        if i % every == 0 and line.startswith("    ") and line.strip():
            yield pos + len(line) - len(line.lstrip())
        pos += len(line) + 1


@pytest.mark.parametrize("source", ["repetitive", "engine"])
def test_drafting_never_changes_the_output(engine, source):
    text = REPETITIVE if source == "repetitive" else (ROOT / "completion" / "prompt.py").read_text()
    opts = {"line_mode": "multi", "max_lines": 6, "max_tokens": 60, "cache": False, "first_line_fast": False, "prefetch": False}
    offsets = list(sites(text))[:12]
    accepted = 0
    for off in offsets + [len(text)]:
        doc = text[:off] + text[text.find("\n", off) if text.find("\n", off) >= 0 else len(text):]
        plain = engine.complete_text(doc, off, options={**opts, "drafting": False})
        drafted = engine.complete_text(doc, off, options={**opts, "drafting": True})
        assert drafted.insert_text == plain.insert_text, (off, plain.insert_text, drafted.insert_text)
        accepted += drafted.stats["accepted_draft_tokens"]
    assert accepted > 0  # the drafts were used, not just skipped


def test_kv_state_after_requests_matches_a_fresh_context(engine, model_path):
    text = REPETITIVE
    opts = {"line_mode": "multi", "max_lines": 6, "max_tokens": 60, "cache": False, "first_line_fast": False}
    # requests that roll back (drafts rejected, monitors) and leave the cache in some state
    for off in list(sites(text, 2))[:4]:
        engine.complete_text(text[:off], options=opts)
    warm = engine.complete_text(text, options=opts)
    fresh_engine = Engine(Settings(model_path=model_path))
    fresh_engine.load()
    try:
        fresh = fresh_engine.complete_text(text, options=opts)
    finally:
        fresh_engine.close()
    assert warm.insert_text == fresh.insert_text
    assert warm.stats["reused_tokens"] > 0
