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
