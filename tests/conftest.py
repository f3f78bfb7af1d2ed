"""Shared fixtures: the real embedded model (installed from PyPI), tiny FIM models, helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))  # benchmarks/ (its measurements double as tests)

CURSOR = "┃"


def split_cursor(source: str) -> tuple[str, int]:
    """Text without the cursor marker, and the marker's offset."""
    if source.count(CURSOR) != 1:
        raise ValueError("mark exactly one cursor with ┃")
    offset = source.index(CURSOR)
    return source.replace(CURSOR, ""), offset


@pytest.fixture(scope="session")
def model_path() -> str:
    """The embedded default model, assembled into the cache (no network)."""
    from completion.models import embedded_model_path

    return str(embedded_model_path())


@pytest.fixture(scope="session")
def engine(model_path):
    """One engine on the real embedded model for the whole session."""
    from completion.engine import Engine
    from completion.settings import Settings

    e = Engine(Settings(model_path=model_path))
    e.load()
    yield e
    e.close()


@pytest.fixture(scope="session")
def tiny_fim_model(tmp_path_factory) -> tuple[str, dict[str, int]]:
    """A tiny random-weight llama GGUF with StarCoder2-style FIM tokens."""
    from tiny_gguf import build_tiny_gguf

    path = tmp_path_factory.mktemp("models") / "tiny-starcoder2.gguf"
    ids = build_tiny_gguf(path, ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<file_sep>", "<repo_name>"])
    return str(path), ids


def steercode_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lsp_server", *args]


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
