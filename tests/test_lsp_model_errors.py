"""A missing or corrupt model: one readable message, empty answers (no error storm), recovery."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from conftest import ROOT, steercode_cmd
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from test_lsp import caps, inline, open_doc, status

pytestmark = pytest.mark.model


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=steercode_cmd("serve", "--log-level", "error")),
    scope="module",
    loop_scope="module",
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=caps(),
            root_uri=ROOT.as_uri(),
            initialization_options={"modelPath": "/nonexistent/model.gguf", "modelWaitMs": 2000},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def wait_for(predicate, timeout=30.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.asyncio(loop_scope="module")
async def test_missing_model_is_reported_once_and_requests_return_empty(client: LanguageClient):
    assert await wait_for(lambda: any(m.type == types.MessageType.Error for m in client.messages))
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1 and "model file not found" in errors[0].message
    uri = open_doc(client, "def f():\n    return \n")
    for _ in range(5):
        r = await inline(client, uri, 1, 11)
        assert r.items == []
    assert len([m for m in client.messages if m.type == types.MessageType.Error]) == 1
    st = await status(client)
    assert not st["ready"] and "not found" in st["error"]


@pytest.mark.asyncio(loop_scope="module")
async def test_corrupt_model_then_recovery(client: LanguageClient, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 100)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"steercode": {"modelPath": str(bad)}})
    )
    assert await wait_for(lambda: sum(m.type == types.MessageType.Error for m in client.messages) >= 2)
    assert "could not load" in client.messages[-1].message or "corrupt" in client.messages[-1].message
    # back to the embedded model: the server recovers without a restart
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"steercode": {"modelPath": ""}}))
    ready = False
    for _ in range(600):
        st = await status(client)
        if st["ready"]:
            ready = True
            break
        await asyncio.sleep(0.1)
    assert ready
    uri = open_doc(client, "def g(x):\n    return \n")
    r = await inline(client, uri, 1, 11)
    assert r.items and r.items[0].insert_text.strip()
