"""Team mode end to end: a real llama-server (built by tests/llama_server/setup.sh, which `make
test` runs) on loopback with the embedded model, and steercode's front ends using it: the engine
(suggestions equal the local backend's, monitors still intervene), ``steercode stdio`` and
``doctor``, and the LSP server through a real client (cancellation mid-stream, the server killed
mid-request, the server back)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import pytest_lsp
from conftest import ROOT, steercode_cmd
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.model


def _binary() -> Path:
    from completion.models import llama_server_path

    p = llama_server_path()
    if not p.exists():
        pytest.skip(f"no llama-server at {p}: run tests/llama_server/setup.sh (make test does)")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-server on a loopback port: the way docs/team-mode.md runs the box (smaller)."""

    def __init__(self, binary: Path, model: str, port: int) -> None:
        self.binary, self.model, self.port = binary, model, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "-m", self.model, "--host", "127.0.0.1", "--port", str(self.port), "-c", "8192",
             "--parallel", "2", "--cont-batching", "-fa", "off", "--swa-full", "--no-repack", "-t", "2", "--no-webui"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # a condition: the server answers /health
            assert self.proc.poll() is None, "llama-server exited at start"
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("llama-server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def slots(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/slots", timeout=5) as r:
            return json.loads(r.read())

    def generating(self) -> bool:
        return any(s.get("is_processing") and (s.get("next_token") or [{}])[0].get("n_decoded", 0) > 0 for s in self.slots())

    def idle(self) -> bool:
        return not any(s.get("is_processing") for s in self.slots())


def wait_for(cond, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def box(model_path):
    srv = LlamaServer(_binary(), model_path, _free_port())
    srv.start()
    yield srv
    srv.kill()


def remote_engine(url: str, model_path: str, **kw):
    from completion.engine import Engine
    from completion.settings import Settings

    s, problems = Settings(model_path=model_path).merge({"model_url": url, "cache": False, "prefetch": False,
                                                         "first_line_fast": False, **kw})
    assert not problems
    e = Engine(s)
    e.load()
    return e


SITES = [
    ("def fibonacci(n):\n    if n < 2:\n        return n\n    return ", None),
    ("import os\n\n\ndef list_python_files(root):\n    out = []\n    for name in os.listdir(root):\n        if name.", None),
    ("class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.", None),
]


def test_remote_suggestions_equal_the_local_backends(box, model_path):
    """Greedy steering over the wire picks what the local decoder picks (full vocabulary, the
    same llama.cpp): the same suggestions, monitors on."""
    from completion.engine import Engine
    from completion.settings import Settings

    local = Engine(Settings(model_path=model_path, vocabulary="full", cache=False, prefetch=False, first_line_fast=False))
    local.load()
    try:
        want = [local.complete_text(src, options={"line_mode": "single"}).insert_text for src, _ in SITES]
    finally:
        local.close()
    remote = remote_engine(box.url, model_path)
    try:
        got = [remote.complete_text(src, options={"line_mode": "single"}) for src, _ in SITES]
        assert [c.insert_text for c in got] == want
        assert all(c.insert_text.strip() for c in got)
        assert remote.describe()["server"]["reachable"]
    finally:
        remote.close()


def test_monitors_still_intervene_over_the_wire(box, model_path):
    """Where the model alone writes a member the module does not have, the monitored model (on
    the server) does not (several prompts: which ones make the model invent depends on the CPU;
    at least one must)."""
    import importlib
    import re

    sources = [
        "import collections\n\ncounts = collections.", "import collections\n\nresult = collections.",
        "import shutil\n\ncounts = shutil.", "import logging\n\nvalue = logging.",
        "import textwrap\n\ncounts = textwrap.", "import logging\n\nresult = logging.",
    ]
    first = lambda s: (re.match(r"[A-Za-z_]\w*", s) or re.match("", s)).group(0)  # noqa: E731
    e = remote_engine(box.url, model_path)
    try:
        invented = 0
        for src in sources:
            module = importlib.import_module(src.split()[1])
            e.monitor_suite().runner.call(("py-members", src, "", None), timeout=120)  # jedi warm: a verdict, not a timeout
            plain = e.complete_text(src, options={"monitors": [], "line_mode": "single"})
            if hasattr(module, first(plain.insert_text)):
                continue
            invented += 1
            monitored = e.complete_text(src, options={"line_mode": "single"})
            # a member the module has, or nothing when every way on was a dead end (as the local
            # full-vocabulary model does at ``textwrap.``): never the invented one
            name = first(monitored.insert_text)
            assert name != first(plain.insert_text) and (name == "" or hasattr(module, name)), (
                src, plain.insert_text, monitored.insert_text)
            assert monitored.stats["monitors"]["members"]["interventions"] >= 1
        assert invented >= 1, "the model invented no member at any of the prompts: pick others"
    finally:
        e.close()


def test_self_member_site_is_steered_over_the_wire(box, model_path):
    """``self.`` in a method: the suggestion names a member the class has."""
    src = ("class Account:\n    def __init__(self, owner):\n        self.owner = owner\n        self.balance = 0\n\n"
           "    def deposit(self, amount):\n        self.")
    e = remote_engine(box.url, model_path)
    try:
        e.monitor_suite().runner.call(("py-members", src, "", None), timeout=120)
        c = e.complete_text(src, options={"line_mode": "single"})
        assert c.insert_text.split(" ", 1)[0].rstrip("+=-.(") in ("owner", "balance", "deposit"), c.insert_text
    finally:
        e.close()


def run(*args: str, input: bytes | None = None, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(steercode_cmd(*args), input=input, capture_output=True, timeout=timeout, env=env, cwd=ROOT)


def test_stdio_through_the_server(box, server_env):
    reqs = [{"id": 1, "text": "def fibonacci(n):\n    if n < 2:\n        return n\n    return ", "line": 3, "character": 11,
             "language": "python"},
            {"id": 2, "text": "def add(a, b):\n    return ", "line": 1, "character": 11, "language": "python"}]
    p = run("stdio", "--model-url", box.url, input="".join(json.dumps(r) + "\n" for r in reqs).encode(), env=server_env)
    assert p.returncode == 0, p.stderr.decode()
    out = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [1, 2]
    assert all(o.get("completion", "").strip() for o in out), out


def test_stdio_with_the_server_down_says_so_and_keeps_serving(server_env):
    url = f"http://127.0.0.1:{_free_port()}"
    reqs = [{"id": 1, "text": "x = ", "line": 0, "character": 4}, {"id": 2, "text": "y = ", "line": 0, "character": 4}]
    p = run("stdio", "--model-url", url, input="".join(json.dumps(r) + "\n" for r in reqs).encode(), env=server_env)
    assert p.returncode == 0, p.stderr.decode()
    out = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [1, 2]
    for o in out:
        assert o["error"]["code"] == "server_error" and "connection refused" in o["error"]["message"], o


def test_stdio_falls_back_to_the_local_model_when_configured(server_env):
    url = f"http://127.0.0.1:{_free_port()}"
    req = {"id": 1, "text": "def add(a, b):\n    return ", "line": 1, "character": 11}
    p = run("stdio", "--model-url", url, "--set", "model_fallback=true", input=(json.dumps(req) + "\n").encode(), env=server_env)
    out = json.loads(p.stdout.decode().splitlines()[0])
    assert out.get("completion", "").strip() and "connection refused" in out["stats"]["fallback"], out


def test_doctor_checks_the_server(box, server_env):
    p = run("doctor", "--model-url", box.url, env=server_env)
    text = p.stdout.decode()
    assert p.returncode == 0, text + p.stderr.decode()
    for needle in ("server reachable", "server context", "4096 tokens per slot", "server vocabulary", "server FIM tokens",
                   "test completion"):
        assert needle in text, text


# ---- the LSP server through a real client ---------------------------------------------------

_PORT = _free_port()


@pytest.fixture(scope="module")
def lsp_box(model_path):
    srv = LlamaServer(_binary(), model_path, _PORT)
    srv.start()
    yield srv
    srv.kill()


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=steercode_cmd("serve", "--log-level", "warning", "--model-url",
                                                           f"http://127.0.0.1:{_PORT}")),
    scope="module",
    loop_scope="module",
)
async def client(lsp_client: LanguageClient, lsp_box):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
        root_uri=ROOT.as_uri(), initialization_options={"steercode": {"maxTokens": 48}}))
    yield
    await lsp_client.shutdown_session()


_n = 0


def open_doc(client: LanguageClient, text: str) -> str:
    global _n
    _n += 1
    uri = (ROOT / "examples" / f"_team_test_{_n}.py").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
    return uri


def params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))


async def configure(client: LanguageClient, **steercode) -> None:
    """didChangeConfiguration, then a status request: the server handles messages in order, so
    the settings are applied once it answers."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"steercode": steercode}))
    await client.protocol.send_request_async("steercode/status", {})


async def until(cond, timeout: float = 60.0) -> bool:
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return False


LONG = "# A long module of many small functions\n\ndef f0(x):\n    return x + 0\n\n"


@pytest.mark.asyncio(loop_scope="module")
async def test_lsp_inline_completion_through_the_server(client: LanguageClient):
    uri = open_doc(client, "def fibonacci(n):\n    if n < 2:\n        return n\n    return \n")
    r = await client.text_document_inline_completion_async(params(uri, 3, 11))
    assert r is not None and r.items and r.items[0].insert_text.strip()


@pytest.mark.asyncio(loop_scope="module")
async def test_lsp_cancellation_mid_stream_stops_the_server(client: LanguageClient, lsp_box):
    import asyncio

    await configure(client, maxTokens=600, lineMode="multi", maxLines=200, firstLineFast=False, cache=False, prefetch=False)
    uri = open_doc(client, LONG)
    fut = client.protocol.send_request("textDocument/inlineCompletion", params(uri, 5, 0), msg_id="team-cancel")
    assert await until(lsp_box.generating), "the server never started generating"
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="team-cancel"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(fut), 30)
    assert info.value.code == -32800
    assert await until(lsp_box.idle), "the server kept generating for a cancelled request"
    await configure(client, maxTokens=48, firstLineFast=False, prefetch=False)  # no background work after it
    after = await client.text_document_inline_completion_async(params(uri, 5, 0))
    assert after is not None and after.items  # still serving


@pytest.mark.asyncio(loop_scope="module")
async def test_lsp_server_killed_mid_request_then_back(client: LanguageClient, lsp_box):
    import asyncio

    await configure(client, maxTokens=600, lineMode="multi", maxLines=200, firstLineFast=False, cache=False, prefetch=False)
    uri = open_doc(client, LONG)
    fut = client.protocol.send_request("textDocument/inlineCompletion", params(uri, 5, 0), msg_id="team-kill")
    assert await until(lsp_box.generating)
    before = len(client.messages)
    lsp_box.kill()
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(fut), 60)
    assert "model server" in info.value.message and "closed" in info.value.message, info.value.message
    assert await until(lambda: len(client.messages) > before, 10)
    assert "model server" in client.messages[-1].message  # the user is told (window/showMessage)
    # down: each request fails with the reason, the LSP server keeps serving
    with pytest.raises(JsonRpcException) as info:
        await client.text_document_inline_completion_async(params(uri, 5, 0))
    assert "connection refused" in info.value.message
    lsp_box.start()  # back (same port)
    await configure(client, maxTokens=48, firstLineFast=False, prefetch=False)
    r = await client.text_document_inline_completion_async(params(uri, 5, 0))
    assert r is not None and r.items and r.items[0].insert_text.strip()
