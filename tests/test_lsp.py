"""End to end: a real LSP client (pytest-lsp) against ``steercode serve`` on the embedded model."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Future

import pytest
import pytest_lsp
from conftest import ROOT, steercode_cmd
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

pytestmark = pytest.mark.model

MARKERS = ("<eos>", "<bos>", "<end_of_turn>", "<|", "<fim", "<start_of")


def caps() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(configuration=True),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(),
        ),
    )


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=steercode_cmd("serve", "--log-level", "warning")),
    scope="module",
    loop_scope="module",
)
async def client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=caps(),
            root_uri=ROOT.as_uri(),
            initialization_options={"steercode": {"maxTokens": 48}},
        )
    )
    lsp_client.init_result = result  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


_counter = 0


def open_doc(client: LanguageClient, text: str, language: str = "python") -> str:
    global _counter
    _counter += 1
    uri = (ROOT / "examples" / f"_lsp_test_{_counter}.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


INVOKED, AUTOMATIC = 1, 2  # LSP 3.18's InlineCompletionTriggerKind (lsprotocol 2023.0.1 still has 0 / 1)


def _send_raw_trigger_kinds(client: LanguageClient) -> None:
    """Make the test client send ``triggerKind`` as given (an int), as 3.18 editors do (and a
    ``selectedCompletionInfo`` when there is one)."""
    conv = client.protocol._converter

    def context(c: types.InlineCompletionContext) -> dict:
        out: dict = {"triggerKind": int(c.trigger_kind)}
        if c.selected_completion_info is not None:
            out["selectedCompletionInfo"] = conv.unstructure(c.selected_completion_info)
        return out

    conv.register_unstructure_hook(types.InlineCompletionContext, context)


async def inline(client: LanguageClient, uri: str, line: int, character: int, kind: int = INVOKED):
    """textDocument/inlineCompletion as editors send it (the final 3.18 trigger kinds)."""
    _send_raw_trigger_kinds(client)
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=kind),
        )
    )


def to_plain(obj):
    """pygls hands custom-request results over as namedtuples: turn them back into dicts."""
    if hasattr(obj, "_asdict"):
        return {k: to_plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


async def configure(client: LanguageClient, **steercode) -> None:
    """workspace/didChangeConfiguration with these settings; returns once the server has handled
    it (``steercode/status``'s count of handled configurations has moved on)."""
    before = (await status(client))["configurations"]
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"steercode": steercode}))
    for _ in range(500):
        if (await status(client))["configurations"] > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server did not handle the configuration {steercode} within 5 s")


async def next_message(client: LanguageClient, before: int):
    """The newest window/showMessage once there are more than ``before`` (waits up to 2.5 s)."""
    for _ in range(50):
        if len(client.messages) > before:
            break
        await asyncio.sleep(0.05)
    return client.messages[-1]


async def status(client: LanguageClient) -> dict:
    return to_plain(await client.protocol.send_request_async("steercode/status", {}))


async def until_generating(client: LanguageClient, steps: int = 4) -> None:
    """Returns once a completion is generating: it has begun ``steps`` decode steps (so
    ``steps - 1`` tokens are generated). Fails after 12 s."""
    for _ in range(600):
        running = (await status(client))["running"]
        if running and running["steps"] >= steps:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no completion got under way within 12 s")


@pytest.mark.asyncio(loop_scope="module")
async def test_capabilities_advertised(client: LanguageClient):
    caps = client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    sync = caps.text_document_sync
    kind = sync.change if hasattr(sync, "change") else sync
    assert kind == types.TextDocumentSyncKind.Incremental


@pytest.mark.asyncio(loop_scope="module")
async def test_model_loads_with_progress(client: LanguageClient):
    for _ in range(300):
        st = await status(client)
        kinds = [getattr(v, "kind", None) for reports in client.progress_reports.values() for v in reports]
        if st["ready"] and "end" in kinds:  # (the end comes a moment after the engine is ready)
            break
        await asyncio.sleep(0.1)
    assert st["ready"], st
    assert "begin" in kinds and "end" in kinds


@pytest.mark.asyncio(loop_scope="module")
async def test_analysis_warms_up_once_the_model_is_loaded(client: LanguageClient):
    """No completion asked for yet: the analysis worker loads jedi and caches the common types'
    members on its own (it used to start cold at the first completion)."""
    for _ in range(600):
        st = await status(client)
        if st["ready"] and st["analysis"] == "warm":
            break
        await asyncio.sleep(0.1)
    assert st["analysis"] == "warm", st


@pytest.mark.asyncio(loop_scope="module")
async def test_fibonacci_single_line(client: LanguageClient):
    text = "def fibonacci(n):\n    if n < 2:\n        return n\n    return \n"
    uri = open_doc(client, text)
    result = await inline(client, uri, 3, 11)
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert item.insert_text.strip()
    assert "\n" not in item.insert_text  # mid-statement: finish the line
    assert not any(m in item.insert_text for m in MARKERS)
    assert "fibonacci" in item.insert_text
    assert item.range.start == types.Position(line=3, character=11)


@pytest.mark.asyncio(loop_scope="module")
async def test_block_after_def(client: LanguageClient):
    text = "def fibonacci(n):\n    \n"
    uri = open_doc(client, text)
    result = await inline(client, uri, 1, 4)
    assert result.items
    body = result.items[0].insert_text
    assert body.strip()
    assert not any(m in body for m in MARKERS)
    for line in body.split("\n")[1:]:
        assert not line.strip() or line.startswith("    ")  # stays inside the function


@pytest.mark.asyncio(loop_scope="module")
async def test_drafts_come_from_other_open_documents(client: LanguageClient):
    # another open document holds the function the model is about to write: the server hands the
    # open documents to the drafter (whether its drafts pay depends on what the policy measured so
    # far in this shared server; tests/test_cache_drafting.py checks the drafts on a fresh engine)
    open_doc(client, "# cli.py\nimport argparse\n\n\ndef parse_args(argv=None):\n"
                     "    parser = argparse.ArgumentParser(\n        description=__doc__,\n")
    uri = open_doc(client, "import argparse\n\n\ndef parse_args(argv=None):\n\n")
    result = await inline(client, uri, 4, 0)
    assert result.items and result.items[0].insert_text.startswith("    parser = argparse.ArgumentParser(")
    last = (await status(client))["last"]
    assert last["related_documents"] >= 1, last
    assert "accepted_by_source" in last


@pytest.mark.asyncio(loop_scope="module")
async def test_completion_fallback_keeps_typed_word(client: LanguageClient):
    text = "import os\n\npath = os.path.jo"
    uri = open_doc(client, text)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=17),
        )
    )
    assert result.is_incomplete
    assert len(result.items) == 1
    edit = result.items[0].text_edit
    assert edit.new_text.startswith("jo")
    assert edit.range.start == types.Position(line=2, character=15)
    assert edit.range.end == types.Position(line=2, character=17)


@pytest.mark.asyncio(loop_scope="module")
async def test_incremental_sync_with_astral_characters(client: LanguageClient):
    # "😀" is 2 UTF-16 units: positions after it are off by one if units and code points mix
    text = 'label = "😀"\nname = "😀" + s\n'
    uri = open_doc(client, text)
    # insert "tr" after "s" on line 1, addressed in UTF-16 units: 's' is unit 14 (code point 13)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeEvent_Type1(
                    range=types.Range(start=types.Position(line=1, character=15), end=types.Position(line=1, character=15)),
                    text="tr",
                )
            ],
        )
    )
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=1, character=17))
    )
    assert result.items, "no suggestion to check the offsets with"
    edit = result.items[0].text_edit  # the typed word is what the server saw before the cursor
    assert edit.new_text.startswith("str")
    assert edit.range.start == types.Position(line=1, character=14)
    assert edit.range.end == types.Position(line=1, character=17)
    inl = await inline(client, uri, 1, 17)
    assert inl.items and inl.items[0].range.start == types.Position(line=1, character=17)


def _change(client: LanguageClient, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangeEvent_Type1(
                    range=types.Range(start=types.Position(line=start[0], character=start[1]),
                                      end=types.Position(line=end[0], character=end[1])),
                    text=text,
                )
            ],
        )
    )


async def _typed_word_range(client: LanguageClient, uri: str, line: int, character: int) -> types.Range:
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri),
                               position=types.Position(line=line, character=character))
    )
    assert result.items, "no suggestion to check the server's copy of the document with"
    return result.items[0].text_edit.range


@pytest.mark.asyncio(loop_scope="module")
async def test_edits_and_ranges_follow_lsp_line_breaks(client: LanguageClient):
    """LSP breaks lines at \\n, \\r\\n and \\r only. A form feed (common in Python source) is
    no line break: an edit below one used to land a line off (pygls splits with
    str.splitlines). A lone \\r before a \\n put the answer's range a line off."""
    uri = open_doc(client, "\x0c\nimport os\n\n")
    _change(client, uri, 2, (2, 0), (2, 0), "os.pa")
    assert await _typed_word_range(client, uri, 2, 5) == types.Range(
        start=types.Position(line=2, character=3), end=types.Position(line=2, character=5))
    inl = await inline(client, uri, 2, 5)
    assert inl.items and inl.items[0].range.start == types.Position(line=2, character=5)
    mixed = open_doc(client, "a = 1\rb = 2\nc = a + \n")
    inl = await inline(client, mixed, 2, 8)
    assert inl.items and inl.items[0].range.start == types.Position(line=2, character=8)
    # an edit whose range ends before it starts is left out (it duplicated the line)
    rev = open_doc(client, "value = 1\nval\n")
    _change(client, rev, 2, (0, 500), (0, 2), "X")
    assert await _typed_word_range(client, rev, 1, 3) == types.Range(
        start=types.Position(line=1, character=0), end=types.Position(line=1, character=3))


@pytest.mark.asyncio(loop_scope="module")
async def test_automatic_trigger_honours_settings(client: LanguageClient):
    text = "def area(r):\n    \n"
    uri = open_doc(client, text)
    await configure(client, maxTokens=48, automatic="off")
    auto = await inline(client, uri, 1, 4, AUTOMATIC)
    invoked = await inline(client, uri, 1, 4, INVOKED)
    assert auto.items == []
    assert invoked.items and invoked.items[0].insert_text.strip()
    await configure(client, maxTokens=48, automatic="single")
    auto = await inline(client, uri, 1, 4, AUTOMATIC)
    assert all("\n" not in i.insert_text for i in auto.items)
    await configure(client, maxTokens=48)


@pytest.mark.asyncio(loop_scope="module")
async def test_invoked_after_automatic_single_gets_the_block(client: LanguageClient):
    """Under `automatic: single` an as-you-type request cached one line; an explicit request at
    the same spot was answered with that line from the cache, forever, instead of the block."""
    text = "def fibonacci(n):\n    \n"
    uri = open_doc(client, text)
    await configure(client, maxTokens=48, automatic="single", firstLineFast=False)
    auto = await inline(client, uri, 1, 4, AUTOMATIC)
    assert auto.items and "\n" not in auto.items[0].insert_text
    invoked = await inline(client, uri, 1, 4, INVOKED)
    assert invoked.items and "\n" in invoked.items[0].insert_text, invoked.items
    assert not (await status(client))["last"].get("cache_hit")
    await configure(client, maxTokens=48)


@pytest.mark.asyncio(loop_scope="module")
async def test_inline_suggestion_extends_the_selected_completion_item(client: LanguageClient):
    """With the suggest widget open, editors show inline text only when it extends the selected
    item (selectedCompletionInfo); the server ignored it and continued the typed ``jo``."""
    text = "import os\n\npath = os.path.jo"
    uri = open_doc(client, text)
    _send_raw_trigger_kinds(client)

    async def ask(start, end, item):
        sel = types.SelectedCompletionInfo(range=types.Range(start=types.Position(line=2, character=start),
                                                             end=types.Position(line=2, character=end)), text=item)
        return await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=2, character=17),
            context=types.InlineCompletionContext(trigger_kind=INVOKED, selected_completion_info=sel)))

    out = await ask(15, 17, "exists")
    assert out.items, out
    item = out.items[0]
    assert item.insert_text.startswith("exists") and len(item.insert_text) > len("exists"), item.insert_text
    assert item.range.start == types.Position(line=2, character=15) and item.range.end == types.Position(line=2, character=17)
    # a selection that does not end at the cursor is not applied
    out = await ask(14, 16, "exists")
    assert out.items and not out.items[0].insert_text.startswith("exists")


@pytest.mark.asyncio(loop_scope="module")
async def test_an_open_completion_list_keeps_its_trigger(client: LanguageClient):
    """Typing on in a list the user asked for (TriggerForIncompleteCompletions) under
    `automatic: off`: the item vanished after one character (the re-ask counted as automatic)."""
    text = "import os\n\npath = os.path.jo"
    uri = open_doc(client, text)
    await configure(client, automatic="off")

    async def ask(character, kind):
        return await client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=2, character=character),
            context=types.CompletionContext(trigger_kind=kind)))

    assert (await ask(17, types.CompletionTriggerKind.Invoked)).items
    _change(client, uri, 2, (2, 17), (2, 17), "i")
    assert (await ask(18, types.CompletionTriggerKind.TriggerForIncompleteCompletions)).items
    assert not (await ask(18, types.CompletionTriggerKind.TriggerCharacter)).items  # a new list: automatic
    await configure(client, maxTokens=48)


@pytest.mark.asyncio(loop_scope="module")
async def test_trigger_kinds_are_read_as_lsp_318(client: LanguageClient):
    """Editors send Invoked = 1 / Automatic = 2 (lsprotocol 2023.0.1 would reject 2); 3 is an error."""
    text = "def area(r):\n    \n"
    uri = open_doc(client, text)
    await configure(client, maxTokens=24, automatic="off")
    assert (await inline(client, uri, 1, 4, AUTOMATIC)).items == []  # 2 = Automatic: off by the setting
    assert (await inline(client, uri, 1, 4, INVOKED)).items  # 1 = Invoked (lsprotocol would say Automatic)
    with pytest.raises(JsonRpcException) as info:
        await inline(client, uri, 1, 4, 3)
    assert info.value.code == -32602 and "triggerKind" in str(info.value)
    await configure(client, maxTokens=48)
    assert (await inline(client, uri, 1, 4, AUTOMATIC)).items  # still serving


@pytest.mark.asyncio(loop_scope="module")
async def test_cancellation_mid_generation(client: LanguageClient):
    # (the repetition penalty would end this module of alike functions after a few of them)
    await configure(client, maxTokens=600, lineMode="multi", maxLines=200, firstLineFast=False, cache=False,
                    monitors={"repetition": False})
    text = "# A long module of many small functions\n\ndef f0(x):\n    return x + 0\n\n"
    uri = open_doc(client, text)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=5, character=0),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )
    fut = client.protocol.send_request("textDocument/inlineCompletion", params, msg_id="cancel-me")
    await until_generating(client)  # 600 tokens take many seconds
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(fut), 5)
    assert info.value.code == -32800
    for _ in range(100):  # the worker notices the flag before its next token
        st = await status(client)
        if st["cancelled"]["count"]:
            break
        await asyncio.sleep(0.05)
    assert st["cancelled"]["count"] >= 1
    assert 0 < st["cancelled"]["last_generated_tokens"] < 600  # it stopped mid-generation
    await configure(client, maxTokens=48)
    after = await inline(client, uri, 5, 0)
    assert after.items and after.items[0].insert_text.strip()  # still serving
    assert after.items[0].range.start == types.Position(line=5, character=0)


@pytest.mark.asyncio(loop_scope="module")
async def test_newer_request_supersedes_older(client: LanguageClient):
    await configure(client, maxTokens=300, lineMode="multi", maxLines=100, firstLineFast=False, cache=False)
    uri = open_doc(client, "class Stack:\n    \n")
    first = asyncio.ensure_future(inline(client, uri, 1, 4))
    await until_generating(client)
    second = asyncio.ensure_future(inline(client, uri, 1, 4))
    r1, r2 = await asyncio.wait_for(asyncio.gather(first, second), 60)
    assert r1.items == []  # superseded: no stale suggestion
    assert r2.items and r2.items[0].insert_text.strip()
    assert r2.items[0].range.start == types.Position(line=1, character=4)
    assert not any(m in r2.items[0].insert_text for m in MARKERS)
    await configure(client, maxTokens=48)


@pytest.mark.asyncio(loop_scope="module")
async def test_bad_inputs_get_clear_errors_and_server_keeps_serving(client: LanguageClient):
    uri = open_doc(client, "x = 1\n")
    with pytest.raises(JsonRpcException) as info:
        await inline(client, uri, 7, 0)  # past the end of the file
    assert info.value.code == -32602 and "past the end" in info.value.message
    with pytest.raises(JsonRpcException) as info:
        await inline(client, uri, 2**31 - 1, 0)  # huge line number
    assert info.value.code == -32602
    with pytest.raises(JsonRpcException) as info:
        await inline(client, "file:///nowhere/unknown.py", 0, 0)
    assert info.value.code == -32602 and "not open" in info.value.message
    # negative numbers are not valid LSP: the message cannot even be deserialized
    raw = {"jsonrpc": "2.0", "id": "neg", "method": "textDocument/inlineCompletion",
           "params": {"textDocument": {"uri": uri}, "position": {"line": -1, "character": 0},
                      "context": {"triggerKind": 1}}}
    fut: Future = Future()
    client.protocol._request_futures["neg"] = fut  # a raw request the client library would refuse to send
    client.protocol._result_types["neg"] = None
    body = json.dumps(raw).encode()
    client.protocol.transport.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(fut), 10)
    assert info.value.code == -32602 and "invalid params" in info.value.message
    # a body that is not UTF-8 / not JSON gets a parse error and does not take the next message with it
    junk = b"\xff\xfe{not json"
    client.protocol.transport.write(b"Content-Length: %d\r\n\r\n%s" % (len(junk), junk))
    # badly framed messages: no Content-Length, a negative one, one too small (counted in
    # characters, not bytes); the rest of each body runs into the next header: the server
    # finds that header again instead of ignoring everything after
    note = json.dumps({"jsonrpc": "2.0", "method": "$/steercode/nothing", "params": {"s": "ünïcödé"}},
                      ensure_ascii=False).encode()
    client.protocol.transport.write(b"Content-Type: foo\r\n\r\n" + note)
    client.protocol.transport.write(b"Content-Length: -2\r\n\r\n" + note)
    client.protocol.transport.write(b"Content-Length: %d\r\n\r\n%s" % (len(note.decode()), note))
    # binary content and a lone surrogate in a document
    weird = open_doc(client, "data = '\x00\x01\x02'\nname = '\udcff'\nvalue = ")
    r = await asyncio.wait_for(inline(client, weird, 2, 8), 60)  # (the stream is in sync again)
    assert r is not None
    # a 1 MB line
    big = open_doc(client, "x = [" + "1, " * 350_000 + "\n")
    r = await inline(client, big, 0, 10)
    assert r is not None
    # and a normal request still works
    ok = open_doc(client, "def square(x):\n    return \n")
    r = await inline(client, ok, 1, 11)
    assert r.items and r.items[0].insert_text.strip()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_model_path_typo_keeps_the_working_model(client: LanguageClient):
    """A modelPath that is no GGUF file is refused before anything is unloaded: it used to leave
    the server without a model (every answer empty) until the typo was fixed."""
    before = len(client.messages)
    await configure(client, maxTokens=48, modelPath="/nonexistent/typo.gguf")
    msg = await next_message(client, before)
    assert msg.type == types.MessageType.Warning
    assert "not found" in msg.message and "still using the embedded model" in msg.message
    st = await status(client)
    assert st["ready"] and not st["loading"], st
    uri = open_doc(client, "def triple(x):\n    return \n")
    r = await inline(client, uri, 1, 11)
    assert r.items and r.items[0].insert_text.strip()
    await configure(client, maxTokens=48)


@pytest.mark.asyncio(loop_scope="module")
async def test_invalid_settings_are_reported(client: LanguageClient):
    before = len(client.messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"steercode": {"maxTokens": -5, "lineMode": "sideways"}})
    )
    msg = await next_message(client, before)
    assert msg.type == types.MessageType.Warning
    assert "max_tokens" in msg.message and "line_mode" in msg.message
    uri = open_doc(client, "def double(x):\n    return \n")
    r = await inline(client, uri, 1, 11)
    assert r.items and r.items[0].insert_text.strip()  # the bad values were ignored, not applied
    settings = (await status(client))["settings"]
    assert settings["max_tokens"] > 0 and settings["line_mode"] in ("auto", "single", "multi")
    await configure(client, maxTokens=48)
