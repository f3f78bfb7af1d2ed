"""The command line on the real model: complete, stdio (JSON lines), doctor, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, steercode_cmd

pytestmark = pytest.mark.model

EXAMPLE = str(ROOT / "examples" / "fibonacci.py")


def run(*args: str, input: bytes | None = None, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(steercode_cmd(*args), input=input, capture_output=True, timeout=timeout, env=env, cwd=ROOT)


def test_complete_json(server_env):
    # line 7 is the empty line after `return n`... inside fibonacci's body
    p = run("complete", EXAMPLE, "--line", "7", "--character", "4", "--json", env=server_env)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert out["completion"].strip()
    s = out["stats"]
    for key in ("prompt_tokens", "reused_tokens", "generated_tokens", "prompt_ms", "decode_ms", "total_ms", "model_load_ms"):
        assert key in s
    assert s["generated_tokens"] >= 1
    assert out["range"]["start"] == {"line": 7, "character": 4}


def test_complete_prints_the_whole_block_and_warm_runs(server_env):
    """A one-shot command has nobody to send a background continuation to: the whole block comes
    back at once; `--repeat` runs are warm KV reuse (what `make run` shows), not cache hits."""
    p = run("complete", EXAMPLE, "--line", "7", "--character", "4", "--json", "--repeat", "2", env=server_env)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert out["multiline"] and out["completion"].count("\n") >= 1, out["completion"]
    assert "background" not in str(out["stats"].get("stop_reason"))
    warm = out["runs"][1]
    assert not warm.get("cache_hit") and warm["reused_tokens"] >= out["stats"]["prompt_tokens"] - 8
    p = run("complete", EXAMPLE, "--line", "7", "--character", "4", "--repeat", "2", "--verbose", env=server_env)
    assert p.returncode == 0, p.stderr.decode()
    assert "run 2 (warm)" in p.stderr.decode()


def test_repeats_monitor_turns_the_model_off_a_copy_of_the_line_above(server_env, tmp_path):
    """logging's Handler: ``self._name = None`` / ``self.┃``: steered by the members monitor
    alone, the real model writes ``_name = None`` again; with the repeats monitor it takes its
    next choice."""
    import logging

    src = Path(logging.__file__).read_text(encoding="utf-8")
    above = "        self._name = None\n        self."
    cut = src.index(above) + len(above)
    doc = src[:cut] + src[src.index("\n", cut) :]
    f = tmp_path / "handler.py"
    f.write_text(doc, encoding="utf-8")
    line, col = doc.count("\n", 0, cut), cut - (doc.rfind("\n", 0, cut) + 1)

    def complete(monitors: str) -> dict:
        p = run("complete", str(f), "--line", str(line), "--character", str(col), "--json",
                "--set", f"monitors={monitors}", "--set", "line_mode=single",
                "--set", "monitor_timeout_ms=20000", env=server_env)  # a slow machine: still judged
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout)

    assert complete('["members"]')["completion"].strip() == "_name = None"
    out = complete('["members", "repeats"]')
    assert out["completion"].strip() and out["completion"].strip() != "_name = None"
    assert out["stats"]["rewinds"] >= 1 and out["stats"]["monitors"]["repeats"]["interventions"] >= 1


def test_a_new_attribute_the_user_started_still_gets_a_suggestion(server_env, tmp_path):
    """``self.ca┃`` in ``__init__``: no member starts with ``ca``. The members monitor used to
    reject every token, and the suggestion was empty ("constraints: nothing allowed")."""
    f = tmp_path / "store.py"
    f.write_text("import os\n\n\nclass Store:\n    def __init__(self, root, size):\n        self.root = root\n"
                 "        self.size = size\n        self.ca\n\n    def path_of(self, key):\n"
                 "        return os.path.join(self.root, key)\n", encoding="utf-8")
    p = run("complete", str(f), "--line", "7", "--character", "15", "--json", "--set", "line_mode=single",
            "--set", "monitor_timeout_ms=20000", env=server_env)  # the analysis is waited for
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout)
    assert out["stats"]["monitors"]["members"]["timeouts"] == 0
    assert out["completion"].strip() and out["stats"]["stop_reason"] != "constraints: nothing allowed"


def test_complete_plain_prints_only_the_suggestion(server_env, tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def add(a, b):\n    return ")
    p = run("complete", str(f), "--line", "1", "--character", "11", env=server_env)
    assert p.returncode == 0
    assert "a" in p.stdout.decode() and "\n" == p.stdout.decode()[-1]
    assert p.stdout.decode().count("\n") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--line", "99", "--character", "0"], "past the end"),
        (["--line", "0", "--character", "500"], "past the end of line"),
        (["--line", "-1", "--character", "0"], "negative"),
        (["--line", "7", "--character", "4", "--related", "/no/such/other.py"], "No such file or directory: /no/such/other.py"),
    ],
)
def test_complete_bad_positions(server_env, args, message):
    p = run("complete", EXAMPLE, *args, env=server_env)
    assert p.returncode == 2
    assert message in p.stderr.decode()


def test_complete_binary_file(server_env, tmp_path):
    f = tmp_path / "blob.py"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    p = run("complete", str(f), "--line", "0", "--character", "0", env=server_env)
    assert p.returncode == 2
    assert "not UTF-8" in p.stderr.decode()


@pytest.mark.parametrize("model, message", [("/nonexistent/m.gguf", "not found"), (EXAMPLE, "not a GGUF")])
def test_complete_bad_model(server_env, model, message):
    p = run("complete", EXAMPLE, "--line", "7", "--character", "4", "--model", model, env=server_env)
    assert p.returncode == 3
    assert message in p.stderr.decode()


def test_complete_truncated_model(server_env, tmp_path, model_path):
    bad = tmp_path / "truncated.gguf"
    with open(model_path, "rb") as f:
        bad.write_bytes(f.read(5_000_000))
    p = run("complete", EXAMPLE, "--line", "7", "--character", "4", "--model", str(bad), "--log-level", "critical", env=server_env)
    assert p.returncode == 3
    assert "could not load" in p.stderr.decode()


def test_stdio_json_lines(server_env):
    lines = [
        {"id": 1, "text": "def mul(a, b):\n    return ", "line": 1, "character": 11, "language": "python"},
        "this is not json",
        {"id": 3, "text": "x = 1\n", "line": 5, "character": 0},
        {"id": 4, "path": EXAMPLE, "line": 7, "character": 4, "max_tokens": 16},
        {"id": 5, "line": 0, "character": 0},
        [1, 2, 3],
        {"id": 7, "text": "x = ", "line": 0, "character": 4, "max_tokens": -1},
        {"id": 8, "path": "/no/such/file.py", "line": 0, "character": 0},
        {"id": 9, "text": "def neg(a):\n    return ", "line": 1, "character": 11},
        {"id": 10, "text": "x = ", "line": 0, "character": 4, "related": "not a list"},
        {"id": 11, "text": "x = ", "line": 0, "character": 4, "related": ["/no/such/related.py"]},
        {"id": 12, "text": "x = ", "line": 0, "character": 4, "related": [{"text": "y = 2\n"}, EXAMPLE, {"path": EXAMPLE}]},
        '{"id": 13, "text": "x = ", "line": 0, "character": 4, "options": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {"id": 14, "text": "x = ", "line": 0, "character": 4, "options": 5},
        {"id": 15, "path": 123, "line": 0, "character": 0},
        {"id": 16, "text": "x = ", "line": 0, "character": 4, "language": 5},
        '{"id": NaN, "text": "x = ", "line": 0, "character": 4}',
        {"id": 18, "text": "x = ", "line": 0, "character": 4, "model_path": "/other.gguf", "threads": 1},
        {"id": 19, "text": "def neg(a):\n    return ", "line": 1, "character": 11},
        {"id": 20, "text": "x = ", "line": 0, "character": 4},
    ]
    data = b"".join((json.dumps(x) if not isinstance(x, str) else x).encode() + b"\n" for x in lines)
    data += b"\xff\xfe not utf-8\n\n"
    p = run("stdio", input=data, env=server_env)
    assert p.returncode == 0, p.stderr.decode()

    def strict(constant):  # NaN / Infinity are not JSON
        raise ValueError(f"{constant} in the output")

    out = [json.loads(line, parse_constant=strict) for line in p.stdout.decode().splitlines()]
    assert len(out) == 21  # one response per non-blank line, the bad ones included
    by_id = {o.get("id"): o for o in out if o.get("id") is not None}
    assert by_id[1]["completion"].strip() and "stats" in by_id[1]
    assert by_id[1]["range"]["start"] == {"line": 1, "character": 11} and "\n" not in by_id[1]["completion"]
    assert by_id[3]["error"]["code"] == "invalid_position"
    assert by_id[4]["stats"]["generated_tokens"] <= 16
    assert by_id[5]["error"]["code"] == "invalid_request"
    assert "max_tokens" in by_id[7]["error"]["message"]
    assert by_id[8]["error"]["code"] == "io_error"
    assert by_id[9]["completion"].strip()  # still serving after the bad lines
    assert by_id[9]["range"]["start"] == {"line": 1, "character": 11}
    assert by_id[10]["error"]["code"] == "invalid_request" and "related" in by_id[10]["error"]["message"]
    assert by_id[11]["error"]["code"] == "io_error" and "/no/such/related.py" in by_id[11]["error"]["message"]
    # other documents only feed the drafter: the same suggestion as without them (id 20)
    assert by_id[12]["completion"] == by_id[20]["completion"] and by_id[20]["completion"].strip()
    for rid, field in ((14, "options"), (15, "path"), (16, "language")):  # wrong types: said so, no internal error
        assert by_id[rid]["error"]["code"] == "invalid_request" and repr(field) in by_id[rid]["error"]["message"]
    # settings that need the model reloaded cannot change in one request (they were ignored)
    assert by_id[18]["error"]["code"] == "invalid_request" and "model_path, threads" in by_id[18]["error"]["message"]
    assert by_id[19]["completion"] == by_id[9]["completion"]  # still serving: the same request, the same answer
    anonymous = [o for o in out if o.get("id") is None]
    codes = sorted(o["error"]["code"] for o in anonymous)
    # [1, 2, 3] and the NaN id; not JSON, nested 100,000 deep (it stopped the loop), not UTF-8
    assert codes == ["invalid_request", "invalid_request", "parse_error", "parse_error", "parse_error"]


def test_stdio_with_a_broken_model_answers_every_line(server_env):
    data = b'{"id": 1, "text": "x", "line": 0, "character": 1}\n{"id": 2, "text": "y", "line": 0, "character": 1}\n'
    p = run("stdio", "--model", "/nonexistent.gguf", input=data, env=server_env)
    out = [json.loads(line) for line in p.stdout.decode().splitlines()]
    assert [o["error"]["code"] for o in out] == ["model_error", "model_error"]
    assert "not found" in out[1]["error"]["message"]


def test_doctor(server_env):
    p = run("doctor", env=server_env)
    text = p.stdout.decode()
    assert p.returncode == 0, text + p.stderr.decode()
    for needle in ("llama-cpp-python", "model size", "FIM template", "tree-sitter python", "test completion", "no problems"):
        assert needle in text


def test_doctor_reports_a_bad_model(server_env):
    p = run("doctor", "--model", "/nonexistent.gguf", env=server_env)
    assert p.returncode == 1
    assert "not found" in p.stdout.decode()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frame(obj) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _read_message(sock) -> dict:
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(rest) < length:
        rest += sock.recv(4096)
    return json.loads(rest[:length])


def test_serve_over_tcp_on_loopback(server_env):
    import socket
    import time

    port = _free_port()
    proc = subprocess.Popen(steercode_cmd("serve", "--tcp", f"127.0.0.1:{port}", "--log-level", "error"), env=server_env, cwd=ROOT)
    try:
        for _ in range(200):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the TCP server did not start")
        with sock:
            # a junk message first: the stream must stay in sync
            sock.sendall(b"Content-Length: 5\r\n\r\n\xff\xfe\x00\x01\x02")
            sock.sendall(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}))
            msg = _read_message(sock)
            while msg.get("id") != 1:
                msg = _read_message(sock)
            assert "inlineCompletionProvider" in msg["result"]["capabilities"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_non_loopback_without_opt_in(server_env):
    p = run("serve", "--tcp", "0.0.0.0:2087", env=server_env, timeout=60)
    assert p.returncode == 2
    assert "allow-remote" in p.stderr.decode()


def test_eval_members_json_schema(server_env, tmp_path):
    out = tmp_path / "members.json"
    p = run("eval", "members", str(ROOT / "completion" / "engine.py"), "--sites", "4", "--seed", "1", "--json", str(out),
            env=server_env, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    assert "valid_rate" in p.stdout.decode()
    report = json.loads(out.read_text())
    assert report["task"] == "members"
    assert report["sites"] + report["skipped"] == 4
    for mode in ("plain", "monitored"):
        assert {"valid_rate", "exact_rate", "line_exact_rate", "parse_rate", "p50_ms", "p95_ms"} <= set(report["modes"][mode])
    assert "monitor_overhead_ms" in report["modes"]["monitored"]


def test_eval_calls_runs(server_env, tmp_path):
    out = tmp_path / "calls.json"
    p = run("eval", "calls", str(ROOT / "completion" / "prompt.py"), "--sites", "3", "--json", str(out), env=server_env, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(out.read_text())["task"] == "calls"


def test_eval_truth_must_admit_the_original_code():
    """A site where jedi's truth rejects the code it was cut from is skipped: a verdict against
    a wrong truth means nothing."""
    from benchmarks.evaluation import Site, _truth_admits_original
    from monitors.python.jedi_analysis import Param, Signature

    text = "Logger.root\nf(1, 2)\n"
    member = Site("a.py", text, 7, 11, "root")
    assert _truth_admits_original("members", frozenset({"root", "name"}), member)
    assert not _truth_admits_original("members", frozenset({"name"}), member)
    call = Site("a.py", text, 14, 19, "1, 2")
    one = Signature("f", (Param("a", "POSITIONAL_OR_KEYWORD", False),))
    two = Signature("f", (*one.params, Param("b", "POSITIONAL_OR_KEYWORD", True)))
    assert not _truth_admits_original("calls", (one,), call)
    assert _truth_admits_original("calls", (one, two), call)


def test_eval_missing_path(server_env):
    p = run("eval", "members", "/no/such/dir", env=server_env)
    assert p.returncode == 2 and "no such file" in p.stderr.decode()


def test_bench_typing_schema(server_env, tmp_path):
    out = tmp_path / "typing.json"
    p = run("bench", "typing", EXAMPLE, "--region", "14:14", "--modes", "steercode,llama-cpp-python", "--interval-ms", "0",
            "--json", str(out), env=server_env, timeout=900)
    assert p.returncode == 0, p.stderr.decode()
    r = json.loads(out.read_text())
    assert r["task"] == "typing" and r["keystrokes"] > 5
    for mode in ("steercode", "llama-cpp-python"):
        m = r["modes"][mode]
        for key in ("p50_ms", "p95_ms", "mean_ms", "prompt_tokens_per_request", "cache_hits", "match_rate"):
            assert key in m
    assert r["modes"]["llama-cpp-python"]["cache_hits"] == 0
    assert "ratios_vs_steercode" in r


def test_bench_decode_schema(server_env, tmp_path):
    out = tmp_path / "decode.json"
    p = run("bench", "decode", str(ROOT / "examples" / "similar_methods.py"), "--sites", "2", "--json", str(out),
            env=server_env, timeout=900)
    assert p.returncode == 0, p.stderr.decode()
    r = json.loads(out.read_text())
    assert r["identical_outputs"] is True
    assert set(r["modes"]) == {"off", "on"} and r["modes"]["on"]["tokens_per_s"] > 0


def test_batch_complete_example(server_env):
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "batch_complete.py"), EXAMPLE, "7:4", "13:11", "999:0"],
                       capture_output=True, text=True, env=server_env, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip().split("\n")
    assert len(out) == 3
    assert out[0].startswith("7:4\t'") and "ms" in out[0]
    assert out[2].startswith("999:0\terror:") and "past the end" in out[2]


def test_serve_start_up_problems_are_one_clear_line(server_env, tmp_path):
    """A port out of range, a port already taken and a log file that cannot be written used to
    end in Python tracebacks."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--tcp", "127.0.0.1:99999"], "between 0 and 65535"),
            (["--tcp", f"127.0.0.1:{port}"], "cannot listen on"),
            (["--log-file", str(tmp_path / "no" / "dir" / "log")], "cannot write the log file"),
        ]
        for args, needle in cases:
            p = run("serve", *args, input=b"", env=server_env, timeout=60)
            err = p.stderr.decode()
            assert p.returncode != 0 and needle in err and "Traceback" not in err, (args, err)


def _read_frame(stream) -> dict:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        c = stream.read(1)
        assert c, "the server closed its output"
        head += c
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    return json.loads(stream.read(length))


def _answer_to(proc, rid) -> dict:
    while True:
        msg = _read_frame(proc.stdout)
        if msg.get("id") == rid and "method" not in msg:
            return msg


def test_lsp_lifecycle_errors_and_exit_codes(server_env):
    """A request before initialize gets ServerNotInitialized (it got an internal error with a
    traceback); one after shutdown gets InvalidRequest (it was never answered); exit without
    shutdown exits 1 (it exited 0)."""
    def start():
        return subprocess.Popen(steercode_cmd("serve", "--log-level", "error"), env=server_env, cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(proc, obj):
        proc.stdin.write(_frame(obj))
        proc.stdin.flush()

    status = {"jsonrpc": "2.0", "method": "steercode/status", "params": {}}
    proc = start()
    try:
        send(proc, {**status, "id": 1})
        assert _answer_to(proc, 1)["error"]["code"] == -32002
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"capabilities": {}}})
        assert "capabilities" in _answer_to(proc, 2)["result"]
        send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
        assert _answer_to(proc, 3)["result"] is None
        send(proc, {**status, "id": 4})
        assert _answer_to(proc, 4)["error"]["code"] == -32600
        send(proc, {"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    proc = start()
    try:
        send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        _answer_to(proc, 1)
        send(proc, {"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(30) == 1
    finally:
        proc.kill()


def test_exit_right_after_initialized_leaves_no_pending_load(server_env):
    """``exit`` right after ``initialized`` (one write, as a client that gives up at once): the
    model load was scheduled but never ran, and the closing loop printed "Task was destroyed
    but it is pending" and "coroutine ... was never awaited"."""
    session = b"".join(_frame(m) for m in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ))
    p = run("serve", input=session, env=server_env, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "never awaited" not in err and "destroyed but it is pending" not in err, err


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _alive_after(pids: set[int], seconds: float = 15) -> list[int]:
    """The processes of ``pids`` still running after waiting up to ``seconds`` for them to end."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _kill_leftovers(pids: set[int]) -> None:
    for p in pids:  # orphans are no longer below the process that started them: kill what was
        if _alive(p):
            subprocess.run(["kill", "-9", str(p)], capture_output=True)


def _stdio_ask(proc, req: dict) -> dict:
    """One JSON-lines request to a running ``steercode stdio`` and its answer."""
    proc.stdin.write((json.dumps(req) + "\n").encode())
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_stopped_stdio_leaves_no_processes_behind(server_env, sig):
    """An editor stopping its server with SIGTERM (or killing it): the analysis worker and the
    language servers it started stayed behind, orphaned. SIGTERM now takes the normal shutdown
    (exit 143); after SIGKILL the worker sees its parent gone and ends itself and its servers."""
    import signal

    proc = subprocess.Popen(steercode_cmd("stdio"), env=server_env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tree: set[int] = set()
    try:
        req = {"id": 1, "text": "import os\nos.pa", "line": 1, "character": 5, "language": "python"}
        assert _stdio_ask(proc, req)["id"] == 1
        tree = _descendants(proc.pid)
        assert tree, "the analysis worker should be running"
        proc.send_signal(getattr(signal, sig))
        code = proc.wait(60)
        assert code == (143 if sig == "SIGTERM" else -9)
        assert not _alive_after(tree)
    finally:
        proc.kill()
        _kill_leftovers(tree)


def test_serve_ends_on_sigterm_with_its_input_still_open(server_env):
    """SIGTERM while the client keeps stdio open: the server ends (143) with its worker. With
    the handler alone, shutdown waited forever for the thread blocked reading stdin."""
    import signal
    import time

    proc = subprocess.Popen(steercode_cmd("serve", "--log-level", "error"), env=server_env, cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tree: set[int] = set()
    try:
        proc.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}))
        proc.stdin.write(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        proc.stdin.flush()
        _answer_to(proc, 1)
        deadline = time.time() + 60
        while time.time() < deadline and not tree:  # the worker starts once the model is loaded
            time.sleep(0.2)
            tree = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
        err = proc.stderr.read().decode()
        assert "Fatal Python error" not in err and "Traceback" not in err, err
        assert tree and not _alive_after(tree)
    finally:
        proc.kill()
        _kill_leftovers(tree)


def test_an_ignored_sighup_stays_ignored(server_env):
    """`nohup steercode serve --tcp …` must survive the terminal closing: the SIGHUP handler is
    installed only where SIGHUP has its default action."""
    import signal

    proc = subprocess.Popen(steercode_cmd("stdio"), env=server_env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        req = {"id": 1, "text": "x = 1\n", "line": 1, "character": 0, "language": "python"}
        assert _stdio_ask(proc, req)["id"] == 1
        # the condition itself: once serving, SIGHUP is still ignored (no handler replaced it),
        # so the kernel discards the signal below instead of running a shutdown
        sig_ign = next(int(line.split()[1], 16) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("SigIgn:"))
        assert sig_ign & (1 << (signal.SIGHUP - 1))
        proc.send_signal(signal.SIGHUP)
        assert _stdio_ask(proc, {**req, "id": 2})["id"] == 2  # still serving
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(30)
