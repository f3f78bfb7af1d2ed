"""Python identifier monitors on jedi: members after ``expr.``, import names, names in scope."""

from __future__ import annotations

import builtins
import logging
import re

import numpy as np

from ..base import TIMEOUT, AnalysisRunner, MonitorContext, NameSet, Rewind
from ..identifiers import IdentifierSession
from ..syntax import bracket_depth, cursor_in_code
from ..textscan import (
    after_member_dot,
    code_state,
    is_word,
    line_start,
    prev_significant,
    trailing_word_start,
    word_before,
)
from .jedi_analysis import MODULE_DUNDERS, PY_KEYWORDS
from .semantic_keys import member_key

__all__ = ["ImportsMonitor", "MembersMonitor", "NamesMonitor"]

log = logging.getLogger(__name__)

_IMPORT_LINE = re.compile(r"\s*(import|from)\s")


def _is_import_line(full: str, s: int) -> bool:
    ls = line_start(full, s)
    return bool(_IMPORT_LINE.match(full, ls))


class _JediMonitor:
    session_cls: type[IdentifierSession]
    name = "jedi"
    languages = frozenset({"python"})

    def __init__(self, runner: AnalysisRunner, timeout_ms: float = 300.0) -> None:
        self.runner = runner
        self.timeout_s = timeout_ms / 1000

    def start(self, ctx: MonitorContext):
        if ctx.language != "python" or not cursor_in_code(ctx.text, ctx.offset, ctx.language):
            return None
        session = self.session_cls(ctx, self.runner, self.timeout_s)
        if not self.accepts(ctx, session):
            return None
        session.prefetch()
        return session

    def accepts(self, ctx: MonitorContext, session: IdentifierSession) -> bool:
        return True


# ---- members ---------------------------------------------------------------------------------


class MembersSession(IdentifierSession):
    name = "members"
    kind = "py-members"
    requires_identifier = True

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self._bindings: dict[str, NameSet] = {}

    def in_context(self, full: str, s: int) -> bool:
        if not after_member_dot(full, s, ")]}\"'"):  # not "..." nor the dot of "1.5" either
            return False
        if code_state(full, s) != "code":
            return False
        return not _is_import_line(full, s)

    def job(self, before: str) -> tuple:
        return ("py-members", before, self.after, self.ctx.path)

    def semantic_key(self, before: str) -> str | None:
        try:
            return member_key(self.ctx.path, before, self.after)
        except Exception:  # a key is an optimization: never a reason to fail
            log.debug("member_key failed", exc_info=True)
            return None

    def _binding(self, full: str, s: int) -> NameSet | None:
        """Names an attribute *definition* may use at ``full[s]`` (``self.x = ...`` at the start
        of a statement): the attributes this object is used with anywhere in the document, and
        the parameters of the enclosing function (``self.size = size``). None: not a target.
        """
        start = _dotted_start(full, s - 1)
        if start is None:
            return None
        ls = line_start(full, s)
        if full[ls:start].strip():
            return None  # not at the start of the statement
        root = full[start : s - 1]
        cached = self._bindings.get(root)
        if cached is not None:
            return cached
        text = self.ctx.text
        cl = text.rfind("\n", 0, self.ctx.cursor) + 1
        ce = text.find("\n", self.ctx.cursor)
        doc = text[:cl] + (text[ce:] if ce >= 0 else "")  # the line being written defines nothing yet
        names = set(re.findall(r"\b" + re.escape(root) + r"\.([A-Za-z_]\w*)", doc))
        header = re.search(r"def\s+\w+\s*\(([^)]*)\)[^\n]*:[^\n]*\n(?![\s\S]*\n[ \t]*def\s)", full[max(0, s - 20000) : s])
        if header:
            names |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:[:=,]|$)", header.group(1)))
        ns = NameSet(names)
        self._bindings[root] = ns
        return ns

    def judge(self, full: str, s: int, e: int, word: str, complete: bool, legal: NameSet):
        if legal.admits(word, complete):
            return True
        binding = self._binding(full, s)
        if binding is None:
            return False
        rest = full[e:].lstrip(" \t")
        if e == len(full):  # the name may still grow
            return legal.admits(word, False) or binding.admits(word, False)
        if not rest:  # complete, and nothing but spaces after it yet
            return binding.admits(word, True)
        if (rest[0] == "=" and rest[1:2] != "=") or rest[0] == ":":
            return binding.admits(word, True)  # a definition: ``self.name = ...``
        # not an assignment after all: the name had to be a member. Undo from where it left the
        # members (e.g. ``_add_action`` + ``_group`` when only ``_add_action`` exists).
        k = len(word)
        while k > 0 and not legal.admits(word[:k], False):
            k -= 1
        to = s + k - len(self.window)
        return Rewind(to) if to >= 0 else False

    def allowed(self, generated: str):
        ids = super().allowed(generated)
        if ids is None:
            return None
        full = self.window + generated
        s = trailing_word_start(full)
        binding = self._binding(full, s)
        if binding is None or not len(binding):
            return ids
        return np.union1d(ids, binding.tokens(full[s:], self.ctx.vocab)).astype(np.int32)

    def prefetch(self) -> None:
        super().prefetch()
        # predictive: the cursor is right after a name the document knows (``self``, ``os.path``,
        # ``parser``): the user is likely to type "." next, so analyse that now, on the other core
        full = self.window
        end = len(full)
        if end and is_word(full[end - 1]) and not self.ctx.text[self.ctx.cursor : self.ctx.cursor + 1].strip("\n"):
            start = _dotted_start(full + ".", end)
            if start is None:
                return
            root = full[start:end].split(".", 1)[0]
            if root not in _document_names(self.ctx.text).names_set or code_state(full, end) != "code":
                return
            if _is_import_line(full, end) or root in PY_KEYWORDS:
                return
            before = self._before(full + ".", end + 1)
            rkey = self._rkey(before)
            if self.runner.cached(rkey) is not TIMEOUT:
                return
            skey = self.semantic_key(before)
            if skey is not None and self.runner.cached(("semantic", skey)) is not TIMEOUT:
                return
            self.runner.submit(rkey, self.job(before), (("semantic", skey),) if skey is not None else ())

    def share_key(self, full: str, s: int):
        # the same dotted name (``self``, ``os.path``) in the same request has the same members
        start = _dotted_start(full, s - 1)
        return None if start is None else full[start : s - 1]


def _dotted_start(full: str, dot: int) -> int | None:
    """Start of the plain dotted name (``self``, ``os.path``) that ends at ``full[dot]``."""
    j = dot
    while j > 0 and (is_word(full[j - 1]) or full[j - 1] == "."):
        j -= 1
    if j == dot or not (full[j] == "_" or full[j].isalpha()):
        return None
    if j > 0 and full[j - 1] in ")]}\"'":
        return None
    return j


class MembersMonitor(_JediMonitor):
    """After ``expr.``: only attributes jedi finds on ``expr`` (unknown type: no opinion)."""

    name = "members"
    session_cls = MembersSession


# ---- imports ---------------------------------------------------------------------------------


class ImportsSession(IdentifierSession):
    name = "imports"
    kind = "py-imports"

    def in_context(self, full: str, s: int) -> bool:
        if not _is_import_line(full, s) or code_state(full, s) != "code":
            return False
        ch, i = prev_significant(full, s)
        if ch in (".", ",", "("):
            return True
        if is_word(ch):
            w, _ = word_before(full, s)
            return w in ("import", "from")
        return False

    def job(self, before: str) -> tuple:
        return ("py-imports", before, self.after, self.ctx.path)


class ImportsMonitor(_JediMonitor):
    """``import a.b`` / ``from a import b``: modules and names that exist."""

    name = "imports"
    session_cls = ImportsSession


# ---- names in scope --------------------------------------------------------------------------

# keywords after which an expression starts (so an identifier there is a *use*, not a binding)
_EXPR_KEYWORDS = frozenset(
    {"return", "if", "elif", "while", "assert", "await", "yield", "raise", "del", "in", "not", "and", "or",
     "is", "else", "except", "with", "from"}
)
_OPERATOR_CHARS = set("=+-*/%<>&|^~")
_STATEMENT_KEYWORDS = re.compile(r"\b(lambda|global|nonlocal)\b")


class NamesSession(IdentifierSession):
    name = "names"
    kind = "py-scope"
    #: `x = fibo┃` + "(" would call `fibo`: ending the user's half-typed word is the model's choice
    judge_cursor_word = True

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self._depth_memo: dict[tuple[int, str], int] = {}

    def in_context(self, full: str, s: int) -> bool:
        ch, i = prev_significant(full, s)
        if not ch:
            return False
        if is_word(ch):
            w, ws = word_before(full, s)
            if w not in _EXPR_KEYWORDS:
                return False
            if w == "from" and not re.match(r"\s*(raise|yield)\b", full[line_start(full, s) : ws]):
                return False  # `from x import` (imports monitor) -- only `raise X from Y` / `yield from`
        elif ch not in _OPERATOR_CHARS:
            return False
        elif ch == "*" and i > 0 and full[i - 1] in "(,":
            return False  # *args / keyword-only marker in a signature
        elif ch == "=" and i > 0 and full[i - 1] == "-":
            return False  # "->" return annotation is "-" then ">"
        if ch == ">" and i > 0 and full[i - 1] == "-":
            return False
        if code_state(full, s) != "code" or _is_import_line(full, s):
            return False
        ls = line_start(full, s)
        line = full[ls:s]
        if _STATEMENT_KEYWORDS.search(line) or line.lstrip().startswith(("def ", "class ", "@", "async def ")):
            return False
        return self._depth(full, s) == 0

    def _depth(self, full: str, s: int) -> int:
        gen_start = len(self.window)
        key = (s, full[gen_start:s] if s > gen_start else "")
        d = self._depth_memo.get(key)
        if d is None:
            d = bracket_depth(full, s, "python", max_lines=40)
            self._depth_memo[key] = d
        return d

    def legal_at(self, full: str, s: int):
        """Names that can resolve here: every name the document defines or uses, the builtins,
        keywords, and every identifier the generated text has introduced before ``s``.

        A deliberate over-approximation of jedi's scope rules (a local of another function is
        allowed): it is conservative -- it never rejects a name that resolves -- and it costs a
        regex pass per document version instead of a 40-90 ms jedi completion per request,
        which on 2 cores would slow the decoder down. What it catches is what matters: names
        that exist nowhere (typos, invented helpers).
        """
        gen_start = len(self.window)
        key = (s, full[gen_start:s] if s > gen_start else "")
        if key in self._legal:
            return self._legal[key]
        base = _document_names(_without_word_at(self.ctx.text, self.ctx.cursor))
        extra = set(_IDENT.findall(full, gen_start, s)) - base.names_set
        legal = NameSet(base.names_set | extra) if extra else base.nameset
        self.stats.triggers += key not in self._legal
        self._legal[key] = legal
        return legal

    def prefetch(self) -> None:
        pass


class _DocNames:
    def __init__(self, text: str) -> None:
        self.names_set = frozenset(_IDENT.findall(text)) | _BUILTIN_NAMES
        self.nameset = NameSet(self.names_set)
        self.dynamic = bool(re.search(r"^\s*from\s+\S+\s+import\s+\*|\bglobals\(\)|\bexec\(", text, re.M))


def _without_word_at(text: str, cursor: int) -> str:
    """The document minus the identifier being typed at the cursor: a half-typed ``fibo`` is not
    a name the document uses (elsewhere it still counts)."""
    a = cursor
    while a > 0 and (text[a - 1].isalnum() or text[a - 1] == "_"):
        a -= 1
    b = cursor
    while b < len(text) and (text[b].isalnum() or text[b] == "_"):
        b += 1
    return text if a == b else text[:a] + text[b:]


_doc_cache: dict[tuple[int, int], _DocNames] = {}


def _document_names(text: str) -> _DocNames:
    k = (len(text), hash(text))
    d = _doc_cache.get(k)
    if d is None:
        if len(_doc_cache) > 8:
            _doc_cache.clear()
        d = _doc_cache[k] = _DocNames(text)
    return d


_IDENT = re.compile(r"[A-Za-z_]\w*")
_BUILTIN_NAMES = frozenset(dir(builtins)) | PY_KEYWORDS | MODULE_DUNDERS


class NamesMonitor(_JediMonitor):
    """A name that starts an expression must resolve there (conservative: uses, not bindings)."""

    name = "names"
    session_cls = NamesSession

    def accepts(self, ctx: MonitorContext, session: IdentifierSession) -> bool:
        # star imports and dynamic namespaces make "in scope" unknowable
        return not _document_names(ctx.text).dynamic
