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

A backend that cannot afford whole rows (a model server answers with the top-k of each step) gives
``PartialLogits``: the known scores, -inf elsewhere, and a ``floor`` no unknown score exceeds. A
choice is kept only when its score is above the floor (then the full row would have led ``choose``
to the same token: every candidate examined before it had a higher, hence known, score);
otherwise the row is widened (``PartialLogits.widen``) and the choice made again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from monitors.verdicts import Pending, verdict_kind
from monitors.vocabulary import Vocabulary

from .constraints import Constraint, Ending, Penalty

log = logging.getLogger(__name__)

__all__ = [
    "CancelToken", "Cancelled", "DecodeResult", "DecodeStats", "Decoder", "Drafter", "GenerateOptions", "PartialLogits",
    "Sampling",
]

_TRY_CANDIDATES = 12  # next-best tokens checked before asking constraints for allowed sets
_SCAN_CANDIDATES = 256  # candidates scanned with check() when no constraint enumerates its set
_MAX_REWINDS = 4  # dead ends undone per request at most
_MAX_VERIFY = 7  # tokens per verification batch (see backend.SMALL_BATCH)
_MAX_END_REFUSALS = 8  # ends refused per request at most (then the end stands)


class PartialLogits(np.ndarray):
    """A logits row of which only some scores are known (the rest are -inf): no unknown score is
    above ``floor``. ``widen()`` returns a row that knows more (eventually all: floor -inf).
    Copies (``row.copy()``, a penalty's shifted row) keep both."""

    floor: float
    widen: Callable[[], np.ndarray] | None

    def __new__(cls, values: np.ndarray, floor: float, widen: Callable[[], np.ndarray] | None = None) -> PartialLogits:
        obj = np.asarray(values).view(cls)
        obj.floor = float(floor)
        obj.widen = widen
        return obj

    def __array_finalize__(self, obj) -> None:
        self.floor = getattr(obj, "floor", float("-inf"))
        self.widen = getattr(obj, "widen", None)


class _Undecided(Exception):
    """``choose`` would pick a token whose score a partial row does not know well enough."""


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
        #: how often ``is_set`` was asked: the decode loop asks once per step, so a front end
        #: can tell how far the work holding the token got (``steercode/status``'s ``running``)
        self.polls = 0
        #: also stop inside a model evaluation, not only between them (for background work:
        #: the keystroke that cancels it should not wait for its evaluation to end)
        self.abort_evals = False

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        self.polls += 1
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
    yielded: list[str] = field(default_factory=list)  # constraints turned off at a dead end (``yields``)
    stop_reason: str = ""
    provisional: int = 0  # tokens accepted while an analysis was still running
    rollbacks: int = 0  # provisional choices that the analysis then rejected
    rewinds: int = 0  # dead ends undone (a constraint showed an earlier token was wrong)
    pending_wait_ms: float = 0.0  # time spent waiting for analyses at the end
    unverified_dropped: int = 0  # tokens left out at the deadline because their analysis had not landed
    end_refusals: int = 0  # ends (an end token, a stop rule's cut) that a constraint's may_end refused
    penalized: int = 0  # steps whose scores a penalty shifted
    widened: int = 0  # partial rows (a remote backend's top-k) widened because the choice fell below them

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
            "yielded": list(self.yielded),
            "stop_reason": self.stop_reason,
            "provisional": self.provisional,
            "rollbacks": self.rollbacks,
            "rewinds": self.rewinds,
            "pending_wait_ms": round(self.pending_wait_ms, 2),
            "unverified_dropped": self.unverified_dropped,
            "end_refusals": self.end_refusals,
            "penalized": self.penalized,
            "widened": self.widened,
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

        A check answers a verdict (``monitors.verdicts``): accept, reject, pending (its analysis
        is still running), or rewind (a rejection saying the text went wrong at ``to``).
        """
        text = self.vocab.text(tok)
        pend: list[tuple[Constraint, Any]] = []
        for c in list(constraints):
            try:
                r = c.check(generated, tok, text)
                while not self.speculate and isinstance(r, Pending):
                    tw = time.perf_counter()
                    r.wait()  # no spare core: waiting beats running the model beside the analysis
                    stats.pending_wait_ms += (time.perf_counter() - tw) * 1000
                    r = c.check(generated, tok, text)
            except Exception as exc:
                self._disable(c, constraints, stats, exc)
                continue
            kind = verdict_kind(r)
            if kind == "accept":
                continue
            if kind == "pending":
                pend.append((c, r))  # the constraint's analysis is still running
                continue
            return c, [], (r.to if kind == "rewind" else None)
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
        floor: float = float("-inf"),
    ) -> int | None:
        """The token the constrained decoder emits after ``generated`` (None: nothing allowed).

        Constraints that cannot decide yet (analysis still running) accept provisionally; they
        are appended to ``pending_out`` so the caller can verify the choice later.

        ``floor``: scores not known are at most this (a ``PartialLogits`` row); a choice at or
        below it, or "nothing allowed" among the known, raises ``_Undecided``.
        """
        tok = self._preferred(logits, sampling, rng)
        if not constraints and not forbidden:
            return self._decided(logits, tok, floor)
        t0 = time.perf_counter()
        forbidden = forbidden or set()
        try:
            if tok not in forbidden:
                first, pend, rw = self._judge(generated, tok, constraints, stats)
                if first is None:
                    if pending_out is not None:
                        pending_out.extend(pend)
                    return self._decided(logits, tok, floor)
                stats.interventions[first.name] = stats.interventions.get(first.name, 0) + 1
                if rw is not None and rewind_out is not None:
                    rewind_out.append((rw, first))

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
                    return self._decided(logits, c, floor)
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
                    return self._decided(logits, tok, floor)
                # nobody can enumerate what is allowed: scan the best candidates with check()
                k = min(_SCAN_CANDIDATES, len(logits))
                pool = np.argpartition(logits, -k)[-k:]
                allowed = pool[np.argsort(-logits[pool])]
            else:
                if not len(allowed):
                    return None  # nothing allowed at all, whatever the scores
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
                    return self._decided(logits, c, floor)
            if floor > float("-inf"):
                raise _Undecided  # nothing allowed among the known: the unknown may hold one
            return None
        finally:
            stats.constraint_ms += (time.perf_counter() - t0) * 1000

    @staticmethod
    def _decided(logits: np.ndarray, tok: int, floor: float) -> int:
        if floor > float("-inf") and not logits[tok] > floor:
            raise _Undecided
        return tok

    # ---- the loop --------------------------------------------------------------------------
    def generate(self, prompt: Sequence[int], **options: Any) -> DecodeResult:
        """Generate after ``prompt``; ``options`` are ``GenerateOptions``' fields (``max_tokens``
        is required). See ``GenerateOptions`` for what each does.

        Raises Cancelled (between evaluations) when ``cancel`` is set; the KV cache stays
        consistent. A constraint whose analysis is still running accepts provisionally; the
        choice is verified when the analysis lands, and on a violation generation rolls back to
        that token and continues from there -- the output equals waiting, the latency does not.
        """
        opts = GenerateOptions(**options)
        cancel = opts.cancel
        # a remote backend stops waiting for its server at once, for any request (``cheap_abort``)
        abort = cancel is not None and (cancel.abort_evals or getattr(self.backend, "cheap_abort", False))
        try:
            if abort and hasattr(self.backend, "abortable"):
                try:
                    with self.backend.abortable(cancel.is_set):  # type: ignore[union-attr]
                        return _Generation(self, prompt, opts).run()
                except Exception as exc:
                    if getattr(exc, "aborted", False):
                        raise Cancelled(cancel.reason or "cancelled") from exc  # type: ignore[union-attr]
                    raise
            return _Generation(self, prompt, opts).run()
        finally:
            release = getattr(self.backend, "release", None)
            if release is not None:
                release()  # a remote backend closes its stream: the server stops generating

    def _is_stop(self, tok: int) -> bool:
        return tok in self.stop_ids or bool(self.vocab.is_control[tok])


@dataclass(frozen=True)
class GenerateOptions:
    """How one ``Decoder.generate`` runs."""

    max_tokens: int
    constraints: Sequence[Constraint] = ()
    #: ``stop(text)``: where to cut the text generated so far when generation should end (None:
    #: go on). Before it ends there, constraints with ``may_end`` are asked about the cut text
    stop: Callable[[str], int | None] | None = None
    #: ``pause(text)``: like ``stop``, but the cut text is not the end of the suggestion (its
    #: first line, returned early; the rest is generated later), so ``may_end`` is not asked
    pause: Callable[[str], int | None] | None = None
    cancel: CancelToken | None = None
    sampling: Sampling = Sampling()
    drafter: Drafter | None = None
    max_draft: int = 6
    #: asked before each evaluation how many threads to use (None: the default); the engine uses
    #: it to leave a core to a running analysis
    threads: Callable[[], int | None] | None = None
    draft_policy: Any = None
    recycle: Any = None
    #: the KV cache already holds ``prompt[:-1]`` from an earlier generate (a continuation):
    #: carry on from there exactly as that generation would have, instead of re-evaluating
    resume: bool = False
    #: once generation has run this long after the prompt (``Decoder.decode_started``), a
    #: generation that ends does not wait for analyses still running; it returns only the tokens
    #: verified so far (when they hold more than ``keep_chars`` characters of non-blank text;
    #: otherwise it waits)
    budget_s: float | None = None
    keep_chars: int = 0


class _Generation:
    """One run of the decode loop: the state that its steps share.

    ``toks``/``snaps`` are the accepted tokens and the decoded text before each; ``rows`` are
    logits rows not yet used (``rows[k]`` predicts the token at step ``len(toks)+k``), ``draft``
    the drafted tokens fed after them; ``checkpoints`` the provisional choices still waiting for
    an analysis; ``forbidden`` the tokens that led into dead ends, per step.
    """

    def __init__(self, dec: Decoder, prompt: Sequence[int], opts: GenerateOptions) -> None:
        self.dec = dec
        self.be = dec.backend
        self.prompt = prompt
        self.opts = opts
        self.stats = DecodeStats(prompt_tokens=len(prompt))
        self.active: list[Constraint] = list(opts.constraints)
        s = opts.sampling
        self.rng = np.random.default_rng(s.seed) if s.temperature > 0 else None
        self.calls0 = getattr(self.be, "eval_calls", 0)
        self.default_threads = (getattr(self.be, "n_threads", 1), getattr(self.be, "n_threads_batch", 1))
        self.drafter = opts.drafter
        self.max_tokens = opts.max_tokens
        self.n_prompt = len(prompt)
        self.out = _Text()
        self.toks: list[int] = []
        self.snaps: list[tuple[str, bytes]] = []  # decoded text before each token
        self.checkpoints: list[tuple[int, Constraint, Any, int]] = []  # (step, constraint, pending, token)
        self.prompt_logits: np.ndarray | None = None
        self.rows: list[np.ndarray] = []
        self.draft: list[int] = []  # draft[k] was fed after rows[k]'s step: rows[k+1] assumes it
        self.row_inputs: list[int] = []  # the token each row was computed after
        self.batch: dict[str, Any] = {}  # the draft batch being verified: source, drafted, accepted
        self.cut: int | None = None
        self.finishing: str | None = None
        self.forbidden: dict[int, set[int]] = {}  # step -> tokens that led to dead ends there
        self.t1 = 0.0
        self.deadline: float | None = None

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> DecodeResult:
        cancel = self.opts.cancel
        if cancel:
            cancel.check()
        self._evaluate_prompt()
        if self.max_tokens <= 0:
            return self._finish("max tokens")
        while True:
            if cancel and cancel.is_set():
                exc = Cancelled(cancel.reason or "cancelled")
                exc.generated_tokens = len(self.toks)  # type: ignore[attr-defined]
                raise exc
            if self.checkpoints:
                hurry = (self.finishing is not None and self.deadline is not None
                         and time.perf_counter() >= self.deadline)
                failed = self._settle(block=self.finishing is not None and not (hurry and self._verified_part() is not None))
                if failed is not None:
                    self._rollback(failed)
                    continue
            if self.finishing is not None:
                first = self._verified_part() if self.checkpoints else None
                if first is not None:  # past the deadline: show what is verified, not what may be wrong
                    self.stats.unverified_dropped = len(self.toks) - first
                    self._truncate_to(first)
                    self.checkpoints.clear()
                    self.cut = None if self.cut is None else min(self.cut, len(self.out.text))
                return self._finish(self.finishing)
            if not self.rows:
                self._evaluate_next()
            self._step()

    def _evaluate_prompt(self) -> None:
        be, prompt, stats = self.be, self.prompt, self.stats
        t0 = time.perf_counter()
        if len(prompt) + 1 > be.n_ctx:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the context ({be.n_ctx})")
        self.max_tokens = max(0, min(self.max_tokens, be.n_ctx - len(prompt) - 1))
        self._apply_threads()
        if self.opts.resume and be.n_past >= len(prompt) - 1 and be.tokens[: len(prompt) - 1] == list(prompt[:-1]):
            be.truncate(len(prompt) - 1)
            be.eval([prompt[-1]], rows="last")
            stats.reused_tokens, stats.prompt_eval_tokens = len(prompt) - 1, 1
        else:
            stats.reused_tokens, stats.prompt_eval_tokens = be.eval_prompt(prompt)
        self.t1 = self.dec.decode_started = time.perf_counter()
        self.deadline = None if self.opts.budget_s is None else self.t1 + self.opts.budget_s
        stats.prompt_ms = (self.t1 - t0) * 1000
        self.prompt_logits = be.tail_logits()
        self.rows = [self.prompt_logits]
        self.row_inputs = [prompt[-1]]

    def _apply_threads(self) -> None:
        threads = self.opts.threads
        if threads is None or not hasattr(self.be, "set_threads"):
            return
        n = threads()
        self.be.set_threads(*(self.default_threads if n is None else (n, n)))

    def _evaluate_next(self) -> None:
        """Evaluate the pending token (the last accepted one) and a draft after it."""
        be, stats, opts = self.be, self.stats, self.opts
        self._close_batch()
        self.draft = []
        source = ""
        if self.drafter is not None and opts.max_draft > 0:
            # batches stay small: their per-token numbers equal single-token evaluation
            room = min(opts.max_draft, _MAX_VERIFY - 1, self.max_tokens - len(self.toks), be.n_ctx - be.n_past - 2)
            if room > 0:
                try:
                    raw = [int(t) for t in self.drafter(list(self.prompt) + self.toks)]
                except Exception:
                    log.warning("drafter failed; continuing without drafts", exc_info=True)
                    self.drafter, raw = None, []
                source = getattr(self.drafter, "last_source", "") or "draft"
                k = min(len(raw), room)
                if opts.draft_policy is not None and k:
                    k = opts.draft_policy.length(source, k)
                self.draft = raw[:k]
        self._apply_threads()
        draft = self.draft
        te = time.perf_counter()
        be.eval([self.toks[-1], *draft], rows="all" if draft else "last")
        if opts.draft_policy is not None:
            opts.draft_policy.observe_cost(len(draft) + 1, (time.perf_counter() - te) * 1000)
        stats.drafted_tokens += len(draft)
        self.rows = [be.logits(k) for k in range(len(draft) + 1)] if draft else [be.logits(-1)]
        self.row_inputs = [self.toks[-1], *draft]
        if draft:
            self.batch.update(source=source, drafted=len(draft), accepted=0)

    def _step(self) -> None:
        """Choose the token at the next row, and accept it, rewind, or finish."""
        stats, out = self.stats, self.out
        row = self.rows.pop(0)
        row_input = self.row_inputs.pop(0) if self.row_inputs else None
        expected = self.draft.pop(0) if self.draft else None
        pend: list = []
        rewind: list[tuple[int, Constraint]] = []
        step = len(self.toks)
        scored, shifts = self._penalized(row, out.text)
        while True:
            counted = dict(stats.interventions)
            try:
                tok = self.dec.choose(scored, out.text, self.active, stats, self.opts.sampling, self.rng, pend,
                                      self.forbidden.get(step), rewind, floor=self._floor(row, shifts))
                break
            except _Undecided:  # a partial row does not know enough: ask for a wider one
                stats.interventions = counted
                pend.clear()
                rewind.clear()
                row = row.widen()  # type: ignore[attr-defined]
                stats.widened += 1
                scored, shifts = self._penalized(row, out.text)
        if shifts and tok is not None and not rewind:
            for name, sh in shifts:
                if tok in sh.ids:
                    if sh.end:  # chosen despite the shift: the suggestion ends before it
                        stats.interventions[name] = stats.interventions.get(name, 0) + 1
                        self._end(len(out.text), f"{name}: ends before a repeat")
                        return
                elif int(np.argmax(row)) in sh.ids:
                    stats.interventions[name] = stats.interventions.get(name, 0) + 1
        if rewind and 0 <= rewind[0][0] < len(out.text):
            to, by = rewind[0]
            if stats.rewinds < _MAX_REWINDS:
                # the model's choice shows an earlier token led into a dead end: undo it
                target = max(i for i in range(len(self.snaps)) if len(self.snaps[i][0]) <= to)
                bad = self.toks[target]
                stats.rewinds += 1
                stats.rollbacks -= 1  # counted as a rewind, not a verification rollback
                self._rollback(target)
                self.forbidden.setdefault(target, set()).add(bad)
            elif getattr(by, "yields", False) and by in self.active:
                # out of rewinds, and the constraint would rather have no opinion than an empty
                # or cut suggestion (the syntax constraint: a line the model insists on beats
                # none): it is off for the rest of the request, and this row is chosen again
                log.info("%s: out of rewinds; no opinion for the rest of this request", by.name)
                stats.yielded.append(by.name)
                self.active.remove(by)
                self.rows.insert(0, row)
                if row_input is not None:
                    self.row_inputs.insert(0, row_input)
                if expected is not None:
                    self.draft.insert(0, expected)
            else:
                # out of rewinds: end the suggestion before the dead end rather than write past it
                self._end(to, "constraints: dead end")
            return
        if tok is not None and self.dec._is_stop(tok) and not self._may_end(out.text):
            # a constraint says the suggestion may not end here: the model's next choice
            self.forbidden.setdefault(step, set()).add(tok)
            self.rows.insert(0, row)
            if row_input is not None:
                self.row_inputs.insert(0, row_input)
            if expected is not None:
                self.draft.insert(0, expected)
            return
        if tok is None or self.dec._is_stop(tok):
            self._end(None, "end token" if tok is not None else "constraints: nothing allowed")
            return
        if self.opts.recycle is not None and row_input is not None:
            self.opts.recycle.observe(row_input, tok)
        self.snaps.append((out.text, out.pending))
        self.toks.append(tok)
        out.push(self.dec.vocab.pieces[tok])
        for con, p in pend:
            self.checkpoints.append((step, con, p, tok))
            stats.provisional += 1
        if expected is not None and tok == expected:
            stats.accepted_draft_tokens += 1
            if self.batch:
                self.batch["accepted"] += 1
                o = self.batch["source"]
                stats.accepted_by_source[o] = stats.accepted_by_source.get(o, 0) + 1
        elif self.rows:
            self.rows, self.draft, self.row_inputs = [], [], []
            self.be.truncate(self.n_prompt + len(self.toks) - 1)
        stop, pause = self.opts.stop, self.opts.pause
        if stop is not None and not out.pending:
            c = stop(out.text)
            if c is not None:
                if not self._may_end(out.text[:c]):
                    # the stop rule would end the suggestion where a constraint says it may not
                    # end: this token is taken back and the model makes its next choice
                    self._rollback(step)
                    self.stats.rollbacks -= 1
                    self.forbidden.setdefault(step, set()).add(tok)
                    return
                self._end(c, "stop rule")
                return
        if pause is not None and not out.pending:
            c = pause(out.text)
            if c is not None:
                self._end(c, "stop rule")
                return
        if len(self.toks) >= self.max_tokens:
            self._end(None, "max tokens")

    @staticmethod
    def _floor(row: np.ndarray, shifts: list[tuple[str, Any]]) -> float:
        """The most any score a partial row does not know can be (after the penalties' shifts)."""
        floor = getattr(row, "floor", float("-inf"))
        if floor == float("-inf") or getattr(row, "widen", None) is None:
            return float("-inf")
        up = [sh.amount for _, sh in shifts if sh.amount > 0]
        return floor + sum(up)

    def _penalized(self, row: np.ndarray, text: str) -> tuple[np.ndarray, list[tuple[str, Any]]]:
        """``row`` with the penalties of the constraints that have one added (a copy; the row
        itself stays as the model gave it), and the (constraint name, shift) pairs applied."""
        out = row
        applied: list[tuple[str, Any]] = []
        for c in list(self.active):
            if not isinstance(c, Penalty):
                continue
            try:
                shifts = c.penalty(text)
            except Exception as exc:
                self.dec._disable(c, self.active, self.stats, exc)
                continue
            for sh in shifts or ():
                if len(sh.ids):
                    if out is row:
                        out = row.copy()
                    out[sh.ids] += sh.amount
                    applied.append((c.name, sh))
        if applied:
            self.stats.penalized += 1
        return out, applied

    def _may_end(self, text: str) -> bool:
        """May the suggestion end as ``text``? Asks the constraints that say (``may_end``); a
        refusal counts, and once they are used up every end stands."""
        if self.stats.end_refusals >= _MAX_END_REFUSALS:
            return True
        for c in list(self.active):
            if not isinstance(c, Ending):
                continue
            try:
                ok = c.may_end(text)
            except Exception as exc:
                self.dec._disable(c, self.active, self.stats, exc)
                continue
            if not ok:
                self.stats.end_refusals += 1
                self.stats.interventions[c.name] = self.stats.interventions.get(c.name, 0) + 1
                return False
        return True

    def _end(self, cut: int | None, reason: str) -> None:
        """Generation ends (once pending verifications settle): the text is cut at ``cut``."""
        if cut is not None:
            self.cut = cut
        self.finishing = reason
        self.rows, self.draft = [], []

    def _finish(self, reason: str) -> DecodeResult:
        be, stats = self.be, self.stats
        self._close_batch()
        be.truncate(self.n_prompt + max(len(self.toks) - 1, 0))
        if self.opts.threads is not None and hasattr(be, "set_threads"):
            be.set_threads(*self.default_threads)
        stats.stop_reason = stats.stop_reason or reason
        stats.generated_tokens = len(self.toks)
        stats.decode_ms = (time.perf_counter() - self.t1) * 1000
        stats.eval_calls = getattr(be, "eval_calls", 0) - self.calls0
        text = self.out.text if self.cut is None else self.out.text[: self.cut]
        return DecodeResult(text=text, tokens=list(self.toks), stats=stats, tokens_text=self.out.text)

    # ---- drafts, verification, rollback -----------------------------------------------------
    def _close_batch(self) -> None:
        batch, policy = self.batch, self.opts.draft_policy
        if batch and policy is not None:
            policy.observe_accept(batch["source"], batch["drafted"], batch["accepted"])
        batch.clear()

    def _settle(self, block: bool) -> int | None:
        """Verify provisional choices whose analysis is ready; the first failing step."""
        stats, vocab = self.stats, self.dec.vocab
        keep = []
        failed: int | None = None
        for cp in self.checkpoints:
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
            if con not in self.active:
                continue  # disabled meanwhile: no opinion
            try:
                r = con.check(self.snaps[step][0], tok, vocab.text(tok))
            except Exception as exc:
                self.dec._disable(con, self.active, stats, exc)
                continue
            kind = verdict_kind(r)
            if kind == "pending":
                keep.append((step, con, r, tok))  # a new analysis started: keep waiting
            elif kind != "accept":  # a rejection, or a Rewind (a rejection too; the next check there rewinds)
                failed = step
        self.checkpoints[:] = keep
        return failed

    def _truncate_to(self, step: int) -> None:
        """Forget the tokens from ``step`` on (their text too)."""
        self.out.text, self.out.pending = self.snaps[step]
        del self.toks[step:]
        del self.snaps[step:]

    def _rollback(self, step: int) -> None:
        self.stats.rollbacks += 1
        self._truncate_to(step)
        self.checkpoints[:] = [cp for cp in self.checkpoints if cp[0] < step]
        for k in [k for k in self.forbidden if k > step]:
            del self.forbidden[k]
        self.cut = None
        self.finishing = None
        self.draft = []
        self._close_batch()
        if step == 0:
            self.be.truncate(self.n_prompt)
            self.rows = [self.prompt_logits]
            self.row_inputs = [self.prompt[-1]]
        else:
            self.be.truncate(self.n_prompt + step - 1)
            self.rows = []
            self.row_inputs = []

    def _verified_part(self) -> int | None:
        """The step of the first choice still waiting for an analysis, when the text before it
        is worth showing on its own (None: it is not)."""
        first = min(cp[0] for cp in self.checkpoints)
        text, partial = self.snaps[first]
        keep = self.opts.keep_chars
        return first if not partial and len(text) > keep and text[keep:].strip() else None
