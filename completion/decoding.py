"""The decode loop: eval -> logits -> constraints -> choose -> stop, with drafts verified in batches.

Invariant kept between steps: the KV cache holds the prompt and every accepted token except the
last one (the *pending* token), which is evaluated first in the next batch. A step evaluates
``[pending] + draft`` in one batch -- with logits for every row only when there is a draft -- and
walks the rows: at each row it chooses the token the constrained decoder would choose; a draft
token is accepted only when it equals that choice, so drafting changes speed, never output. The
rejected tail of a draft is rolled back with ``truncate``.

Choosing checks the preferred token against the constraints first and asks for allowed sets only
when it is rejected (after trying the next few candidates), so the common step costs one argmax
and a few string comparisons, not a pass over the vocabulary in Python.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from monitors.vocabulary import Vocabulary

from .constraints import Constraint

log = logging.getLogger(__name__)

__all__ = ["CancelToken", "Cancelled", "DecodeResult", "DecodeStats", "Decoder", "Drafter", "Sampling"]

_TRY_CANDIDATES = 12  # next-best tokens checked before asking constraints for allowed sets


class Cancelled(Exception):
    """The request was cancelled (by the client, or superseded by a newer one)."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class CancelToken:
    """A flag the decode loop checks between evaluations. Thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled if the token was cancelled."""
        if self._event.is_set():
            raise Cancelled(self.reason or "cancelled")


class Drafter(Protocol):
    def __call__(self, tokens: Sequence[int], /) -> Sequence[int]:
        """A proposed continuation of ``tokens`` (may be empty)."""
        ...


@dataclass(frozen=True)
class Sampling:
    """Greedy by default; temperature/top-p sampling with a seed for reproducibility."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 5.0:
            raise ValueError(f"temperature: {self.temperature} is outside [0, 5]")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: {self.top_p} is outside (0, 1]")
        if self.top_k < 1:
            raise ValueError(f"top_k: {self.top_k} must be at least 1")


@dataclass
class DecodeStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0
    prompt_eval_tokens: int = 0
    generated_tokens: int = 0
    prompt_ms: float = 0.0
    decode_ms: float = 0.0
    constraint_ms: float = 0.0
    eval_calls: int = 0
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
    interventions: dict[str, int] = field(default_factory=dict)  # tokens changed, per constraint
    constraint_errors: list[str] = field(default_factory=list)
    stop_reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "prompt_eval_tokens": self.prompt_eval_tokens,
            "generated_tokens": self.generated_tokens,
            "prompt_ms": round(self.prompt_ms, 2),
            "decode_ms": round(self.decode_ms, 2),
            "constraint_ms": round(self.constraint_ms, 3),
            "eval_calls": self.eval_calls,
            "drafted_tokens": self.drafted_tokens,
            "accepted_draft_tokens": self.accepted_draft_tokens,
            "interventions": dict(self.interventions),
            "constraint_errors": list(self.constraint_errors),
            "stop_reason": self.stop_reason,
        }


@dataclass
class DecodeResult:
    text: str  # generated text from the decode start, cut by the stop rule
    tokens: list[int]
    stats: DecodeStats


class _Text:
    """Incremental UTF-8 decoding: complete characters only; partial bytes wait."""

    __slots__ = ("pending", "text")

    def __init__(self) -> None:
        self.text = ""
        self.pending = b""

    def push(self, piece: bytes) -> None:
        data = self.pending + piece
        try:
            self.text += data.decode("utf-8")
            self.pending = b""
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                self.text += data[: exc.start].decode("utf-8", "replace")
                self.pending = data[exc.start :]
            else:
                self.text += data.decode("utf-8", "replace")
                self.pending = b""


class Decoder:
    """Runs the decode loop on a backend (see the module docstring)."""

    def __init__(self, backend, vocab: Vocabulary, stop_ids: set[int] | frozenset[int]) -> None:
        self.backend = backend
        self.vocab = vocab
        self.stop_ids = frozenset(stop_ids)

    # ---- choosing --------------------------------------------------------------------------
    def _rejecting(self, generated: str, tok: int, constraints: list[Constraint], stats: DecodeStats) -> Constraint | None:
        text = self.vocab.text(tok)
        for c in list(constraints):
            try:
                ok = c.check(generated, tok, text)
            except Exception as exc:
                self._disable(c, constraints, stats, exc)
                continue
            if not ok:
                return c
        return None

    def _disable(self, c: Constraint, constraints: list[Constraint], stats: DecodeStats, exc: BaseException) -> None:
        log.warning("constraint %s failed (%s: %s); no opinion for the rest of this request", c.name, type(exc).__name__, exc)
        stats.constraint_errors.append(f"{c.name}: {type(exc).__name__}: {exc}")
        if c in constraints:
            constraints.remove(c)

    def _preferred(self, logits: np.ndarray, sampling: Sampling, rng: np.random.Generator | None) -> int:
        if sampling.temperature == 0.0 or rng is None:
            return int(np.argmax(logits))
        k = min(sampling.top_k, len(logits))
        idx = np.argpartition(logits, -k)[-k:]
        vals = logits[idx].astype(np.float64) / sampling.temperature
        order = np.argsort(-vals)
        idx, vals = idx[order], vals[order]
        p = np.exp(vals - vals.max())
        p /= p.sum()
        if sampling.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(p), sampling.top_p) + 1)
            idx, p = idx[:keep], p[:keep] / p[:keep].sum()
        return int(rng.choice(idx, p=p))

    def choose(
        self,
        logits: np.ndarray,
        generated: str,
        constraints: list[Constraint],
        stats: DecodeStats,
        sampling: Sampling = Sampling(),
        rng: np.random.Generator | None = None,
    ) -> int | None:
        """The token the constrained decoder emits after ``generated`` (None: nothing allowed)."""
        tok = self._preferred(logits, sampling, rng)
        if not constraints:
            return tok
        t0 = time.perf_counter()
        try:
            first = self._rejecting(generated, tok, constraints, stats)
            if first is None:
                return tok
            stats.interventions[first.name] = stats.interventions.get(first.name, 0) + 1
            # the next few candidates, best first
            k = min(_TRY_CANDIDATES + 1, len(logits))
            cand = np.argpartition(logits, -k)[-k:]
            cand = cand[np.argsort(-logits[cand])]
            for c in cand:
                c = int(c)
                if c != tok and self._rejecting(generated, c, constraints, stats) is None:
                    return c
            # ask every constraint with an opinion for its allowed set
            allowed: np.ndarray | None = None
            for con in list(constraints):
                try:
                    a = con.allowed(generated)
                except Exception as exc:
                    self._disable(con, constraints, stats, exc)
                    continue
                if a is None:
                    continue
                allowed = a if allowed is None else np.intersect1d(allowed, a, assume_unique=False)
            if allowed is None:
                return None if constraints else tok
            if not len(allowed):
                return None
            allowed = allowed[np.argsort(-logits[allowed])]
            if sampling.temperature > 0.0 and rng is not None and len(allowed) > 1:
                sub = logits[allowed[: sampling.top_k]].astype(np.float64) / sampling.temperature
                p = np.exp(sub - sub.max())
                p /= p.sum()
                first_pick = int(rng.choice(allowed[: sampling.top_k], p=p))
                allowed = np.concatenate(([first_pick], allowed[allowed != first_pick]))
            for c in allowed[:256]:
                c = int(c)
                if self._rejecting(generated, c, constraints, stats) is None:
                    return c
            return None
        finally:
            stats.constraint_ms += (time.perf_counter() - t0) * 1000

    # ---- the loop --------------------------------------------------------------------------
    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int,
        constraints: Sequence[Constraint] = (),
        stop: Callable[[str], int | None] | None = None,
        cancel: CancelToken | None = None,
        sampling: Sampling = Sampling(),
        drafter: Drafter | None = None,
        max_draft: int = 4,
    ) -> DecodeResult:
        """Generate up to ``max_tokens`` tokens after ``prompt``.

        ``stop(text)`` returns where to cut the text generated so far when generation should end.
        Raises Cancelled (between evaluations) when ``cancel`` is set; the KV cache stays
        consistent.
        """
        stats = DecodeStats(prompt_tokens=len(prompt))
        active = list(constraints)
        rng = np.random.default_rng(sampling.seed) if sampling.temperature > 0 else None
        be = self.backend
        calls0 = getattr(be, "eval_calls", 0)
        if cancel:
            cancel.check()
        t0 = time.perf_counter()
        if len(prompt) + 1 > be.n_ctx:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the context ({be.n_ctx})")
        max_tokens = max(0, min(max_tokens, be.n_ctx - len(prompt) - 1))
        stats.reused_tokens, stats.prompt_eval_tokens = be.eval_prompt(prompt)
        t1 = time.perf_counter()
        stats.prompt_ms = (t1 - t0) * 1000
        out = _Text()
        toks: list[int] = []
        cut: int | None = None

        def accept(tok: int) -> bool:
            """Append ``tok``; True when generation must stop after it."""
            nonlocal cut
            toks.append(tok)
            out.push(self.vocab.pieces[tok])
            if stop is not None and not out.pending:
                c = stop(out.text)
                if c is not None:
                    cut = c
                    return True
            return len(toks) >= max_tokens

        def finish(reason: str) -> DecodeResult:
            stats.stop_reason = stats.stop_reason or reason
            stats.generated_tokens = len(toks)
            stats.decode_ms = (time.perf_counter() - t1) * 1000
            stats.eval_calls = getattr(be, "eval_calls", 0) - calls0
            text = out.text if cut is None else out.text[:cut]
            return DecodeResult(text=text, tokens=toks, stats=stats)

        if max_tokens <= 0:
            return finish("max tokens")
        tok = self.choose(be.tail_logits(), out.text, active, stats, sampling, rng)
        if tok is None:
            return finish("constraints: nothing allowed")
        if self._is_stop(tok):
            return finish("end token")
        if accept(tok):
            return finish("stop rule" if cut is not None else "max tokens")
        pending = tok
        while True:
            if cancel and cancel.is_set():
                exc = Cancelled(cancel.reason or "cancelled")
                exc.generated_tokens = len(toks)  # type: ignore[attr-defined]
                raise exc
            draft: list[int] = []
            if drafter is not None and max_draft > 0:
                room = min(max_draft, max_tokens - len(toks), be.n_ctx - be.n_past - 2)
                if room > 0:
                    try:
                        draft = [int(t) for t in drafter(list(prompt) + toks)][:room]
                    except Exception:
                        log.warning("drafter failed; continuing without drafts", exc_info=True)
                        drafter = None
            n0 = be.n_past
            be.eval([pending, *draft], rows="all" if draft else "last")
            stats.drafted_tokens += len(draft)
            for i in range(len(draft) + 1):
                row = be.logits(i if draft else -1)
                tok = self.choose(row, out.text, active, stats, sampling, rng)
                if tok is None or self._is_stop(tok):
                    be.truncate(n0 + i + 1)
                    return finish("end token" if tok is not None else "constraints: nothing allowed")
                if accept(tok):
                    be.truncate(n0 + i + 1)
                    return finish("stop rule" if cut is not None else "max tokens")
                if i < len(draft) and tok == draft[i]:
                    stats.accepted_draft_tokens += 1
                    continue
                be.truncate(n0 + i + 1)
                pending = tok
                break

    def _is_stop(self, tok: int) -> bool:
        return tok in self.stop_ids or bool(self.vocab.is_control[tok])
