"""Python identifier monitors on jedi: members after ``expr.``, import names, names in scope."""

from __future__ import annotations

import builtins
import functools
import keyword
import logging
import re

import numpy as np

from ..base import AnalysisRunner, MonitorContext, NameSet, Rewind
from ..identifiers import IdentifierSession
from ..syntax import cursor_in_code, open_brackets
from ..textscan import (
    after_member_dot,
    code_state,
    code_tokens,
    dotted_start,
    identifiers_from,
    is_word,
    likely_next,
    line_start,
    prev_significant,
    trailing_word_start,
    word_before,
)
from .jedi_analysis import MODULE_DUNDERS, PY_KEYWORDS
from .scopes import ScopeIndex, scope_index
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
        self._widened: dict[tuple[int, str], NameSet] = {}

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

    def legal_at(self, full: str, s: int):
        """jedi's members, and those the document shows the object has that jedi misses."""
        legal = super().legal_at(full, s)
        if not isinstance(legal, NameSet):
            return legal
        start = dotted_start(full, s - 1)
        if start is None:
            return legal
        root = full[start : s - 1]
        key = (id(legal), root)
        widened = self._widened.get(key)
        if widened is None:
            extra = {n for n in self._evidence(full, s, root) if n not in legal}
            widened = self._widened[key] = NameSet([*legal.names, *extra]) if extra else legal
        return widened

    def _evidence(self, full: str, s: int, root: str) -> set[str]:
        """Members of ``root`` that the document shows and jedi does not see: attributes it is
        assigned anywhere (``Logger.root = root`` below the class), and names that a
        ``hasattr``/``getattr`` guards (``if hasattr(self, "_get_formatter")`` in a base
        class). For a method's ``self``: the guards in its class, and the attributes assigned
        on the class by name. Only ever more names: never a reason to reject."""
        idx, ls, _ = _cursor_scopes(self.ctx)
        doc = idx.text  # the document without the line being written
        params = _enclosing_params(full, s)
        if params and root == params[0]:
            text = self.ctx.text  # the cursor's line: ``doc`` has it removed
            own = _own_class(idx, ls, len(text) - ls - len(text[ls:].lstrip(" \t")))
            if own is None:
                return set()
            # (jedi sees ``self.x = …`` in the class's methods)
            names = _members_shown(own, root, assigns=False)
            header = _CLASS_NAME.match(own)
            if header:
                names |= _members_shown(doc, header.group(1), guards=False)
            return names
        return _members_shown(doc, root)

    def _binding(self, full: str, s: int) -> NameSet | None:
        """Names an attribute *definition* may use at ``full[s]`` (``self.x = ...`` at the start
        of a statement): the attributes this object is used with anywhere in the document (for a
        method's ``self``: anywhere in its class), and the parameters of the enclosing function
        (``self.size = size``). None: not a target.
        """
        start = dotted_start(full, s - 1)
        if start is None:
            return None
        indent = start - line_start(full, s)
        if full[start - indent : start].strip():
            return None  # not at the start of the statement
        root = full[start : s - 1]
        cached = self._bindings.get(root)
        if cached is not None:
            return cached
        idx, ls, _ = _cursor_scopes(self.ctx)
        doc = idx.text  # the document without the line being written: that defines nothing yet
        params, at = _enclosing_def(full, s)
        if params and root == params[0]:
            # ``self.x = ...`` in a method: the attributes this class's methods use, not those
            # of every class in the file (another class's ``self.emit`` is no evidence)
            doc = _own_class(idx, ls, indent) or doc
        names = set(re.findall(r"\b" + re.escape(root) + r"\.([^\W\d]\w*)", doc))
        # a parameter's name, unless the function already stored it under another name
        # (``self._indent_increment = indent_increment``: not ``self.indent_increment`` again)
        stored = re.findall(re.escape(root) + r"\.[^\W\d]\w*\s*=\s*([^\W\d]\w*)[ \t]*(?:#.*)?$", full[at:s], re.M)
        names.update(p for p in params if p not in stored)
        # and a local the function bound before the cursor (``lineno = doc.count(...)`` then
        # ``self.lineno = lineno``), under the same condition
        names.update(n for n in _locals_bound(full[at:s]) if n not in stored and n != root)
        ns = NameSet(names)
        self._bindings[root] = ns
        return ns

    def admits_prefix(self, full: str, s: int, prefix: str, legal: NameSet) -> bool:
        if legal.admits(prefix, False):
            return True
        binding = self._binding(full, s)
        return binding is not None and binding.admits(prefix, False)

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
        return self.rewind_from(legal, word, s)

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
        # (unless the document mostly calls that name: then the calls monitor prefetches "(";
        # a dotted name only when the document goes on with "." after it somewhere)
        full = self.typed
        end = len(full)
        if end and is_word(full[end - 1]) and not self.ctx.text[self.ctx.cursor : self.ctx.cursor + 1].strip("\n"):
            start = dotted_start(full + ".", end)
            if start is None:
                return
            name = full[start:end]
            root = name.split(".", 1)[0]
            idx, _, line_names = _cursor_scopes(self.ctx)
            if root not in idx.all_names and root not in line_names:
                # a half-typed name that only one name used before a "." finishes (``sel``:
                # ``self``): analyse that, a keystroke or more before the dot
                roots = [r for r in idx.roots if r.startswith(name) and r != name] if "." not in name and len(name) > 1 else []
                if len(roots) != 1:
                    return
                full += roots[0][len(name) :]
                root, end = roots[0], len(full)
            if code_state(full, end) != "code":
                return
            if _is_import_line(full, end) or root in PY_KEYWORDS:
                return
            nxt = likely_next(self.ctx.text, full[start:end])
            if nxt == "(" or (nxt is None and "." in full[start:end]):
                return  # mostly called; or a dotted name (``self.fo┃``, half-typed?) never followed by "."
            before = self._before(full + ".", end + 1)
            self.runner.prefetch(self._rkey(before), self.job(before), lambda: self.semantic_key(before))

    def share_key(self, full: str, s: int):
        # the same dotted name (``self``, ``os.path``) in the same request has the same members
        start = dotted_start(full, s - 1)
        return None if start is None else full[start : s - 1]


_CLASS_NAME = re.compile(r"[ \t]*class\s+([^\W\d]\w*)")


@functools.lru_cache(maxsize=8)
def _own_class(idx: ScopeIndex, ls: int, indent: int) -> str | None:
    """The text of the class around a line at ``ls`` with ``indent`` (header first), without
    the classes nested in it; None outside any class. Cached (0.3-0.6 ms for argparse's large
    classes): the members evidence and the definition rule both ask, request after request,
    while the scope index of the document version stays the same."""
    span = idx.class_span(ls, indent)
    return None if span is None else _without_nested_classes(idx.text[span[0] : span[1]])


def _without_nested_classes(body: str) -> str:
    """A class's text (its header first) without the classes nested in it: their ``self`` is
    another object (argparse's ``HelpFormatter._Section``)."""
    if "class" not in body[1:]:
        return body
    out: list[str] = []
    skip: int | None = None  # the indent of the nested class being skipped
    for k, line in enumerate(body.splitlines(keepends=True)):
        stripped = line.lstrip(" \t")
        indent = len(line) - len(stripped)
        if skip is not None:
            if not stripped.strip() or indent > skip:
                continue
            skip = None
        if k and re.match(r"class\s", stripped):
            skip = indent
            continue
        out.append(line)
    return "".join(out)


def _enclosing_params(full: str, s: int) -> list[str]:
    """The parameter names of the function whose body ``full[s]`` is in (a regex guess over
    the last ``def`` header before it; [] when there is none)."""
    return _enclosing_def(full, s)[0]


def _enclosing_def(full: str, s: int) -> tuple[list[str], int]:
    """``_enclosing_params``, and where that ``def`` starts (``s`` when there is none)."""
    lo, i = max(0, s - 20000), s
    while (i := full.rfind("def", lo, i)) >= 0:
        ls = line_start(full, i)
        if full[i + 3 : i + 4] in (" ", "\t") and full[ls:i].strip(" \t") in ("", "async"):  # the last ``def`` that starts a line
            header = _DEF_HEADER.match(full, i, s)
            return (re.findall(r"([^\W\d]\w*)\s*(?:[:=,]|$)", header.group(1)), i) if header else ([], s)
    return [], s


def _locals_bound(body: str) -> set[str]:
    """The names a function body binds at the start of a statement (a regex guess):
    ``x = …``, ``x: T = …``, ``a, b = …``, ``for x in``, ``with … as x``, ``except … as x``."""
    names: set[str] = set()
    for m in _LOCAL_TARGETS.finditer(body):
        names.update(re.findall(r"[^\W\d]\w*", m.group(1) or m.group(2) or m.group(3)))
    return names


_LOCAL_TARGETS = re.compile(
    r"^[ \t]+(?:([^\W\d]\w*(?:[ \t]*,[ \t]*[^\W\d]\w*)*)[ \t]*(?::[^=\n]*)?=(?!=)"
    r"|for[ \t]+([^\W\d]\w*(?:[ \t]*,[ \t]*[^\W\d]\w*)*)[ \t]+in\b"
    r"|(?:with|except)\b[^\n]*?\bas[ \t]+([^\W\d]\w*)[ \t]*:)",
    re.M,
)


_DEF_HEADER = re.compile(r"def\s+\w+\s*\(([^)]*)\)[^\n]*:[^\n]*\n")


@functools.lru_cache(maxsize=32)
def _members_shown(text: str, root: str, guards: bool = True, assigns: bool = True) -> frozenset[str]:
    """With ``assigns``, the attributes ``text`` assigns on ``root`` (``root.x = …``,
    ``root.x += …``); with ``guards``, the names it tests with ``hasattr``/``getattr``/
    ``setattr(root, "x"…``."""
    r = re.escape(root)
    names: set[str] = set()
    if assigns:
        # (patterns that start with a literal: re scans for it fast; a lookbehind first is 10x slower)
        names.update(
            m.group(1)
            for m in re.finditer(r + r"\.([^\W\d]\w*)\s*(?:[-+*/%&|^@]|//|\*\*|>>|<<)?=(?!=)", text)
            if not m.start() or not (text[m.start() - 1].isalnum() or text[m.start() - 1] in "._")
        )
    if guards and "attr(" in text:
        names.update(re.findall(r"attr\(\s*" + r + r"\s*,\s*['\"]([^\W\d]\w*)['\"]", text))
    return frozenset(names)


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
        self._level_memo: dict[tuple[int, str], list[_Level] | None] = {}
        self._visible: dict[int, tuple[frozenset[str], NameSet]] = {}

    def in_context(self, full: str, s: int) -> bool:
        return self._use_at(full, s, deferred=False)

    def _use_at(self, full: str, s: int, *, deferred: bool) -> bool:
        """Does an identifier at ``full[s]`` start an expression (a use, not a binding)?

        Inside brackets a name may still be bound by a comprehension that comes later
        (``[x for x in xs]``). Such a name is judged once a comma, a closing bracket or the
        `for` settles that (``deferred``, see ``_late_verdict``), not when it is written.
        """
        ch, i = prev_significant(full, s)
        if not ch:
            return False
        if code_state(full, s) != "code" or _is_import_line(full, s):
            return False
        levels = self._levels(full, s)
        if levels is None:
            return False
        if levels:
            return self._bracket_use(full, s, ch, levels, deferred)
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
        ls = line_start(full, s)
        line = full[ls:s]
        return not (_STATEMENT_KEYWORDS.search(line) or line.lstrip().startswith(("def ", "class ", "@", "async def ")))

    def _bracket_use(self, full: str, s: int, ch: str, levels: list[_Level], deferred: bool) -> bool:
        if levels[-1].target or any(lv.binds for lv in levels):
            return False  # a `for` target list, or a lambda's parameters may be anywhere
        if is_word(ch):
            w, _ = word_before(full, s)
            if w not in _EXPR_KEYWORDS or w == "from":
                return False  # e.g. `as` in a parenthesized with
        elif ch not in "([{,:" and ch not in _OPERATOR_CHARS:
            return False
        if not deferred and any(not lv.comma and not lv.comprehension for lv in levels):
            return False  # the element of a comprehension whose `for` may still come: judged later
        return True

    def _levels(self, full: str, s: int) -> list[_Level] | None:
        """The brackets open at ``full[s]``, outermost first; None: brackets whose names this
        monitor leaves alone (a signature, a `for` / `with ... as` target, a pattern)."""
        gen_start = len(self.window)
        key = (s, full[gen_start:s] if s > gen_start else "")
        if key in self._level_memo:
            return self._level_memo[key]
        opens = self._open_at(full, s)
        levels = _scan_levels(full, opens[0], s) if opens and _judgable_opener(full, opens[0]) else None
        self._level_memo[key] = [] if not opens else levels
        return self._level_memo[key]

    def judge(self, full: str, s: int, e: int, word: str, complete: bool, legal: NameSet):
        if legal.admits(word, complete) or _string_prefix(full, e, word):
            return True
        levels = self._levels(full, s)
        if not levels:
            return False
        if not complete:
            return levels[-1].opener == "("  # may become a keyword argument or a walrus target
        if _bound_by_what_follows(full, e):
            return True  # a keyword argument (the calls monitor's business) or a walrus target
        return self.rewind_from(legal, word, s)

    # ---- deferred names: judged once no comprehension can bind them ---------------------------
    def _check(self, generated: str, text: str | None, opaque: bool = False):
        verdict = super()._check(generated, text, opaque)
        if verdict is False or isinstance(verdict, Rewind) or opaque:
            return verdict
        tail = text or ""
        if text is None or "\n" in text:
            # the suggestion's line ends: what the editor already shows after the cursor (an
            # auto-inserted ")") closes its brackets
            end = self.ctx.text.find("\n", self.ctx.cursor)
            rest = self.ctx.text[self.ctx.cursor : end if end >= 0 else len(self.ctx.text)]
            if rest.strip() and not rest.strip(" \t)]}:"):
                tail = tail.split("\n", 1)[0] + rest
        if _SEPARATORS.isdisjoint(tail):
            return verdict
        late = self._late_verdict(self.window + generated, tail)
        return verdict if late is None else late

    def _late_verdict(self, head: str, text: str) -> Rewind | None:
        """After a comma or a closing bracket in ``text``: a deferred name that resolves nowhere
        and that no comprehension can bind any more is a dead end -- rewind to where it went
        wrong. A bracket can bind the names of its element until a comma or its end shows the
        element is not a comprehension's, or a `for` shows which names it binds."""
        start = len(head)
        full = head + text
        opens = self._open_at(head, start) or [i for i, tok in code_tokens(full, start, len(full)) if tok in _OPEN][:1]
        if not opens or not _judgable_opener(full, opens[0]):
            return None  # no brackets (before or in this token), or brackets of bindings
        outer = opens[0]
        gen_start = len(self.window)
        for a, b in identifiers_from(full, max(outer, gen_start)):
            if b < self.cursor_at or b >= len(full):
                continue  # typed by the user (the word ending at the cursor is the model's to end)
            word = full[a:b]
            if word[0].isdigit() or word in PY_KEYWORDS or full[a - 1 : a] == "." or _string_prefix(full, b, word):
                continue
            if _bound_by_what_follows(full, b):
                continue  # a keyword argument or a walrus target
            levels = self._levels(full, a)
            if not levels or not self._use_at(full, a, deferred=True):
                continue  # after the outermost closer (judged as usual), or not a use
            legal = self.legal_at(full, a)
            if legal.admits(word, True):
                continue
            if not self._unbindable(full, b, word, levels):
                continue
            self.stats.constrained.add(a - gen_start)
            verdict = self.rewind_from(legal, word, a)
            return verdict if isinstance(verdict, Rewind) else None
        return None

    def _unbindable(self, full: str, b: int, word: str, levels: list[_Level]) -> bool:
        """Can no comprehension bind the name that ends at ``full[b]`` any more?"""
        events = _events_after(full, b, len(levels))
        for lv, event in zip(reversed(levels), events, strict=True):
            if lv.comma or lv.comprehension or event in ("comma", "close"):
                continue  # this bracket's element is not a comprehension's
            if event is None:
                return False  # its `for` may still come
            # a `for` follows the element: it binds the name, or the brackets must close first
            targets = _comprehension_targets(full, b, len(full))
            if word in targets or self._open_at(full, len(full)):
                return False
        return True

    def legal_at(self, full: str, s: int):
        """Names that can resolve at ``full[s]``: those visible from its line's scope in the
        document (``scopes.ScopeIndex``: its own, its enclosing functions', the module's), the
        builtins and keywords, the identifiers on the cursor's line, and every identifier the
        generated text has introduced before ``s``.

        A lexical over-approximation of Python's scope rules, so it never rejects a name that
        resolves; it costs a few ms per edited line instead of a 40-90 ms jedi completion per
        request, which on 2 cores would slow the decoder down.
        """
        gen_start = len(self.window)
        key = (s, full[gen_start:s] if s > gen_start else "")
        if key in self._legal:
            return self._legal[key]
        idx, cursor_line, line_names = self._scope_info
        ls = self._logical_start(full, s)
        indent = len(full) - ls - len(full[ls:].lstrip(" \t"))
        scope = idx.scope_at(min(self.shift + ls, cursor_line) - 1, indent)
        base = self._visible.get(scope)
        if base is None:
            names = frozenset(idx.visible(scope) | line_names | _BUILTIN_NAMES)
            base = self._visible[scope] = (names, NameSet(names))
        extra = set(_IDENT.findall(full, gen_start, s)) - base[0]
        legal = NameSet(base[0] | extra) if extra else base[1]
        self.stats.triggers += 1
        self._legal[key] = legal
        return legal

    def _logical_start(self, full: str, s: int) -> int:
        """Start of the logical line that holds ``full[s]`` (lines inside brackets or after a
        backslash continue the line before)."""
        anchor = self._anchor
        ls = line_start(full, s)
        for _ in range(8):
            if ls <= anchor:
                return anchor
            opens = self._open_at(full, ls)
            if opens:
                ls = line_start(full, opens[0])
            elif full[ls - 2 : ls - 1] == "\\":
                ls = line_start(full, ls - 1)
            else:
                break
        return ls

    @functools.cached_property
    def _anchor(self) -> int:
        """Where the logical line holding the cursor starts, in window coordinates: a place
        outside any string from which bracket scans are exact."""
        idx, cursor_line, _ = self._scope_info
        return max(0, idx.logical_start(cursor_line) - self.shift)

    @functools.cached_property
    def _scope_info(self) -> tuple[ScopeIndex, int, frozenset[str]]:
        return _cursor_scopes(self.ctx)

    def _open_at(self, full: str, s: int) -> list[int]:
        """The brackets open at ``full[s]`` (from the cursor's logical line on), outermost first."""
        anchor = self._anchor
        return open_brackets(full, s, "python", start=anchor) if s > anchor else []

    def prefetch(self) -> None:
        pass


_OPEN = frozenset("([{")
_CLOSE = frozenset(")]}")
_SEPARATORS = frozenset(",)]}")
_NOT_USES_AFTER = frozenset({"for", "as", "def", "class", "lambda", "import", "global", "nonlocal", "del", "with"})


class _Level:
    """One open bracket: whether a comma or a comprehension `for` came at its own level, whether
    a `for` target list is being written (``target``), and whether a lambda binds names in it."""

    __slots__ = ("binds", "comma", "comprehension", "opener", "target")

    def __init__(self, opener: str) -> None:
        self.opener = opener
        self.comma = self.comprehension = self.target = self.binds = False


def _scan_levels(full: str, outer: int, s: int) -> list[_Level]:
    """The brackets open at ``s``, from the one at ``outer`` (skipping strings and comments)."""
    stack: list[_Level] = []
    for i, tok in code_tokens(full, outer, s):
        if tok in _OPEN:
            stack.append(_Level(tok))
        elif tok in _CLOSE:
            if stack:
                stack.pop()
        elif not stack:
            continue
        elif tok == ",":
            stack[-1].comma = True
        elif tok == "for" and full[i - 1 : i] != ".":
            stack[-1].comprehension = stack[-1].target = True
        elif tok == "in" and stack[-1].target:
            stack[-1].target = False
        elif tok == "lambda":
            stack[-1].binds = True
    return stack


def _judgable_opener(full: str, outer: int) -> bool:
    """Are the names in the bracket opened at ``full[outer]`` uses? Not in a signature
    (``def f(``), a `for` / `with ... as` target, a tuple being assigned to (a bracket that opens a
    statement), a `case` pattern or a lambda."""
    ls = line_start(full, outer)
    pre = full[ls:outer]
    head = pre.lstrip()
    if head.startswith(("def ", "async def ", "case ", "import ", "from ", "global ", "nonlocal ")):
        return False
    if head.startswith(("for ", "async for ")) and not re.search(r"\bin\b", pre):
        return False
    if "lambda" in pre:
        return False
    ch, _ = prev_significant(full, outer)
    if is_word(ch):
        w, _ = word_before(full, outer)
        return w not in _NOT_USES_AFTER and (not keyword.iskeyword(w) or w in _EXPR_KEYWORDS)
    return ch in _OPERATOR_CHARS or ch in ")]}\"'"


_STRING_PREFIXES = frozenset({"r", "u", "f", "b", "br", "rb", "fr", "rf", "t", "tr", "rt"})


def _bound_by_what_follows(full: str, e: int) -> bool:
    """Is the name ending at ``full[e]`` a keyword argument's (``key=``) or a walrus target?"""
    rest = full[e:].lstrip(" \t")
    return rest.startswith(":=") or (rest[:1] == "=" and rest[1:2] != "=")


def _string_prefix(full: str, e: int, word: str) -> bool:
    """``f`` in ``f"..."``: a string prefix, not a name."""
    return full[e : e + 1] in ("'", '"') and word.lower() in _STRING_PREFIXES


def _events_after(full: str, i: int, n: int) -> list[str | None]:
    """For the ``n`` brackets open at ``full[i]`` (innermost first): the first of "comma", "for"
    or "close" at that bracket's own level after ``i`` (None: nothing yet)."""
    events: list[str | None] = [None] * n
    level = depth = 0
    for j, tok in code_tokens(full, i, len(full)):
        if tok in _OPEN:
            depth += 1
        elif tok in _CLOSE:
            if depth:
                depth -= 1
                continue
            events[level] = events[level] or "close"
            level += 1
            if level == n:
                break
        elif depth == 0 and tok == ",":
            events[level] = events[level] or "comma"
        elif depth == 0 and tok == "for" and full[j - 1 : j] != ".":
            events[level] = events[level] or "for"
    return events


def _comprehension_targets(full: str, a: int, b: int) -> set[str]:
    """Names bound by the `for` target lists in ``full[a:b]`` (code only)."""
    out: set[str] = set()
    collecting = False
    for i, tok in code_tokens(full, a, b):
        if tok == "for" and full[i - 1 : i] != ".":
            collecting = True
        elif tok == "in" and collecting:
            collecting = False
        elif collecting and is_word(tok[0]):
            out.add(tok)
    return out


def _cursor_scopes(ctx: MonitorContext) -> tuple[ScopeIndex, int, frozenset[str]]:
    """The scope index of the document without the cursor's line (so typing on one line keeps
    hitting the cache), where that line starts, and the identifiers on it but the one at the
    cursor (a half-typed ``fibo`` is not a name the document uses)."""
    global _last_cursor_scopes
    last = _last_cursor_scopes  # one read: another thread may replace it meanwhile
    if last[0] is ctx:
        return last[1]
    text, cursor = ctx.text, ctx.cursor
    ls = line_start(text, cursor)
    le = text.find("\n", cursor)
    le = len(text) if le < 0 else le
    idx = scope_index(text[:ls] + text[le + 1 :])
    result = (idx, ls, frozenset(_IDENT.findall(_without_word_at(text[ls:le], cursor - ls))))
    _last_cursor_scopes = (ctx, result)
    return result


_last_cursor_scopes: tuple = (None, None)  # (context, answer): the monitors of one request share it


def _without_word_at(text: str, cursor: int) -> str:
    """``text`` minus the identifier at ``cursor``."""
    a = cursor
    while a > 0 and (text[a - 1].isalnum() or text[a - 1] == "_"):
        a -= 1
    b = cursor
    while b < len(text) and (text[b].isalnum() or text[b] == "_"):
        b += 1
    return text if a == b else text[:a] + text[b:]


_IDENT = re.compile(r"[^\W\d]\w*")
_BUILTIN_NAMES = frozenset(dir(builtins)) | PY_KEYWORDS | MODULE_DUNDERS | {"__class__"}


class NamesMonitor(_JediMonitor):
    """A name that starts an expression must resolve there (conservative: uses, not bindings)."""

    name = "names"
    session_cls = NamesSession

    def accepts(self, ctx: MonitorContext, session: IdentifierSession) -> bool:
        # star imports and dynamic namespaces make "in scope" unknowable
        return not _cursor_scopes(ctx)[0].dynamic
