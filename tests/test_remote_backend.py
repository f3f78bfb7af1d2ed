"""The remote (llama-server) backend against a fake server: greedy steering over the wire equals
the local decoder on full rows, streams are drafts, rejected streams are closed, partial rows are
widened, errors are readable, cancellation closes the stream. (The real llama-server is tested in
tests/test_team_mode.py.)"""

import dataclasses
import json
import threading

import numpy as np
import pytest
from fake_llama_server import FakeLlamaServer
from fakes import FakeBackend

from completion.backend import VocabTokenizer
from completion.decoding import Cancelled, CancelToken, Decoder, PartialLogits
from completion.remote_backend import ModelServerError, RemoteBackend, RemoteConfig, _dangling
from completion.settings import Settings, check_model_url
from monitors.vocabulary import Vocabulary

SPECIAL = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_gguf import build_tiny_gguf

    path = tmp_path_factory.mktemp("tiny") / "tiny.gguf"
    build_tiny_gguf(path, SPECIAL)
    return str(path)


@pytest.fixture(scope="module")
def tok(tiny):
    t = VocabTokenizer(tiny)
    yield t
    t.close()


@pytest.fixture
def server(tok):
    s = FakeLlamaServer(tok.n_vocab, tok.tokenize)
    yield s
    s.close()


def remote(server, tiny, **kw):
    return RemoteBackend(RemoteConfig(url=server.url, vocab_path=tiny, **kw), n_ctx=512)


def vocab_of(tok):
    return Vocabulary(tok.pieces(), control=tok.special_ids())


class Letters:
    """Allows only tokens made of the given characters (most of the vocabulary is rejected)."""

    name = "letters"

    def __init__(self, letters, vocab):
        self.letters = set(letters)
        self.vocab = vocab

    def check(self, generated, token, text):
        return bool(text) and set(text) <= self.letters

    def allowed(self, generated):
        return np.array([i for i in range(len(self.vocab.pieces)) if (t := self.vocab.text(i)) and set(t) <= self.letters],
                        dtype=np.int64)


def generate(backend, vocab, stop, prompt, constraints=(), max_tokens=24, cancel=None):
    return Decoder(backend, vocab, stop).generate(prompt, max_tokens=max_tokens, constraints=list(constraints), cancel=cancel)


PROMPTS = [[10, 20, 30, 40, 50, 60, 70, 80], [104, 101, 108, 108, 111, 32, 119, 111, 114], [1, 2, 3]]


@pytest.mark.parametrize("letters", [None, "abc", "xyz \n", "e"])
def test_greedy_over_the_wire_equals_the_local_decoder_on_full_rows(server, tiny, tok, letters):
    vocab = vocab_of(tok)
    stop = {t for t in tok.special_ids() if tok.is_eog(t)}
    be = remote(server, tiny)
    try:
        for prompt in PROMPTS:
            local = FakeBackend(tok.n_vocab, n_ctx=512)
            cons_l = [Letters(letters, vocab)] if letters else []
            cons_r = [Letters(letters, vocab)] if letters else []
            want = generate(local, vocab, stop, prompt, cons_l)
            got = generate(be, vocab, stop, prompt, cons_r)
            assert got.tokens == want.tokens
            assert got.text == want.text
    finally:
        be.close()


def test_a_narrow_constraint_widens_the_row_instead_of_guessing(server, tiny, tok):
    vocab = vocab_of(tok)
    stop = {t for t in tok.special_ids() if tok.is_eog(t)}
    be = remote(server, tiny)
    try:
        got = generate(be, vocab, stop, PROMPTS[0], [Letters("q", vocab)], max_tokens=6)
        want = generate(FakeBackend(tok.n_vocab, n_ctx=512), vocab, stop, PROMPTS[0], [Letters("q", vocab)], max_tokens=6)
        assert got.tokens == want.tokens and set(got.text) <= {"q"}
        assert got.stats.widened > 0  # "q" is rarely in a top 16: the rows were widened
        assert any(not r.get("stream") and r["n_probs"] > 16 for r in server.requests)
    finally:
        be.close()


def test_the_stream_is_the_draft_one_request_while_the_choices_agree(server, tiny, tok):
    vocab = vocab_of(tok)
    be = remote(server, tiny)
    try:
        res = generate(be, vocab, set(), PROMPTS[1], max_tokens=20)
        assert len(res.tokens) == 20
        streams = [r for r in server.requests if r.get("stream")]
        # one stream, but for tokens the server may not choose (ending inside a UTF-8 character)
        dangling = sum(_dangling(tok.piece(t)) for t in res.tokens)
        assert len(streams) == 1 + dangling
        body = streams[0]
        assert body["logit_bias"] and all(_dangling(tok.piece(t)) and b is False for t, b in body["logit_bias"])
        assert body["prompt"] == PROMPTS[1] and body["cache_prompt"] is True and body["n_probs"] >= 13
        assert body["temperature"] == 0.0
    finally:
        be.close()


def test_a_rejection_closes_the_stream_and_continues_from_the_accepted_prefix(server, tiny, tok):
    vocab = vocab_of(tok)
    be = remote(server, tiny)
    try:
        res = generate(be, vocab, set(), PROMPTS[0], [Letters("abcdefghij", vocab)], max_tokens=8)
        streams = [r for r in server.requests if r.get("stream")]
        assert len(streams) > 1
        for r in streams[1:]:  # each new stream starts from the prompt plus tokens the decoder accepted
            n = len(r["prompt"]) - len(PROMPTS[0])
            assert r["prompt"][: len(PROMPTS[0])] == PROMPTS[0] and r["prompt"][len(PROMPTS[0]):] == res.tokens[:n]
        assert server.streamed < 8 * 64  # closed streams stopped early
    finally:
        be.close()


def test_rows_are_partial_with_a_floor_and_widen_to_more(server, tiny):
    be = remote(server, tiny)
    try:
        be.eval_prompt(PROMPTS[0])
        row = be.tail_logits()
        assert isinstance(row, PartialLogits) and np.isfinite(row).sum() == 16
        assert row.floor == row[np.isfinite(row)].min()
        full = FakeBackend(be.n_vocab)._logits_after(PROMPTS[0])
        assert list(np.argsort(-row)[:16]) == list(np.argsort(-full)[:16])
        wide = row.widen()
        assert np.isfinite(wide).sum() > 16
        shifted = row.copy()
        shifted[:5] -= 1.0
        assert isinstance(shifted, PartialLogits) and shifted.floor == row.floor
    finally:
        be.close()


def test_the_api_key_is_sent_and_a_refusal_is_readable(server, tiny):
    server.api_key = "s3cret"
    be = remote(server, tiny, api_key="s3cret")
    try:
        be.eval_prompt(PROMPTS[0])
        assert all(h.get("Authorization") == "Bearer s3cret" for h in server.headers_seen)
    finally:
        be.close()
    bad = remote(server, tiny, api_key="wrong")
    try:
        with pytest.raises(ModelServerError, match="api_key"):
            bad.eval_prompt(PROMPTS[0])
    finally:
        bad.close()


def test_a_server_that_is_down_fails_each_request_readably_and_is_used_once_it_is_up(tok, tiny):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = RemoteBackend(RemoteConfig(url=f"http://127.0.0.1:{port}", vocab_path=tiny), n_ctx=512)  # loads anyway
    try:
        with pytest.raises(ModelServerError, match="connection refused"):
            be.eval_prompt(PROMPTS[0])
        server = FakeLlamaServer(tok.n_vocab, tok.tokenize)
        try:
            be._http.port = server.port  # the server came up (on its port)
            be.eval_prompt(PROMPTS[0])
            assert int(np.argmax(be.tail_logits())) == int(np.argmax(FakeBackend(tok.n_vocab)._logits_after(PROMPTS[0])))
        finally:
            server.close()
    finally:
        be.close()


def test_a_connection_dropped_mid_stream_is_a_readable_error_then_the_next_request_works(server, tiny, tok):
    vocab = vocab_of(tok)
    be = remote(server, tiny)
    try:
        server.die_after = 3
        with pytest.raises(ModelServerError, match="closed mid-request"):
            generate(be, vocab, set(), PROMPTS[1], max_tokens=10)
        server.die_after = None
        res = generate(be, vocab, set(), PROMPTS[2], max_tokens=5)
        assert len(res.tokens) == 5
    finally:
        be.close()


def test_cancelling_while_waiting_for_the_server_closes_the_stream(server, tiny, tok):
    vocab = vocab_of(tok)
    be = remote(server, tiny)
    server.hold = True
    cancel = CancelToken()
    threading.Thread(target=lambda: (server.hold_started.wait(30), cancel.cancel("superseded")), daemon=True).start()
    try:
        with pytest.raises(Cancelled):
            generate(be, vocab, set(), PROMPTS[0], cancel=cancel)
        assert server.client_left.wait(30)  # the server saw the request go away
    finally:
        be.close()


def test_another_model_on_the_server_is_refused_at_load(server, tiny):
    from completion.backend import ModelLoadError

    server.n_vocab_reported = 999
    with pytest.raises(ModelLoadError, match="999 tokens"):
        remote(server, tiny)


@pytest.mark.parametrize("url, ok", [
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://[::1]:8080", True),
    ("https://gpu-box.example:8443", True), ("http://gpu-box.example:8080", False), ("http://10.1.2.3:80", False),
    ("ftp://127.0.0.1", False), ("http://user:pw@127.0.0.1:1", False), ("127.0.0.1:8080", False),
])
def test_model_urls_plain_http_only_to_loopback(url, ok):
    assert (check_model_url(url) is None) == ok
    _, problems = Settings().merge({"modelUrl": url})
    assert (not problems) == ok


def test_the_api_key_never_shows_in_the_settings_dump():
    s, problems = Settings().merge({"modelUrl": "http://127.0.0.1:1", "apiKey": "s3cret"})
    assert not problems and s.api_key == "s3cret"
    assert "s3cret" not in str(s.as_dict())


def test_the_engine_completes_through_the_server_and_falls_back_when_configured(server, tiny):
    """The engine on a server (the tiny model's vocabulary): a completion, only token ids sent;
    with the server gone, a readable error, or with model_fallback the local model's answer."""
    from completion.engine import Engine

    s, problems = Settings(model_path=tiny, monitors=(), cache=False, prefetch=False, first_line_fast=False).merge(
        {"modelUrl": server.url, "maxTokens": 8})
    assert not problems
    e = Engine(s)
    e.load()
    try:
        assert e.describe()["server"]["reachable"]
        c = e.complete_text("abc def", language="plaintext", path="/secret/project/notes.txt")
        assert c.stats["generated_tokens"] >= 1
        body = server.requests[-1]
        assert all(isinstance(t, int) for t in body["prompt"]) and "notes" not in json.dumps(body)
        server.close()
        with pytest.raises(ModelServerError, match="not usable"):
            e.complete_text("abc def", language="plaintext")
        e.settings = dataclasses.replace(e.settings, model_fallback=True)
        c = e.complete_text("abc def", language="plaintext")
        assert "fallback" in c.stats and c.stats["generated_tokens"] >= 1
    finally:
        e.close()


def test_bench_typing_clients_runs_against_a_server(server, tiny, tmp_path):
    from benchmarks.bench import bench_typing_clients

    f = tmp_path / "small.py"
    f.write_text("def f(x):\n    y = x + 1\n    return y\n")
    r = bench_typing_clients(str(f), server.url, clients=2, region="2:2", settings=Settings(model_path=tiny, monitors=()),
                             max_tokens=4, interval_ms=0, compare_local=False)
    assert [c["client"] for c in r["per_client"]] == [0, 1] and r["keystrokes"] == len("y = x + 1") + 1
    assert not r["errors"] and all(c["p95_ms"] >= c["p50_ms"] > 0 for c in r["per_client"])
