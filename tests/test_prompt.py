"""Prompt windows: budgets, line-aligned and stable starts, very long lines (real tokenizer)."""

import pytest

from completion.prompt import WINDOW_STEP

pytestmark = pytest.mark.model


def lines(n):
    return "".join(f"value_{i} = compute({i}, 'item number {i}')\n" for i in range(n))


def test_window_fits_budget_and_starts_at_a_snapped_line(engine):
    b = engine._model.builder
    text = lines(400)
    p = b.build(text, len(text), budget=300)
    assert len(p.tokens) <= 300 + 1
    assert p.window_start > 0
    assert text[p.window_start - 1] == "\n"
    assert text.count("\n", 0, p.window_start) % WINDOW_STEP == 0


def test_window_start_is_stable_while_typing(engine):
    b = engine._model.builder
    text = lines(400)
    starts = set()
    typed = "result = compute_total(value_1, value_2)"
    for i in range(len(typed) + 1):
        doc = text + typed[:i]
        p = b.build(doc, len(doc), budget=300)
        starts.add(p.window_start)
    assert len(starts) == 1


def test_one_huge_line_is_cut_inside_the_line(engine):
    b = engine._model.builder
    text = "x = [" + ", ".join(str(i) for i in range(200000)) + "]"
    p = b.build(text, len(text), budget=256)
    assert 200 <= len(p.tokens) <= 257  # the window is cut to the budget, not emptied
    assert p.window_start > 0


def test_a_long_dense_line_before_the_cursor_keeps_its_context(engine):
    """About one character per token (digits, commas): the cut inside the line used to jump
    past the cursor and leave the model only the BOS token."""
    b = engine._model.builder
    text = "import os\n\nDATA = [" + ", ".join(str(i % 10) for i in range(1000))
    p = b.build(text, len(text), budget=1024)
    assert 900 <= len(p.tokens) <= 1025


def test_small_document_uses_everything(engine):
    b = engine._model.builder
    text = "def f():\n    return 1\n"
    p = b.build(text, len(text), budget=300)
    assert p.window_start == 0
    assert p.tokens[0] == engine._model.backend.bos_id


def test_top_of_a_file_is_headed_with_its_name_as_a_comment(engine):
    """Nothing but blank lines before the cursor's line: the prompt starts with ``# main.py``
    (the model wrote English prose into an empty .py file); below the first line it does not."""
    b = engine._model.builder
    def detok(toks):
        return engine._model.backend.detokenize(toks).decode()
    bos = engine._model.backend.bos_id
    for text, language, header in (("", "python", "# main.py\n\n"), ("\n\nimp", "python", "# main.py\n\n"),
                                   ("", "typescript", "// main.py\n\n"), ("", "plaintext", ""),
                                   ("import os\n", "python", "")):
        p = b.build(text, len(text), budget=300, path="/work/src/main.py", language=language)
        assert p.tokens[0] == bos and p.window_start == 0
        assert detok(p.tokens[1:]) == header + text[: len(text) - len(p.healing)], (text, language)
        assert p.n_fixed == 1 + len(b._tokenize(header)) if header else p.n_fixed == 1
    p = b.build("", 0, budget=300, path=None, language="python")
    assert p.tokens == [bos]


def test_an_empty_python_file_gets_python(engine):
    """End to end on the real model: an empty main.py got "The 2019-2020 school year is ..."; and
    an empty app.js right after it was answered from the cache with main.py's suggestion."""
    import ast

    from completion.engine import CompletionRequest

    py = engine.complete(CompletionRequest(text="", offset=0, language="python", path="main.py"))
    assert py.insert_text.strip()
    ast.parse(py.insert_text)
    js = engine.complete(CompletionRequest(text="", offset=0, language="javascript", path="app.js"))
    assert not js.stats.get("cache_hit"), js.stats
