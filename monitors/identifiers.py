"""Sessions that constrain identifiers in some context to a set of legal names.

The shared state machine of the members, imports and names-in-scope monitors (and of the
LSP-backed members monitor for other languages). For a candidate token, the session looks at
every identifier the token starts or continues in ``V = document[:decode start] + generated +
token``; for each one in the monitor's context it asks for the legal names *at that identifier's
start* and requires the identifier to be one of them (a prefix of one while it may still grow).
The legal names come from static analysis of ``V[:start] + "\\n" + <document after the cursor's
line>``, memoized by that text, so the answer is a pure function of (context, generated text).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np

from .base import TIMEOUT, AnalysisRunner, MonitorContext, MonitorStats, NameSet, Pending, Rewind
from .textscan import identifiers_from, trailing_word_start

log = logging.getLogger(__name__)

__all__ = ["IdentifierSession"]

_WINDOW = 4000  # characters of the document before the decode start that the scanners see


class IdentifierSession:
    """Base class: subclasses define ``in_context`` and ``analyse``."""

    name = "identifiers"
    kind = "names"
    #: an identifier must follow the trigger (after ``obj.`` a name is required, not ``(``)
    requires_identifier = False
    #: judge the identifier that ends exactly at the cursor (the user typed it, the model ends it)
    judge_cursor_word = False

    def __init__(self, ctx: MonitorContext, runner: AnalysisRunner, timeout_s: float) -> None:
        self.ctx = ctx
        self.runner = runner
        self.timeout_s = timeout_s
        base = ctx.base
        self.base = base
        self.window = base[-_WINDOW:]
        self.shift = len(base) - len(self.window)
        self.after = ctx.after_cursor_line
        #: where the cursor is in window coordinates: text before it is the user's, not the model's
        self.cursor_at = len(self.window) + (ctx.cursor - ctx.offset)
        self.stats = MonitorStats()
        self._legal: dict[tuple[int, str], NameSet | None] = {}
        self._shared: dict[str, NameSet | None] = {}
        self._deadlines: dict[tuple, float] = {}
        self._counted: set[tuple[int, str]] = set()
        self._after_digest = hashlib.blake2b(self.after.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    @property
    def typed(self) -> str:
        """The window up to the cursor: token healing moves the decode start back over what the
        user typed last (``self`` in ``self┃``), but that text is already there."""
        return self.window + self.ctx.text[self.ctx.offset : self.ctx.cursor]

    # ---- subclass hooks --------------------------------------------------------------------
    def in_context(self, full: str, s: int) -> bool:
        """Is the identifier starting at ``full[s]`` one this monitor constrains?"""
        raise NotImplementedError

    def job(self, before: str) -> tuple:
        """The analysis job (see ``monitors.worker``) for legal names at the end of ``before``."""
        raise NotImplementedError

    def semantic_key(self, before: str) -> str | None:
        """A key for analyses that must agree whatever else the document says (None: none)."""
        return None

    def share_key(self, full: str, s: int) -> str | None:
        """Identifiers whose contexts share a key within a request share one analysis."""
        return None

    # ---- legal names -----------------------------------------------------------------------
    def _before(self, full: str, s: int) -> str:
        return self.base[: self.shift] + full[:s]

    def _after_for(self) -> str:
        return self.after

    def _rkey(self, before: str) -> tuple:
        digest = hashlib.blake2b(before.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        return (self.kind, self.ctx.path, digest, self._after_digest)

    def legal_at(self, full: str, s: int) -> NameSet | Pending | None:
        """The legal names for an identifier starting at ``full[s]``.

        None: no opinion (unknown, or the analysis missed its deadline); Pending: still running.
        """
        gen_start = len(self.window)
        key = (s, full[gen_start:s] if s > gen_start else "")
        if key in self._legal:
            return self._legal[key]
        shared = self.share_key(full, s)
        if shared is not None and shared in self._shared:
            self._legal[key] = self._shared[shared]
            return self._legal[key]
        before = self._before(full, s)
        result = self.runner.analyse(self._rkey(before), self.job(before), lambda: self.semantic_key(before),
                                     self._deadlines, self.timeout_s, self.stats)
        if isinstance(result, Pending):
            return result
        if key not in self._counted:
            self._counted.add(key)
            self.stats.triggers += 1
        if result is TIMEOUT:
            log.info("%s: analysis took longer than %.0f ms; no opinion here", self.name, self.timeout_s * 1000)
            legal = None
        else:
            legal = NameSet(result) if result else None
        self._legal[key] = legal
        if shared is not None:
            self._shared[shared] = legal
        return legal

    def prefetch(self) -> None:
        """Start the analysis for the cursor's own trigger now, in parallel with the prompt."""
        full = self.typed
        s = trailing_word_start(full)
        if self.in_context(full, s):
            before = self._before(full, s)
            rkey = self._rkey(before)
            if self.runner.prefetch(rkey, self.job(before), lambda: self.semantic_key(before)):
                self._deadlines.setdefault(rkey, time.monotonic() + self.timeout_s)

    # ---- the constraint contract -----------------------------------------------------------
    def check(self, generated: str, token: int, text: str | None) -> bool | Pending:
        t0 = time.perf_counter()
        try:
            # a token of raw UTF-8 bytes (``计`` is three of them) may continue the identifier
            # (Python names may be non-ASCII): judged once its character is complete
            opaque = text is None and not self.ctx.vocab.is_control[token]
            return self._check(generated, text, opaque)
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000
            self.stats.checks += 1

    def _check(self, generated: str, text: str | None, opaque: bool = False) -> bool | Pending:
        head = self.window + generated
        full = head + (text or "")
        start = len(head)
        pending: Pending | None = None
        if self.requires_identifier and not opaque and (text is None or not (text[:1] == "_" or text[:1].isalnum())):
            # the token ends the identifier in progress (or there is none yet after the trigger)
            s = trailing_word_start(head)
            if s == start and self.in_context(head, s):
                legal = self.legal_at(head, s)
                if isinstance(legal, Pending):
                    return legal
                if legal is not None:
                    self.stats.constrained.add(len(generated))
                    return False
        for s, e in identifiers_from(full, start):
            word = full[s:e]
            if word[0].isdigit():
                continue
            if (e < self.cursor_at or (e == self.cursor_at and not self.judge_cursor_word)) and e < len(full):
                continue  # typed by the user (healing regenerates it): not the model's to judge
            if not self.in_context(full, s):
                continue
            legal = self.legal_at(full, s)
            if legal is None:
                continue
            if isinstance(legal, Pending):
                pending = legal
                continue
            if not self.user_prefix_known(full, s, legal):
                continue
            self.stats.constrained.add(len(generated))
            complete = e < len(full) or (text is None and not opaque)
            verdict = self.judge(full, s, e, word, complete, legal)
            if not verdict:
                return verdict  # False, or a Rewind
        return True if pending is None else pending

    def user_prefix_known(self, full: str, s: int, legal: NameSet) -> bool:
        """When the user typed the start of the identifier at ``full[s]`` (``self.ca┃``), does
        a legal name start so? When none does, the user is writing a name the analysis does not
        know (a new attribute, a name defined later): no opinion, rather than no suggestion."""
        if s >= self.cursor_at:
            return True
        typed = self.typed[s : self.cursor_at]
        return not typed or self.admits_prefix(full, s, typed, legal)

    def admits_prefix(self, full: str, s: int, prefix: str, legal: NameSet) -> bool:
        return legal.admits(prefix, False)

    def judge(self, full: str, s: int, e: int, word: str, complete: bool, legal: NameSet) -> bool | Rewind:
        """Is identifier ``full[s:e]`` acceptable? (Subclasses refine, e.g. for bindings.)"""
        return legal.admits(word, complete)

    def rewind_from(self, legal: NameSet, word: str, s: int) -> Rewind | bool:
        """Undo the wrong name ``word`` at ``full[s]`` from where it left the legal names (a
        Rewind in generated-text coordinates); False when that is before the generated text."""
        k = len(word)
        while k > 0 and not legal.admits(word[:k], False):
            k -= 1
        to = s + k - len(self.window)
        return Rewind(to) if to >= 0 else False

    def allowed(self, generated: str) -> np.ndarray | None:
        t0 = time.perf_counter()
        try:
            full = self.window + generated
            s = trailing_word_start(full)
            if not self.in_context(full, s):
                return None
            legal = self.legal_at(full, s)
            if legal is None or isinstance(legal, Pending) or not self.user_prefix_known(full, s, legal):
                return None
            ids = legal.tokens(full[s:], self.ctx.vocab)
            healed = self.ctx.text[self.ctx.offset : self.ctx.cursor]  # the user's text the model regenerates
            at = s - len(self.window)
            if not self.requires_identifier and s == len(full) and 0 <= at < len(healed) and healed[at] in " \t":
                # the user's text has a space before the name (``y =`` + `` 计``, backed off by
                # token healing): tokens with that space too, or nothing was allowed
                ids = np.union1d(ids, legal.spaced_tokens(self.ctx.vocab)).astype(np.int32)
            return ids
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000

    def describe(self) -> dict[str, Any]:
        return self.stats.as_dict()
