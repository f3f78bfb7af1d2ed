"""Settings: camelCase and snake_case, readable problems, bad values keep the old ones."""

from completion.settings import Settings


def test_defaults_are_valid():
    assert Settings().problems() == []


def test_camel_and_snake_case():
    s, problems = Settings().merge({"maxTokens": 32, "line_mode": "single", "modelPath": "/x.gguf"})
    assert problems == []
    assert (s.max_tokens, s.line_mode, s.model_path) == (32, "single", "/x.gguf")


def test_bad_values_are_reported_and_skipped():
    s, problems = Settings().merge({"maxTokens": -3, "lineMode": "sideways", "threads": "many", "bogus": 1})
    assert s == Settings()
    text = " ".join(problems)
    assert "max_tokens" in text and "line_mode" in text and "threads" in text and "bogus" in text


def test_cross_field_problem_refuses_change():
    s, problems = Settings().merge({"contextTokens": 5000})
    assert s.context_tokens == Settings().context_tokens
    assert problems and "context_size" in problems[-1]


def test_empty_model_path_means_embedded():
    s, problems = Settings(model_path="/a.gguf").merge({"modelPath": ""})
    assert s.model_path is None and problems == []


def test_not_an_object():
    s, problems = Settings().merge(["x"])  # type: ignore[arg-type]
    assert problems and "object" in problems[0]


def test_counts_must_be_whole_numbers():
    """threads=1.5 used to pass validation and then fail the model load (a server unloaded its
    working model); seed=1.5 failed every sampled request. 4.0 is still 4."""
    base = Settings()
    for key in ("threads", "contextSize", "seed", "maxLines", "maxDraft", "maxTokens"):
        s, problems = base.merge({key: 2.5})
        assert s == base and problems and "whole number" in problems[0], key
    s, problems = base.merge({"threads": 4.0, "temperature": 0.5})
    assert problems == [] and s.threads == 4 and isinstance(s.threads, int) and s.temperature == 0.5


def test_a_combination_is_judged_whole_whatever_the_key_order():
    """The budget check used to run after each key: the same three values were refused in one
    order (against values the user never asked for) and accepted in another."""
    keys = [("contextSize", 512), ("contextTokens", 256), ("suffixTokens", 128), ("maxTokens", 32)]
    for order in (keys, keys[::-1], keys[1:] + keys[:1]):
        s, problems = Settings().merge(dict(order))
        assert problems == [], order
        assert (s.context_size, s.context_tokens, s.suffix_tokens, s.max_tokens) == (512, 256, 128, 32)
    s, problems = Settings().merge({"contextSize": 512, "contextTokens": 300, "suffixTokens": 100})
    assert s == Settings()
    assert problems == ["context_tokens + suffix_tokens + max_tokens + 64 reserved (300 + 100 + 64 + 64 = 528) "
                        "must fit in context_size (512)"]
