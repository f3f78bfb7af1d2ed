"""The model-server backend: the only module in steercode that talks HTTP (to llama.cpp's
``llama-server``, "team mode").

It gives the decode loop what ``LlamaBackend`` gives -- ``eval_prompt`` / ``eval`` / ``logits`` /
``truncate`` / ``tail_logits`` and the vocabulary facts -- with the model on a server:

* **Vocabulary** from a local ``vocab_only`` load of the same GGUF (``VocabTokenizer``: pieces,
  special ids, FIM markers, tokenization), checked against the server (its vocabulary size and
  ``/tokenize`` of a probe text). Prompts go to the server as token ids, laid out exactly as the
  local backend lays them out (the FIM template is steercode's, so ``/infill`` is not used).
* **Rows** are the server's top-``n_probs`` of each step (``PartialLogits``: the known scores, -inf
  elsewhere, ``floor`` = the lowest known). The decoder keeps a choice only when it is above the
  floor -- then the full row would have given the same choice -- and otherwise ``widen``s the row
  (a one-token request with 16 times the ``n_probs``, up to the whole vocabulary). So for greedy
  decoding the suggestion is the one the local decoder would choose given the server's logits.
* **Speed**: after a prompt the server streams its greedy continuation (``stream``, ``n_probs``,
  ``cache_prompt``, one ``id_slot`` per document kept from the server's first choice). The
  streamed tokens are a draft: while the decoder accepts the token the server chose, the next
  row is the next streamed event (no request); when it chooses another one, the stream is
  closed (the server stops that task) and a new one starts from the accepted prefix -- the
  server reuses its KV cache for everything before it. Rolling back inside what was streamed
  costs nothing (the rows are kept).
* **Cancellation**: every wait for the server is abortable (``abortable``; the decoder uses it
  for any request to this backend, ``cheap_abort``); ``release`` closes the stream at the end of
  each generation, so an abandoned or superseded request stops costing the server.
* **Errors**: a server that is down, refuses the API key or breaks a stream raises
  ``ModelServerError`` with a message meant for the user; the next request tries again.

Only token ids of the prompt (and the tokens chosen after it) are sent; no path, no other file.
The server's logits are its own: its KV reuse evaluates a prefix with other batch sizes than a
fresh local decode would, which can move a near-tie (``docs/team-mode.md``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import ContextFullError, EvalAborted, ModelLoadError, VocabTokenizer
from .decoding import PartialLogits
from .settings import check_model_url

log = logging.getLogger("steercode.remote")

__all__ = ["ModelServerError", "RemoteBackend", "RemoteConfig", "check_model_url", "server_report"]

_POLL_S = 0.05  # how often a wait for the server looks at the cancel flag
_WIDEN = 16  # a widened row knows this many times more candidates
_PROBE = "def probe(self, items):\n    return [x for x in items]  # é\n"


class ModelServerError(RuntimeError):
    """The model server could not answer; the message is meant for the user."""


@dataclass(frozen=True)
class RemoteConfig:
    """How to reach the server, and the local GGUF whose vocabulary the server's model has."""

    url: str
    vocab_path: str
    api_key: str | None = None
    connect_timeout_s: float = 3.0
    #: no byte from the server for this long: the request fails
    read_timeout_s: float = 30.0
    n_probs: int = 16
    #: tokens a stream asks for (the decoder closes it when it is done)
    stream_tokens: int = 64
    #: ``requests.verify``-like: a CA bundle for https (None: the system's)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        problem = check_model_url(self.url)
        if problem:
            raise ValueError(problem)
        if self.n_probs < 13:
            raise ValueError(f"n_probs: {self.n_probs} is below the decoder's 13 candidates")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


class _Http:
    """Requests to one server: a new connection per request (a stream holds its own)."""

    def __init__(self, cfg: RemoteConfig) -> None:
        u = urllib.parse.urlsplit(cfg.url)
        self.cfg = cfg
        self.https = u.scheme == "https"
        self.host = u.hostname or ""
        self.port = u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.where = f"{u.scheme}://{u.netloc}{self.prefix}"
        self._ssl = ssl.create_default_context(cafile=cfg.ca_file) if self.https else None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, body: bool) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if body:
            h["Content-Type"] = "application/json"
        if self.cfg.api_key:
            h["Authorization"] = f"Bearer {self.cfg.api_key}"
        return h

    def send(self, method: str, path: str, body: Any = None,
             conn: http.client.HTTPConnection | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Open a connection (or use ``conn``) and send a request; the response's headers are
        read (raises ModelServerError for a server that is down or answers with an error)."""
        conn = conn or self.connection(self.cfg.connect_timeout_s)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.cfg.read_timeout_s)
            conn.request(method, self.prefix + path, body=data, headers=self.headers(data is not None))
            resp = conn.getresponse()
        except Exception as exc:
            conn.close()
            raise self.error(exc) from None
        if resp.status >= 400:
            try:
                detail = resp.read(65536)
            except Exception:
                detail = b""
            conn.close()
            raise self.status_error(resp.status, detail)
        return conn, resp

    def json(self, method: str, path: str, body: Any = None) -> Any:
        conn, resp = self.send(method, path, body)
        try:
            return json.loads(resp.read())
        except ValueError as exc:
            raise ModelServerError(f"the model server at {self.where} sent an unreadable answer to {path}: {exc}") from None
        except Exception as exc:
            raise self.error(exc) from None
        finally:
            conn.close()

    def error(self, exc: BaseException) -> ModelServerError:
        if isinstance(exc, ModelServerError):
            return exc
        if isinstance(exc, ConnectionRefusedError):
            why = "connection refused (is llama-server running?)"
        elif isinstance(exc, (TimeoutError, socket.timeout)):
            why = f"no answer within {self.cfg.read_timeout_s:g} s"
        elif isinstance(exc, ssl.SSLError):
            why = f"TLS failed: {exc}"
        elif isinstance(exc, socket.gaierror):
            why = f"unknown host {self.host}"
        elif isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                              http.client.IncompleteRead)):
            why = "the connection was closed mid-request (did the server stop?)"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return ModelServerError(f"the model server at {self.where} is not usable: {why}")

    def status_error(self, status: int, detail: bytes) -> ModelServerError:
        msg = ""
        try:
            err = json.loads(detail).get("error")
            msg = err.get("message", "") if isinstance(err, dict) else str(err or "")
        except (ValueError, AttributeError):
            msg = detail.decode("utf-8", "replace")[:200]
        if status == 401:
            return ModelServerError(f"the model server at {self.where} refused the request: "
                                    f"{'a wrong api_key' if self.cfg.api_key else 'it needs an api_key'} ({msg or 'unauthorized'})")
        if status == 503:
            return ModelServerError(f"the model server at {self.where} is not ready yet ({msg or 'loading the model'})")
        return ModelServerError(f"the model server at {self.where} answered {status}: {msg or 'error'}")


# ---------------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One step's known candidates, best first (``ids`` / scores), and whether that is all."""

    ids: np.ndarray
    vals: np.ndarray
    complete: bool = False


def _row(entries: Sequence[dict], n_vocab: int) -> _Row:
    """The server's top candidates (its order is by logit) as strictly decreasing scores: a
    log-probability is its logit less one constant, so differences (what penalties shift) hold."""
    ids = np.fromiter((int(e["id"]) for e in entries), dtype=np.int64, count=len(entries))
    vals = np.fromiter((float(e.get("logprob", -1e30)) for e in entries), dtype=np.float32, count=len(entries))
    vals[~np.isfinite(vals)] = np.float32(-1e30)
    for i in range(1, len(vals)):  # equal (rounded) scores keep the server's order
        if not vals[i] < vals[i - 1]:
            vals[i] = np.nextafter(vals[i - 1], np.float32(-np.inf))
    if len(ids) and (ids.min() < 0 or ids.max() >= n_vocab):
        raise ModelServerError("the model server named token ids outside the vocabulary: it runs another model")
    return _Row(ids, vals, complete=len(ids) >= n_vocab)


def _dangling(piece: bytes) -> bool:
    """Does ``piece`` end inside a UTF-8 character (llama-server's ``validate_utf8``)? The server
    sends no event for a generated token that leaves its text so: it must never choose one."""
    n = len(piece)
    for i in range(1, min(4, n) + 1):
        c = piece[n - i]
        if (c & 0xE0) == 0xC0 and i < 2 or (c & 0xF0) == 0xE0 and i < 3 or (c & 0xF8) == 0xF0 and i < 4:
            return True
    return False


class _Stream:
    """One streamed ``/completion``: a reader thread turns its server-sent events into
    (token id, row) items on a queue; ``close`` ends the request (the server stops the task)."""

    def __init__(self, http_: _Http, body: dict, base: list[int], n_vocab: int) -> None:
        self.base = base
        self.gen: list[int] = []  # tokens the server chose after ``base``
        self.rows: list[_Row] = []  # rows[j]: the candidates after base + gen[:j]
        self.done = False  # the server ended the stream (no more rows)
        self.slot: int | None = None
        self.prompt_n: int | None = None  # prompt tokens the server evaluated (its timings)
        self._http = http_
        self._n_vocab = n_vocab
        self._q: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._conn = http_.connection(http_.cfg.connect_timeout_s)
        self._thread = threading.Thread(target=self._read, args=(body,), name="steercode-stream", daemon=True)
        self._thread.start()

    def _read(self, body: dict) -> None:
        try:
            _, resp = self._http.send("POST", "/completion", body, conn=self._conn)
            data: list[bytes] = []
            while not self._closed.is_set():
                line = resp.readline()
                if not line:
                    if not self._closed.is_set():
                        self._q.put(("error", self._http.error(http.client.RemoteDisconnected("stream ended"))))
                    return
                line = line.rstrip(b"\r\n")
                if line:
                    if line.startswith(b"data:"):
                        data.append(line[5:].strip())
                    elif line.startswith(b"error:"):
                        data.append(line[6:].strip())
                    continue
                if not data:
                    continue
                payload, data = b"".join(data), []
                if payload == b"[DONE]":
                    self._q.put(("end", None))
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    self._q.put(("error", ModelServerError(f"the model server at {self._http.where} sent an unreadable event")))
                    return
                self._q.put(("event", event))
                if event.get("stop") or "error" in event:
                    return
        except ModelServerError as exc:
            if not self._closed.is_set():
                self._q.put(("error", exc))
        except Exception as exc:  # the socket closed under us (close(), or the server died)
            if not self._closed.is_set():
                self._q.put(("error", self._http.error(exc)))
        finally:
            with contextlib.suppress(Exception):
                self._conn.close()

    def next_row(self, should_stop: Callable[[], bool] | None, timeout_s: float) -> bool:
        """Read until one more row arrives (True) or the stream ends (False). Raises
        EvalAborted when ``should_stop()`` turns true, ModelServerError on a failure."""
        deadline = time.monotonic() + timeout_s
        while not self.done:
            try:
                kind, item = self._q.get(timeout=_POLL_S)
            except queue.Empty:
                if should_stop is not None and should_stop():
                    self.close()
                    raise EvalAborted("cancelled while waiting for the model server") from None
                if time.monotonic() > deadline:
                    self.close()
                    raise self._http.error(TimeoutError()) from None
                continue
            if kind == "error":
                self.done = True
                raise item
            if kind == "end":
                self.done = True
                return False
            event = item
            if "error" in event:
                self.done = True
                err = event["error"]
                raise ModelServerError(f"the model server at {self._http.where} failed: "
                                       f"{err.get('message', err) if isinstance(err, dict) else err}")
            if self.slot is None and isinstance(event.get("id_slot"), int):
                self.slot = event["id_slot"]
            timings = event.get("timings")
            if isinstance(timings, dict) and "prompt_n" in timings:
                self.prompt_n = int(timings["prompt_n"])
            probs = event.get("completion_probabilities") or ()
            n = event.get("tokens_predicted")
            if probs and isinstance(n, int) and n != len(self.gen) + len(probs):
                self.close()  # a token went by without its event: nothing after it is usable
                return False
            got = False
            for p in probs:
                self.gen.append(int(p["id"]))
                self.rows.append(_row(p.get("top_logprobs") or [], self._n_vocab))
                got = True
            if event.get("stop"):
                self.done = True
            if got:
                return True
        return False

    def close(self) -> None:
        """End the request: the reader stops, the connection closes, the server drops the task."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.done = True
        sock = self._conn.sock  # None before it connected: the reader sees ``_closed`` then
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class RemoteBackend:
    """A model on a llama-server, seen through the local backend's interface (module docstring)."""

    #: its logits are the server's: no local drafting (the server's stream is the draft)
    batch_invariant = False
    #: every wait for the server can stop at once (the decoder uses ``abortable`` for any request)
    cheap_abort = True
    remote = True
    n_threads = 1
    n_threads_batch = 1

    def __init__(self, config: RemoteConfig, n_ctx: int = 4096) -> None:
        self.config = config
        self._http = _Http(config)
        self.url = self._http.where
        t0 = time.perf_counter()
        self._vocab = VocabTokenizer(config.vocab_path)
        self.model_path = config.vocab_path
        self.n_vocab = self._vocab.n_vocab
        self.bos_id = self._vocab.bos_id
        self.eos_id = self._vocab.eos_id
        self.add_bos = self._vocab.add_bos
        self.token_map = None
        self._pieces: list[bytes] | None = None
        self._banned = [[t, False] for t, p in enumerate(self.pieces()) if _dangling(p)]
        self._n_ctx_wanted = n_ctx
        self.n_ctx = n_ctx
        self.server: dict[str, Any] = {}  # what the server said about itself (None until reached)
        self._tokens: list[int] = []
        self._stream: _Stream | None = None
        self._last_rows: list[tuple[_Row, list[int]]] = []
        self._tail: tuple[_Row, list[int]] | None = None
        self._should_stop: Callable[[], bool] | None = None
        self._slots: dict[str, int] = {}  # session (document) -> the server's slot for it
        self.session = ""  # the engine names the document before each generation
        self._sent: list[int] = []  # what the server's slot last held for us (for stats)
        self.eval_calls = 0
        self.requests = 0
        self.load_ms = (time.perf_counter() - t0) * 1000
        try:
            self.connect()
        except ModelServerError as exc:  # the server may come up later: requests try again
            log.warning("%s", exc)
        except ModelLoadError:
            self._vocab.close()
            raise

    # ---- the server ------------------------------------------------------------------------
    def connect(self) -> dict[str, Any]:
        """Ask the server about itself (/props, /v1/models) and check its model has this
        vocabulary. Raises ModelServerError (unreachable) or ModelLoadError (another model)."""
        props = self._http.json("GET", "/props")
        info: dict[str, Any] = {"url": self.url}
        gen = props.get("default_generation_settings") or {}
        info["n_ctx_slot"] = int(gen.get("n_ctx") or props.get("n_ctx") or 0) or None
        info["slots"] = props.get("total_slots")
        info["model_path"] = props.get("model_path")
        info["build"] = props.get("build_info")
        try:
            models = self._http.json("GET", "/v1/models")
            meta = (models.get("data") or [{}])[0].get("meta") or {}
            info.update({k: meta.get(k) for k in ("n_vocab", "n_ctx_train", "n_params", "size")})
        except ModelServerError:
            meta = {}
        if meta.get("n_vocab") is not None and int(meta["n_vocab"]) != self.n_vocab:
            raise ModelLoadError(
                f"the model server at {self.url} runs a model with {meta['n_vocab']} tokens, but {self.model_path} "
                f"has {self.n_vocab}: set model_path to a copy of the server's GGUF (its vocabulary is what is used)")
        probe = self._http.json("POST", "/tokenize", {"content": _PROBE, "add_special": False})
        theirs = [int(t["id"]) if isinstance(t, dict) else int(t) for t in probe.get("tokens", [])]
        if theirs != self._vocab.tokenize(_PROBE):
            raise ModelLoadError(f"the model server at {self.url} tokenizes differently from {self.model_path}: "
                                 "set model_path to a copy of the server's GGUF")
        if info["n_ctx_slot"]:
            self.n_ctx = min(self._n_ctx_wanted, info["n_ctx_slot"])
        self.server = info
        return info

    def _ensure_server(self) -> None:
        if not self.server:
            self.connect()

    def _body(self, prompt: list[int], n_predict: int, n_probs: int, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt, "n_predict": n_predict, "n_probs": n_probs, "stream": stream,
            "cache_prompt": True, "temperature": 0.0, "top_k": 1, "samplers": ["top_k"],
            "repeat_penalty": 1.0, "post_sampling_probs": False, "return_tokens": False,
            # the server may not choose a token that ends inside a character (it would send no
            # event for it); the candidates (raw logits) still list it, so the decoder can
            "logit_bias": self._banned,
        }
        slot = self._slots.get(self.session)
        if slot is not None:
            body["id_slot"] = slot
        return body

    def _open(self, base: list[int]) -> _Stream:
        self._close_stream()
        self._ensure_server()
        room = max(1, min(self.config.stream_tokens, self.n_ctx - len(base)))
        self.requests += 1
        st = _Stream(self._http, self._body(base, room, self.config.n_probs, True), list(base), self.n_vocab)
        self._stream = st
        return st

    def _close_stream(self) -> None:
        st = self._stream
        if st is not None:
            self._sent = st.base + st.gen
            if st.slot is not None:
                self._slots[self.session] = st.slot
            st.close()
            self._stream = None

    def _row_after(self, ctx: list[int]) -> _Row:
        """The candidates after ``ctx``: from the open stream when ``ctx`` is its base plus
        what it streamed (reading on as needed), else from a new stream starting at ``ctx``."""
        st = self._stream
        if st is not None:
            nb = len(st.base)
            m = len(ctx) - nb
            if m >= 0 and ctx[:nb] == st.base:
                while len(st.gen) < m + 1 and not st.done and ctx[nb : nb + len(st.gen)] == st.gen:
                    st.next_row(self._should_stop, self.config.read_timeout_s)
                if m < len(st.rows) and ctx[nb:] == st.gen[:m]:
                    return st.rows[m]
        st = self._open(ctx)
        if not st.next_row(self._should_stop, self.config.read_timeout_s) or not st.rows:
            raise ModelServerError(f"the model server at {self.url} ended the stream without a token")
        return st.rows[0]

    def _widen(self, ctx: list[int], known: int) -> np.ndarray:
        """The row after ``ctx`` with more candidates (a one-token request; the stream, which
        holds the slot, is closed first)."""
        self._close_stream()
        n = min(self.n_vocab, max(known * _WIDEN, self.config.n_probs))
        self.requests += 1
        out = self._http.json("POST", "/completion", self._body(list(ctx), 1, n, False))
        probs = out.get("completion_probabilities") or []
        if not probs:
            raise ModelServerError(f"the model server at {self.url} sent no candidates (is n_probs disabled?)")
        if isinstance(out.get("id_slot"), int):
            self._slots[self.session] = out["id_slot"]
        self._sent = list(ctx)
        row = _row(probs[0].get("top_logprobs") or [], self.n_vocab)
        if len(row.ids) < n and len(row.ids) < self.n_vocab:
            row.complete = True  # the server gave every candidate it has
        return self._dense(row, ctx)

    def _dense(self, row: _Row, ctx: list[int]) -> np.ndarray:
        dense = np.full(self.n_vocab, -np.inf, dtype=np.float32)
        dense[row.ids] = row.vals
        if row.complete or not len(row.vals):
            return dense
        return PartialLogits(dense, float(row.vals[-1]), lambda: self._widen(ctx, len(row.ids)))

    # ---- the backend interface -----------------------------------------------------------
    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    def truncate(self, n: int) -> None:
        if n < len(self._tokens):
            del self._tokens[max(n, 0):]
            self._tail = None

    def reset(self) -> None:
        self._close_stream()
        self._tokens.clear()
        self._tail = None

    def eval(self, tokens: Sequence[int], rows: str | Sequence[int] = "last") -> None:
        n = len(tokens)
        if n == 0:
            return
        if len(self._tokens) + n > self.n_ctx:
            raise ContextFullError(f"context full: {len(self._tokens)} + {n} tokens > n_ctx {self.n_ctx}")
        if rows == "last":
            want = [n - 1]
        elif rows == "all":
            want = list(range(n))
        else:
            want = sorted({int(r) % n for r in rows})
        base = self._tokens + [int(t) for t in tokens]
        self.eval_calls += 1
        out = []
        for i in want:
            ctx = base[: len(self._tokens) + i + 1]
            out.append((self._row_after(ctx), ctx))
        self._tokens = base
        self._last_rows = out
        self._tail = out[-1] if want[-1] == n - 1 else None

    def logits(self, k: int = -1) -> np.ndarray:
        row, ctx = self._last_rows[k]
        return self._dense(row, ctx)

    def eval_prompt(self, tokens: Sequence[int]) -> tuple[int, int]:
        if not tokens:
            raise ValueError("tokens: the prompt is empty")
        toks = [int(t) for t in tokens]
        held = self._sent if self._stream is None else self._stream.base + self._stream.gen
        lcp = 0
        for a, b in zip(held, toks, strict=False):
            if a != b:
                break
            lcp += 1
        if len(toks) > self.n_ctx:
            raise ContextFullError(f"context full: {len(toks)} tokens > n_ctx {self.n_ctx}")
        self.eval_calls += 1
        self._tail = (self._row_after(toks), toks)
        self._tokens = toks
        st = self._stream
        if st is not None and st.prompt_n is not None:
            lcp = max(0, len(toks) - st.prompt_n)
        lcp = min(lcp, len(toks) - 1)  # the server evaluates at least the last prompt token
        return lcp, len(toks) - lcp

    def tail_logits(self) -> np.ndarray:
        if self._tail is None:
            raise RuntimeError("no logits for the end of the cache")
        return self._dense(*self._tail)

    def release(self) -> None:
        """A generation ended: close the stream so the server stops generating for it."""
        self._close_stream()

    @contextlib.contextmanager
    def abortable(self, should_stop: Callable[[], bool]):
        """Within this block a wait for the server stops once ``should_stop()`` is true (it
        raises EvalAborted and closes the stream)."""
        prev, self._should_stop = self._should_stop, should_stop
        try:
            yield
        finally:
            self._should_stop = prev

    def warm_up(self) -> None:
        """Nothing to warm here; the server's first answer is its own business."""

    # ---- vocabulary facts (the local load of the same GGUF) ------------------------------
    def pieces(self) -> list[bytes]:
        if self._pieces is None:
            self._pieces = self._vocab.pieces()
        return self._pieces

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return self._vocab.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        pieces = self.pieces()
        return b"".join(pieces[t] for t in tokens)

    def token_text(self, tid: int) -> str:
        return self._vocab.token_text(tid)

    def is_eog(self, tid: int) -> bool:
        return self._vocab.is_eog(tid)

    def is_control(self, tid: int) -> bool:
        return self._vocab.is_control(tid)

    def special_ids(self) -> list[int]:
        return self._vocab.special_ids()

    def llama_fim_ids(self) -> dict[str, int]:
        return self._vocab.llama_fim_ids()

    def metadata(self, key: str) -> str | None:
        return self._vocab.metadata(key)

    def describe(self) -> dict[str, object]:
        s = self.server
        return {
            "path": self.model_path,
            "description": f"{self._vocab.description()} on {self.url}",
            "size_bytes": int(s.get("size") or 0),
            "n_params": int(s.get("n_params") or 0),
            "n_vocab": self.n_vocab,
            "n_ctx": self.n_ctx,
            "n_ctx_train": int(s.get("n_ctx_train") or 0),
            "n_swa": 0,
            "threads": 0,
            "threads_batch": 0,
            "batch_invariant": False,
            "load_ms": round(self.load_ms, 1),
            "vocabulary": "full",
            "n_vocab_original": self.n_vocab,
            "server": dict(s, reachable=bool(s)),
        }

    def close(self) -> None:
        self._close_stream()
        self._vocab.close()


def server_report(url: str, api_key: str | None, vocab_path: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """What ``steercode doctor`` shows about a model server: reachable, its model, context per
    slot, slots, whether its vocabulary is the local GGUF's, FIM tokens. Raises ModelServerError."""
    be = RemoteBackend(RemoteConfig(url=url, vocab_path=vocab_path, api_key=api_key, connect_timeout_s=timeout_s,
                                    read_timeout_s=timeout_s))
    try:
        info = be.connect()
        fim = be.llama_fim_ids()
        info["fim"] = {k: (be.token_text(v) if v >= 0 else None) for k, v in fim.items()}
        return info
    finally:
        be.close()
