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
from typing import Any, Protocol

import numpy as np

from monitors.vocabulary import Vocabulary

from .constraints import Constraint

log = logging.getLogger(__name__)

__all__ = ["CancelToken", "Cancelled", "DecodeResult", "DecodeStats", "Decoder", "Drafter", "Sampling"]

_TRY_CANDIDATES = 12  # next-best tokens checked before asking constraints for allowed sets
_SCAN_CANDIDATES = 256
_MAX_REWINDS = 4  # dead ends undone per request at most
_MAX_VERIFY = 7  # tokens per verification batch (see backend.SMALL_BATCH)  # candidates scanned with check() when no constraint enumerates its set


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
        #: also stop inside a model evaluation, not only between them (for background work:
        #: the keystroke that cancels it should not wait for its evaluation to end)
        self.abort_evals = False

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
    accepted_by_source: dict[str, int] = field(default_factory=dict)  # accepted drafted tokens per drafter source
    interventions: dict[str, int] = field(default_factory=dict)  # tokens changed, per constraint
    constraint_errors: list[str] = field(default_factory=list)
    stop_reason: str = ""
    provisional: int = 0  # tokens accepted while an analysis was still running
    rollbacks: int = 0  # provisional choices that the analysis then rejected
    rewinds: int = 0  # dead ends undone (a constraint showed an earlier token was wrong)
    pending_wait_ms: float = 0.0  # time spent waiting for analyses at the end
    unverified_dropped: int = 0  # tokens left out at the deadline because their analysis had not landed

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
            "accepted_by_source": dict(self.accepted_by_source),
            "interventions": dict(self.interventions),
            "constraint_errors": list(self.constraint_errors),
            "stop_reason": self.stop_reason,
            "provisional": self.provisional,
            "rollbacks": self.rollbacks,
            "rewinds": self.rewinds,
            "pending_wait_ms": round(self.pending_wait_ms, 2),
            "unverified_dropped": self.unverified_dropped,
        }


@dataclass
class DecodeResult:
    text: str  # generated text from the decode start, cut by the stop rule
    tokens: list[int]
    stats: DecodeStats
    tokens_text: str = ""  # the text of ``tokens`` (uncut: what a continuation carries on from)


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

    def __init__(self, backend, vocab: Vocabulary, stop_ids: set[int] | frozenset[int], speculate: bool = True) -> None:
        self.backend = backend
        self.vocab = vocab
        self.stop_ids = frozenset(stop_ids)
        #: accept tokens provisionally while an analysis runs (needs a spare core to pay off)
        self.speculate = speculate
        #: ``time.perf_counter()`` when the last ``generate`` had evaluated its prompt (a
        #: ``stop`` rule that budgets generation time measures from here)
        self.decode_started = 0.0

    # ---- choosing --------------------------------------------------------------------------
    def _judge(self, generated: str, tok: int, constraints: list[Constraint], stats: DecodeStats):
        """(rejecting constraint or None, [(constraint, pending)], rewind target or None).

        A check answers True, False, a pending answer (has ``done``: its analysis is still
        running), or a rewind (has ``to``: a rejection saying the text went wrong at ``to``).
        """
        text = self.vocab.text(tok)
        pend: list[tuple[Constraint, Any]] = []
        for c in list(constraints):
            try:
                r = c.check(generated, tok, text)
                while not self.speculate and hasattr(r, "done"):
                    tw = time.perf_counter()
                    r.wait()  # no spare core: waiting beats running the model beside the analysis
                    stats.pending_wait_ms += (time.perf_counter() - tw) * 1000
                    r = c.check(generated, tok, text)
            except Exception as exc:
                self._disable(c, constraints, stats, exc)
                continue
            if r is True or isinstance(r, (bool, np.bool_)):
                if not r:
                    return c, [], None
                continue
            if hasattr(r, "done"):
                pend.append((c, r))  # the constraint's analysis is still running
                continue
            to = getattr(r, "to", None)
            if to is not None:
                return c, [], int(to)
            if not r:
                return c, [], None
        return None, pend, None

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
        pending_out: list | None = None,
        forbidden: set[int] | None = None,
        rewind_out: list | None = None,
    ) -> int | None:
        """The token the constrained decoder emits after ``generated`` (None: nothing allowed).

        Constraints that cannot decide yet (analysis still running) accept provisionally; they
        are appended to ``pending_out`` so the caller can verify the choice later.
        """
        tok = self._preferred(logits, sampling, rng)
        if not constraints and not forbidden:
            return tok
        t0 = time.perf_counter()
        forbidden = forbidden or set()
        try:
            if tok not in forbidden:
                first, pend, rw = self._judge(generated, tok, constraints, stats)
                if first is None:
                    if pending_out is not None:
                        pending_out.extend(pend)
                    return tok
                stats.interventions[first.name] = stats.interventions.get(first.name, 0) + 1
                if rw is not None and rewind_out is not None:
                    rewind_out.append(rw)

            # the next few candidates, best first
            k = min(_TRY_CANDIDATES + 1, len(logits))
            cand = np.argpartition(logits, -k)[-k:]
            cand = cand[np.argsort(-logits[cand])]
            for c in cand:
                c = int(c)
                if c == tok or c in forbidden:
                    continue
                rej, pend, _ = self._judge(generated, c, constraints, stats)
                if rej is None:
                    if pending_out is not None:
                        pending_out.extend(pend)
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
                if not constraints and tok not in forbidden:  # every constraint failed and was disabled
                    return tok
                # nobody can enumerate what is allowed: scan the best candidates with check()
                k = min(_SCAN_CANDIDATES, len(logits))
                pool = np.argpartition(logits, -k)[-k:]
                allowed = pool[np.argsort(-logits[pool])]
            else:
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
                if c in forbidden:
                    continue
                rej, pend, _ = self._judge(generated, c, constraints, stats)
                if rej is None:
                    if pending_out is not None:
                        pending_out.extend(pend)
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
        max_draft: int = 6,
        threads: Callable[[], int | None] | None = None,
        draft_policy: Any = None,
        recycle: Any = None,
        resume: bool = False,
        budget_s: float | None = None,
        keep_chars: int = 0,
    ) -> DecodeResult:
        """Generate up to ``max_tokens`` tokens after ``prompt``.

        ``stop(text)`` returns where to cut the text generated so far when generation should end.
        Raises Cancelled (between evaluations) when ``cancel`` is set; the KV cache stays
        consistent. A constraint whose analysis is still running accepts provisionally; the
        choice is verified when the analysis lands, and on a violation generation rolls back to
        that token and continues from there -- the output equals waiting, the latency does not.
        ``threads()`` is asked before each evaluation how many threads to use (None: default);
        the engine uses it to leave a core to a running analysis. ``resume``: the KV cache already
        holds ``prompt[:-1]`` from an earlier generate (a continuation): carry on from there
        exactly as that generation would have, instead of re-evaluating the prompt.
        ``budget_s``: once generation has run this long after the prompt (``decode_started``),
        generation that ends does not wait for analyses still running; it returns only the tokens
        verified so far (when they hold more than ``keep_chars`` characters of non-blank text;
        otherwise it waits).
        """
        if cancel is not None and cancel.abort_evals and hasattr(self.backend, "abortable"):
            try:
                with self.backend.abortable(cancel.is_set):
                    return self._generate(prompt, max_tokens, constraints, stop, cancel, sampling, drafter, max_draft,
                                          threads, draft_policy, recycle, resume, budget_s, keep_chars)
            except Exception as exc:
                if getattr(exc, "aborted", False):
                    raise Cancelled(cancel.reason or "cancelled") from exc
                raise
        return self._generate(prompt, max_tokens, constraints, stop, cancel, sampling, drafter, max_draft, threads,
                              draft_policy, recycle, resume, budget_s, keep_chars)

    def _generate(self, prompt, max_tokens, constraints, stop, cancel, sampling, drafter, max_draft, threads,
                  draft_policy, recycle, resume, budget_s, keep_chars) -> DecodeResult:
        stats = DecodeStats(prompt_tokens=len(prompt))
        active = list(constraints)
        rng = np.random.default_rng(sampling.seed) if sampling.temperature > 0 else None
        be = self.backend
        calls0 = getattr(be, "eval_calls", 0)
        if cancel:
            cancel.check()
        default_threads = (getattr(be, "n_threads", 1), getattr(be, "n_threads_batch", 1))

        def apply_threads() -> None:
            if threads is None or not hasattr(be, "set_threads"):
                return
            n = threads()
            be.set_threads(*(default_threads if n is None else (n, n)))

        t0 = time.perf_counter()
        if len(prompt) + 1 > be.n_ctx:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the context ({be.n_ctx})")
        max_tokens = max(0, min(max_tokens, be.n_ctx - len(prompt) - 1))
        apply_threads()
        if resume and be.n_past >= len(prompt) - 1 and be.tokens[: len(prompt) - 1] == list(prompt[:-1]):
            be.truncate(len(prompt) - 1)
            be.eval([prompt[-1]], rows="last")
            stats.reused_tokens, stats.prompt_eval_tokens = len(prompt) - 1, 1
        else:
            stats.reused_tokens, stats.prompt_eval_tokens = be.eval_prompt(prompt)
        t1 = self.decode_started = time.perf_counter()
        deadline = None if budget_s is None else t1 + budget_s
        stats.prompt_ms = (t1 - t0) * 1000
        n_prompt = len(prompt)
        prompt_logits = be.tail_logits()
        out = _Text()
        toks: list[int] = []
        snaps: list[tuple[str, bytes]] = []  # decoded text before each token
        checkpoints: list[tuple[int, Constraint, Any, int]] = []  # (step, constraint, pending, token)
        rows: list[np.ndarray] = [prompt_logits]  # rows[k] predicts the token at step len(toks)+k
        draft: list[int] = []  # draft[k] was fed after rows[k]'s step: rows[k+1] assumes it
        row_inputs: list[int] = [prompt[-1]]  # the token each row was computed after
        batch: dict[str, Any] = {}  # the draft batch being verified: source, drafted, accepted

        def close_batch() -> None:
            if batch and draft_policy is not None:
                draft_policy.observe_accept(batch["source"], batch["drafted"], batch["accepted"])
            batch.clear()
        cut: int | None = None
        finishing: str | None = None
        forbidden: dict[int, set[int]] = {}  # step -> tokens that led to dead ends there

        def finish(reason: str) -> DecodeResult:
            close_batch()
            be.truncate(n_prompt + max(len(toks) - 1, 0))
            if threads is not None and hasattr(be, "set_threads"):
                be.set_threads(*default_threads)
            stats.stop_reason = stats.stop_reason or reason
            stats.generated_tokens = len(toks)
            stats.decode_ms = (time.perf_counter() - t1) * 1000
            stats.eval_calls = getattr(be, "eval_calls", 0) - calls0
            text = out.text if cut is None else out.text[:cut]
            return DecodeResult(text=text, tokens=list(toks), stats=stats, tokens_text=out.text)

        def settle(block: bool) -> int | None:
            """Verify provisional choices whose analysis is ready; the first failing step."""
            keep = []
            failed: int | None = None
            for cp in checkpoints:
                step, con, pend, tok = cp
                if failed is not None:
                    keep.append(cp)
                    continue
                if block and not pend.done():
                    tw = time.perf_counter()
                    pend.wait()
                    stats.pending_wait_ms += (time.perf_counter() - tw) * 1000
                if not pend.done():
                    keep.append(cp)
                    continue
                if con not in active:
                    continue  # disabled meanwhile: no opinion
                try:
                    r = con.check(snaps[step][0], tok, self.vocab.text(tok))
                except Exception as exc:
                    self._disable(con, active, stats, exc)
                    continue
                if hasattr(r, "done"):
                    keep.append((step, con, r, tok))  # a new analysis started: keep waiting
                elif not r:  # False, or a Rewind (a rejection too; the next check there rewinds)
                    failed = step
            checkpoints[:] = keep
            return failed

        def rollback(step: int) -> None:
            nonlocal rows, draft, cut, finishing, row_inputs
            stats.rollbacks += 1
            out.text, out.pending = snaps[step]
            del toks[step:]
            del snaps[step:]
            checkpoints[:] = [cp for cp in checkpoints if cp[0] < step]
            for k in [k for k in forbidden if k > step]:
                del forbidden[k]
            cut = None
            finishing = None
            draft = []
            close_batch()
            if step == 0:
                be.truncate(n_prompt)
                rows = [prompt_logits]
                row_inputs = [prompt[-1]]
            else:
                be.truncate(n_prompt + step - 1)
                rows = []
                row_inputs = []

        def verified_part() -> int | None:
            """The step of the first choice still waiting for an analysis, when the text before it
            is worth showing on its own (None: it is not)."""
            first = min(cp[0] for cp in checkpoints)
            text, partial = snaps[first]
            return first if not partial and len(text) > keep_chars and text[keep_chars:].strip() else None

        if max_tokens <= 0:
            return finish("max tokens")
        while True:
            if cancel and cancel.is_set():
                exc = Cancelled(cancel.reason or "cancelled")
                exc.generated_tokens = len(toks)  # type: ignore[attr-defined]
                raise exc
            if checkpoints:
                hurry = finishing is not None and deadline is not None and time.perf_counter() >= deadline
                failed = settle(block=finishing is not None and not (hurry and verified_part() is not None))
                if failed is not None:
                    rollback(failed)
                    continue
            if finishing is not None:
                first = verified_part() if checkpoints else None
                if first is not None:  # past the deadline: show what is verified, not what may be wrong
                    stats.unverified_dropped = len(toks) - first
                    out.text, out.pending = snaps[first]
                    del toks[first:]
                    del snaps[first:]
                    checkpoints.clear()
                    cut = None if cut is None else min(cut, len(out.text))
                return finish(finishing)
            if not rows:
                close_batch()
                draft = []
                source = ""
                if drafter is not None and max_draft > 0:
                    # batches stay small: their per-token numbers equal single-token evaluation
                    room = min(max_draft, _MAX_VERIFY - 1, max_tokens - len(toks), be.n_ctx - be.n_past - 2)
                    if room > 0:
                        try:
                            raw = [int(t) for t in drafter(list(prompt) + toks)]
                        except Exception:
                            log.warning("drafter failed; continuing without drafts", exc_info=True)
                            drafter, raw = None, []
                        source = getattr(drafter, "last_source", "") or "draft"
                        k = min(len(raw), room)
                        if draft_policy is not None and k:
                            k = draft_policy.length(source, k)
                        draft = raw[:k]
                apply_threads()
                te = time.perf_counter()
                be.eval([toks[-1], *draft], rows="all" if draft else "last")
                if draft_policy is not None:
                    draft_policy.observe_cost(len(draft) + 1, (time.perf_counter() - te) * 1000)
                stats.drafted_tokens += len(draft)
                rows = [be.logits(k) for k in range(len(draft) + 1)] if draft else [be.logits(-1)]
                row_inputs = [toks[-1], *draft]
                if draft:
                    batch.update(source=source, drafted=len(draft), accepted=0)
            row = rows.pop(0)
            row_input = row_inputs.pop(0) if row_inputs else None
            expected = draft.pop(0) if draft else None
            pend: list = []
            rewind: list[int] = []
            step = len(toks)
            tok = self.choose(row, out.text, active, stats, sampling, rng, pend, forbidden.get(step), rewind)
            if rewind and stats.rewinds < _MAX_REWINDS and 0 <= rewind[0] < len(out.text):
                # the model's choice shows an earlier token led into a dead end: undo it
                target = max(i for i in range(len(snaps)) if len(snaps[i][0]) <= rewind[0])
                bad = toks[target]
                stats.rewinds += 1
                stats.rollbacks -= 1  # counted as a rewind, not a verification rollback
                rollback(target)
                forbidden.setdefault(target, set()).add(bad)
                continue
            if rewind and 0 <= rewind[0] < len(out.text):
                # out of rewinds: end the suggestion before the dead end rather than write past it
                cut = rewind[0]
                finishing = "constraints: dead end"
                rows, draft = [], []
                continue
            if tok is None or self._is_stop(tok):
                finishing = "end token" if tok is not None else "constraints: nothing allowed"
                rows, draft = [], []
                continue
            if recycle is not None and row_input is not None:
                recycle.observe(row_input, tok)
            snaps.append((out.text, out.pending))
            toks.append(tok)
            out.push(self.vocab.pieces[tok])
            for con, p in pend:
                checkpoints.append((step, con, p, tok))
                stats.provisional += 1
            if expected is not None and tok == expected:
                stats.accepted_draft_tokens += 1
                if batch:
                    batch["accepted"] += 1
                    o = batch["source"]
                    stats.accepted_by_source[o] = stats.accepted_by_source.get(o, 0) + 1
            elif rows:
                rows, draft, row_inputs = [], [], []
                be.truncate(n_prompt + len(toks) - 1)
            if stop is not None and not out.pending:
                c = stop(out.text)
                if c is not None:
                    cut = c
                    finishing = "stop rule"
                    rows, draft = [], []
                    continue
            if len(toks) >= max_tokens:
                finishing = "max tokens"
                rows, draft = [], []

    def _is_stop(self, tok: int) -> bool:
        return tok in self.stop_ids or bool(self.vocab.is_control[tok])
