"""The calls monitor: arguments that fit the callee's signature (jedi), as they are generated.

Inside ``f(…)``: no more positional arguments than the signature takes (unless ``*args``),
keyword names only from its parameters (unless ``**kwargs``), no argument given twice, no
positional argument after a keyword one, no comma when no argument can follow it (on one line),
and ``)`` not before the required arguments are given.
Overloads: a call is fine when any signature accepts it. Unpacking (``*xs``, ``**kw``) makes the
count unknowable: no opinion for that call.

The state (which calls are open, their argument text) is recomputed lexically from the text;
scans are memoized by the generated text, which keeps answers pure.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass

import numpy as np

from ..base import TIMEOUT, AnalysisRunner, MonitorContext, MonitorStats, Pending
from ..syntax import cursor_in_code, string_start
from ..textscan import (
    code_state,
    code_tokens,
    dotted_start,
    is_word,
    likely_next,
    line_start,
    prev_significant,
    string_open,
    string_step,
    word_before,
)
from .jedi_analysis import (
    KEYWORD_ONLY,
    POSITIONAL_ONLY,
    POSITIONAL_OR_KEYWORD,
    PY_KEYWORDS,
    VAR_KEYWORD,
    VAR_POSITIONAL,
    Signature,
)
from .semantic_keys import signature_key

log = logging.getLogger(__name__)

__all__ = ["CallsMonitor", "Arg", "parse_args", "call_ok"]

_WINDOW_LINES = 40
_NOT_CALLS = frozenset(
    {"if", "elif", "while", "for", "in", "and", "or", "not", "return", "yield", "assert", "del", "with", "as",
     "except", "raise", "from", "import", "lambda", "else", "is", "await", "case", "match"}
)
_KEYWORD_ARG = re.compile(r"\s*([^\W\d]\w*)\s*=(?!=)")
_IDENT = re.compile(r"\s*[^\W\d]\w*\Z")


@dataclass(frozen=True)
class Arg:
    kind: str  # "empty" | "positional" | "keyword" | "star" | "starstar"
    name: str = ""  # keyword name
    ident: bool = False  # the whole argument so far is one identifier (may become keyword=)
    text: str = ""


def _classify(text: str) -> Arg:
    t = text.strip()
    if not t:
        return Arg("empty", text=text)
    if t.startswith("**"):
        return Arg("starstar", text=text)
    if t.startswith("*"):
        return Arg("star", text=text)
    m = _KEYWORD_ARG.match(text)
    if m:
        return Arg("keyword", name=m.group(1), text=text)
    return Arg("positional", ident=bool(_IDENT.match(text)), text=text)


def parse_args(args_text: str) -> list[Arg]:
    """Split the text inside a call's parentheses at top-level commas."""
    out: list[str] = []
    depth = 0
    cur_start = 0
    for i, tok in code_tokens(args_text, 0, len(args_text)):
        if tok in ("(", "[", "{"):
            depth += 1
        elif tok in (")", "]", "}"):
            depth -= 1
        elif tok == "," and depth == 0:
            out.append(args_text[cur_start:i])
            cur_start = i + 1
    out.append(args_text[cur_start:])
    return [_classify(a) for a in out]


def call_ok(args: list[Arg], closed: bool, sig: Signature) -> bool:
    """Can ``args`` (the whole call if ``closed``, else a prefix of it) fit ``sig``?"""
    if any(a.kind in ("star", "starstar") for a in args):
        return True
    params = sig.params
    pos_params = [p for p in params if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    var_pos = any(p.kind == VAR_POSITIONAL for p in params)
    var_kw = any(p.kind == VAR_KEYWORD for p in params)
    kw_able = {p.name for p in params if p.kind in (POSITIONAL_OR_KEYWORD, KEYWORD_ONLY)}
    done = list(args)
    last: Arg | None = None
    if closed:
        if len(done) > 1 and done[-1].kind == "empty":
            done.pop()  # trailing comma
        if len(done) == 1 and done[0].kind == "empty":
            done = []
    else:
        last = done.pop()
    n_pos = 0
    keywords: list[str] = []
    for a in done:
        if a.kind == "empty":
            return False
        if a.kind == "keyword":
            if a.name in keywords:
                return False
            keywords.append(a.name)
        else:
            if keywords:
                return False  # positional argument after a keyword argument
            n_pos += 1
    if n_pos > len(pos_params) and not var_pos:
        return False
    bound = {pos_params[i].name for i in range(min(n_pos, len(pos_params)))}
    for k in keywords:
        if k in bound or (k not in kw_able and not var_kw):
            return False
    if last is not None:
        free_kw = [n for n in kw_able if n not in bound and n not in keywords]
        if last.kind == "empty" and done and not any("\n" in a.text for a in args):
            # right after a comma: it must lead to another argument (a trailing comma in a
            # one-line call is no suggestion worth making; on separate lines it is the style)
            room_pos = not keywords and (n_pos < len(pos_params) or var_pos)
            if not (room_pos or var_kw or free_kw):
                return False
        if last.kind == "keyword":
            if last.name in keywords or last.name in bound or (last.name not in kw_able and not var_kw):
                return False
        elif last.kind == "positional":
            as_pos = not keywords and (n_pos < len(pos_params) or var_pos)
            as_kw = last.ident and (var_kw or any(n.startswith(last.text.strip()) for n in free_kw))
            if not (as_pos or as_kw):
                return False
        return True
    # closed: every required parameter is bound
    for i, p in enumerate(pos_params):
        if not p.has_default and i >= n_pos and not (p.kind == POSITIONAL_OR_KEYWORD and p.name in keywords):
            return False
    for p in params:
        if p.kind == KEYWORD_ONLY and not p.has_default and p.name not in keywords:
            return False
    return True


@dataclass
class _Frame:
    opener: str
    pos: int  # index of the opener in the scanned text
    call: bool


def _scan(text: str, start: int, end: int, frames: list[_Frame], quote: str | None, closed_calls: list[tuple[int, int]] | None):
    """Advance the bracket scan over text[start:end]; record calls closed in that span."""
    i = start
    while i < end:
        ch = text[i]
        if quote:
            i, quote = string_step(text, i, quote)
            continue
        if ch in "\"'":
            quote = string_open(text, i)
            i += len(quote)
            continue
        if ch == "#":
            nl = text.find("\n", i, end)
            i = end if nl < 0 else nl
            continue
        if ch in "([{":
            frames.append(_Frame(ch, i, ch == "(" and _is_call(text, i)))
        elif ch in ")]}":
            if frames:
                f = frames.pop()
                if f.call and ch == ")" and closed_calls is not None:
                    closed_calls.append((f.pos, i))
        i += 1
    return frames, quote


def _is_call(text: str, i: int) -> bool:
    ch, j = prev_significant(text, i)
    if ch in ")]":
        return True
    if not is_word(ch):
        return False
    w, ws = word_before(text, i)
    if w in _NOT_CALLS or w[0].isdigit():
        return False
    w2, _ = word_before(text, ws)
    return w2 not in ("def", "class")  # a definition's parameter list is not a call


class CallsSession:
    name = "calls"
    kind = "py-signatures"

    def __init__(self, ctx: MonitorContext, runner: AnalysisRunner, timeout_s: float) -> None:
        self.ctx = ctx
        self.runner = runner
        self.timeout_s = timeout_s
        base = ctx.base
        # scan from a line start some lines back: brackets opened earlier are out of view
        ws = len(base)
        for _ in range(_WINDOW_LINES):
            ws = base.rfind("\n", 0, max(ws - 1, 0))
            if ws < 0:
                ws = 0
                break
        ws = 0 if ws <= 0 else ws + 1
        # the scan must start outside strings: a window that starts inside a docstring would read
        # the code after it as a string (and have no opinion there)
        for _ in range(3):
            st = string_start(ctx.text, ws, "python") if ws > 0 else None
            if st is None:
                break
            ws = line_start(base, st)
        self.shift = ws
        self.window = base[ws:]
        self.after = ctx.after_cursor_line
        self.stats = MonitorStats()
        self._states: dict[str, tuple[list[_Frame], str | None]] = {}
        self._sigs: dict[tuple[int, str], tuple[Signature, ...] | None] = {}
        self._deadlines: dict[tuple, float] = {}
        frames, quote = _scan(self.window, 0, len(self.window), [], None, None)
        self._states[""] = (frames, quote)
        self._last_key = ""

    def _state(self, generated: str) -> tuple[list[_Frame], str | None]:
        st = self._states.get(generated)
        if st is not None:
            return st
        prev = self._last_key if generated.startswith(self._last_key) else ""
        frames, quote = self._states[prev]
        head = self.window + generated
        frames, quote = _scan(head, len(self.window) + len(prev), len(head), [*frames], quote, None)
        if len(self._states) > 4096:
            self._states = {"": self._states[""]}
        self._states[generated] = (frames, quote)
        self._last_key = generated
        return frames, quote

    def _rkey(self, before: str) -> tuple:
        digest = hashlib.blake2b(before.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        return (self.kind, self.ctx.path, digest, len(self.after))

    def _signatures(self, full: str, paren: int) -> tuple[Signature, ...] | Pending | None:
        gen_start = len(self.window)
        key = (paren, full[gen_start : paren + 1] if paren + 1 > gen_start else "")
        if key in self._sigs:
            return self._sigs[key]
        before = self.ctx.base[: self.shift] + full[: paren + 1]
        res = self.runner.analyse(self._rkey(before), ("py-signatures", before, self.after, self.ctx.path),
                                  lambda: self._semantic(before), self._deadlines, self.timeout_s, self.stats)
        if isinstance(res, Pending):
            return res
        self.stats.triggers += 1
        if res is TIMEOUT:
            res = None
        self._sigs[key] = res
        return res

    def _semantic(self, before: str) -> str | None:
        try:
            return signature_key(self.ctx.path, before, self.after)
        except Exception:
            log.debug("signature_key failed", exc_info=True)
            return None

    def prefetch(self) -> None:
        """Start the signature analyses this request will need (the innermost open call), and
        the one the next keystroke probably will: the cursor is right after a name that the
        document mostly calls (``self._format_args┃``), so "(" is likely next."""
        frames, _ = self._states[""]
        for f in reversed(frames):
            if f.call:
                self._submit(self.ctx.base[: self.shift] + self.window[: f.pos + 1])
                break
        ctx = self.ctx
        if ctx.text[ctx.cursor : ctx.cursor + 1].strip("\n"):
            return  # text after the cursor on its line: not the end of a name being typed
        typed = ctx.text[: ctx.cursor]  # (the user's text: token healing may start decoding before it)
        end = len(typed)
        if not end or not is_word(typed[end - 1]):
            return
        start = dotted_start(typed, end)
        if start is None:
            return
        name = typed[start:end]
        if name.split(".", 1)[0] in _NOT_CALLS or name.rsplit(".", 1)[-1] in PY_KEYWORDS:
            return
        head = typed[line_start(typed, start) : start].lstrip()
        if head.startswith(("def ", "async def ", "class ", "import ", "from ")) or code_state(typed, end) != "code":
            return
        if likely_next(ctx.text, name) == "(":
            self._submit(typed + "(")

    def _submit(self, before: str) -> None:
        rkey = self._rkey(before)
        if self.runner.prefetch(rkey, ("py-signatures", before, self.after, self.ctx.path), lambda: self._semantic(before)):
            self._deadlines.setdefault(rkey, time.monotonic() + self.timeout_s)

    def _frame_ok(self, full: str, paren: int, end: int, closed: bool, step: int) -> bool | Pending:
        sigs = self._signatures(full, paren)
        if isinstance(sigs, Pending):
            return sigs
        if not sigs:
            return True
        self.stats.constrained.add(step)
        args = parse_args(full[paren + 1 : end])
        return any(call_ok(args, closed, sig) for sig in sigs)

    def check(self, generated: str, token: int, text: str | None) -> bool | Pending:
        t0 = time.perf_counter()
        try:
            if not text:
                return True
            frames, quote = self._state(generated)
            head_len = len(self.window) + len(generated)
            full = self.window + generated + text
            closed: list[tuple[int, int]] = []
            frames, quote = _scan(full, head_len, len(full), [*frames], quote, closed)
            pending: Pending | None = None
            verdicts = [self._frame_ok(full, paren, close, True, len(generated)) for paren, close in closed]
            if quote is None:
                verdicts += [self._frame_ok(full, f.pos, len(full), False, len(generated)) for f in frames if f.call]
            for v in verdicts:
                if isinstance(v, Pending):
                    pending = v
                elif not v:
                    return False
            return True if pending is None else pending
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000
            self.stats.checks += 1

    def allowed(self, generated: str) -> np.ndarray | None:
        return None  # the decoder scans its best candidates with check()


class CallsMonitor:
    """Arguments fit the signature of the call they are in."""

    name = "calls"
    languages = frozenset({"python"})

    def __init__(self, runner: AnalysisRunner, timeout_ms: float = 300.0) -> None:
        self.runner = runner
        self.timeout_s = timeout_ms / 1000

    def start(self, ctx: MonitorContext):
        if ctx.language != "python":
            return None
        if not cursor_in_code(ctx.text, ctx.offset, ctx.language):
            return None
        session = CallsSession(ctx, self.runner, self.timeout_s)
        session.prefetch()
        return session
