"""Fakes for fast unit tests of the decode loop (the real model is tested end to end elsewhere)."""

from __future__ import annotations

import hashlib

import numpy as np


class FakeBackend:
    """A deterministic 'language model': logits are a hash of the whole token sequence.

    Mirrors the backend contract the decoder relies on: eval_prompt / eval(rows) / logits(k) /
    tail_logits / truncate, with the KV cache modelled as the list of evaluated tokens.
    """

    def __init__(self, n_vocab: int, n_ctx: int = 512, script: dict[tuple[int, ...], int] | None = None):
        self.n_vocab = n_vocab
        self.n_ctx = n_ctx
        self.kv: list[int] = []
        self._rows: list[np.ndarray] = []
        self.eval_calls = 0
        self.evaluated = 0
        self.script = script or {}

    def _logits_after(self, seq: list[int]) -> np.ndarray:
        h = hashlib.sha256(np.asarray(seq, dtype=np.int64).tobytes()).digest()
        rng = np.random.default_rng(int.from_bytes(h[:8], "little"))
        row = rng.standard_normal(self.n_vocab).astype(np.float32)
        # scripted favourites: the last k tokens -> strongly preferred next token
        for k in range(len(seq), 0, -1):
            nxt = self.script.get(tuple(seq[-k:]))
            if nxt is not None:
                row[nxt] += 10.0
                break
        return row

    @property
    def n_past(self) -> int:
        return len(self.kv)

    def eval_prompt(self, tokens):
        lcp = 0
        while lcp < min(len(self.kv), len(tokens)) and self.kv[lcp] == tokens[lcp]:
            lcp += 1
        if lcp == len(tokens):
            lcp -= 1
        self.truncate(lcp)
        self.eval(list(tokens[lcp:]))
        return lcp, len(tokens) - lcp

    def eval(self, tokens, rows="last"):
        n = len(tokens)
        if len(self.kv) + n > self.n_ctx:
            raise RuntimeError("context full")
        want = range(n) if rows == "all" else [n - 1]
        start = len(self.kv)
        self.kv.extend(tokens)
        self._rows = [self._logits_after(self.kv[: start + i + 1]) for i in want]
        self.eval_calls += 1
        self.evaluated += n

    def logits(self, k=-1):
        return self._rows[k]

    def tail_logits(self):
        return self._rows[-1]

    def truncate(self, n):
        del self.kv[n:]
