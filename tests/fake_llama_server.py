"""A fake llama-server on loopback for the remote backend's protocol tests.

Its "model" is ``fakes.FakeBackend``'s: logits are a hash of the whole token sequence, so a local
``FakeBackend`` with the same vocabulary size gives the full rows the server's top-k come from.
It speaks the parts of llama-server's HTTP API the remote backend uses (``/health``, ``/props``,
``/v1/models``, ``/tokenize``, ``/completion`` streamed or not, ``n_probs`` as log-probabilities,
``id_slot``), and can misbehave on demand: ask for an API key, hold a stream open until the
client goes away, or drop the connection after some tokens.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from fakes import FakeBackend


class FakeLlamaServer:
    def __init__(self, n_vocab: int, tokenize, n_ctx: int = 512, script=None) -> None:
        self.model = FakeBackend(n_vocab, n_ctx=n_ctx, script=script)
        self.n_vocab = n_vocab
        self.n_ctx = n_ctx
        self.tokenize = tokenize
        self.requests: list[dict] = []  # bodies of /completion requests, in order
        self.api_key: str | None = None
        self.headers_seen: list[dict] = []
        self.hold = False  # a stream sends nothing and waits for the client to leave
        self.hold_started = threading.Event()
        self.client_left = threading.Event()  # a held or streaming client closed its connection
        self.die_after: int | None = None  # tokens a stream sends before the connection drops
        self.streamed = 0  # tokens sent over all streams
        self.n_vocab_reported = n_vocab
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _json(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                outer.headers_seen.append(dict(self.headers))
                if outer.api_key and self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    self._json(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path == "/health":
                    self._json(200, {"status": "ok"})
                elif self.path == "/props":
                    self._json(200, {"default_generation_settings": {"n_ctx": outer.n_ctx}, "total_slots": 2,
                                     "model_path": "/models/fake.gguf", "build_info": "fake"})
                elif self.path == "/v1/models":
                    self._json(200, {"data": [{"id": "fake", "meta": {"n_vocab": outer.n_vocab_reported, "n_ctx_train": outer.n_ctx,
                                                                      "n_params": 1, "size": 1}}]})
                else:
                    self._json(404, {"error": {"code": 404, "message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self._authorized():
                    return
                if self.path == "/tokenize":
                    self._json(200, {"tokens": outer.tokenize(body["content"])})
                elif self.path == "/completion":
                    outer.requests.append(body)
                    if body.get("stream"):
                        self._stream(body)
                    else:
                        ctx = list(body["prompt"])
                        self._json(200, {"content": "", "id_slot": body.get("id_slot", 0),
                                         "completion_probabilities": [outer.step(ctx, body["n_probs"], outer.banned(body))]})
                else:
                    self._json(404, {"error": {"code": 404, "message": "not found"}})

            def _gone(self) -> bool:
                sock = self.connection
                r, _, _ = select.select([sock], [], [], 0)
                if not r:
                    return False
                try:
                    return sock.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _stream(self, body) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(data: bytes) -> None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()

                if outer.hold:
                    outer.hold_started.set()
                    while not self._gone():
                        select.select([self.connection], [], [], 0.05)
                    outer.client_left.set()
                    return
                ctx = list(body["prompt"])
                slot = body.get("id_slot", 1)
                try:
                    for i in range(int(body["n_predict"])):
                        if outer.die_after is not None and outer.streamed >= outer.die_after:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            self.close_connection = True
                            return
                        p = outer.step(ctx, body["n_probs"], outer.banned(body))
                        ctx.append(p["id"])
                        outer.streamed += 1
                        last = i == int(body["n_predict"]) - 1
                        ev = {"content": "", "stop": last, "id_slot": slot, "completion_probabilities": [p]}
                        chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                    chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    outer.client_left.set()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def step(self, ctx: list[int], n_probs: int, banned=()) -> dict:
        """The greedy token after ``ctx`` (``banned`` ids never: logit_bias) and the top
        ``n_probs`` of the raw logits, as llama-server reports them."""
        logits = self.model._logits_after(ctx).astype(np.float64)
        order = np.argsort(-logits, kind="stable")
        top_ids = order[: max(1, min(int(n_probs), self.n_vocab))]
        lse = float(np.log(np.sum(np.exp(logits - logits.max()))) + logits.max())
        top = [{"id": int(t), "token": "", "bytes": [], "logprob": float(logits[t] - lse)} for t in top_ids]
        ban = set(banned)
        chosen = next(int(t) for t in order if int(t) not in ban)
        return {"id": chosen, "token": "", "bytes": [], "logprob": float(logits[chosen] - lse), "top_logprobs": top}

    @staticmethod
    def banned(body: dict) -> list[int]:
        return [int(t) for t, bias in body.get("logit_bias") or () if bias is False]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
