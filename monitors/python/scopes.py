"""Which names can resolve where in a Python document, lexically, without jedi.

One pass of a regex tokenizer over a document version (strings and comments skipped) gives every
identifier in code and the scope that owns it: the innermost ``def`` / ``class`` whose body holds
its logical line (bodies found by indentation; lines inside brackets or after a backslash belong
to the line they continue). The names that can resolve on a line are then those of its scope, of
the enclosing function scopes (not of enclosing classes: a method does not see its class's
names), of the module, and the builtins.

An over-approximation of Python's rules, so that it never rejects a name that resolves: every
identifier a scope mentions counts as bound there (uses too), a function's parameters and its
name count in both scopes, ``global`` names count at module level, and anything that confuses
the indentation (a continuation line indented less than its body) can only end a body early,
which moves its names out to the enclosing scope where more lines see them.
"""

from __future__ import annotations

import bisect
import re

__all__ = ["ScopeIndex", "scope_index"]

_TOKEN = re.compile(
    r"""(?P<s>[rRbBuUfF]{0,2}(?:\"\"\"[\s\S]*?(?:\"\"\"|\Z)|'''[\s\S]*?(?:'''|\Z)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))"""
    r"""|(?P<c>\#[^\n]*)"""
    r"""|(?P<i>(?<![.\w])[^\W\d]\w*)"""
    r"""|(?P<o>[(\[{])|(?P<x>[)\]}])"""
)
_HEADER = re.compile(r"[ \t]*(?:async[ \t]+)?(def|class)[ \t]+([^\W\d]\w*)")
_GLOBAL = re.compile(r"[ \t]*(?:global|nonlocal)\b")
_DYNAMIC = re.compile(r"^\s*from\s+\S+\s+import\s+\*|\bglobals\(\)|\bexec\(|\blocals\(\)\[", re.M)


class _Line:
    """What one physical line (entered outside any string) holds: its identifiers in code, its
    bracket balance, whether it has code at all, and the triple quote it leaves open."""

    __slots__ = ("code", "delta", "idents", "roots", "open_quote", "backslash")

    def __init__(self, text: str) -> None:
        idents: list[str] = []
        roots: list[str] = []  # identifiers right before a "." (``self`` in ``self.x``)
        delta = 0
        code = False
        self.open_quote: str | None = None
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "c":
                continue
            code = True
            if kind == "i":
                idents.append(m.group())
                if text[m.end() : m.end() + 1] == ".":
                    roots.append(m.group())
            elif kind == "o":
                delta += 1
            elif kind == "x":
                delta -= 1
            else:  # a string: a triple-quoted one may run on past this line
                g = m.group().lstrip("rRbBuUfF")
                q = g[:3]
                if q in ('"""', "'''") and (len(g) < 6 or not g.endswith(q)):
                    self.open_quote = q
        self.idents = frozenset(idents)
        self.roots = frozenset(roots)
        self.delta = delta
        self.code = code
        self.backslash = text.endswith("\\")


def _memo(cache: dict, key, limit: int, make):
    """``cache[key]``, made with ``make()`` when missing (the cache is emptied past ``limit``)."""
    value = cache.get(key)
    if value is None:
        if len(cache) > limit:
            cache.clear()
        value = cache[key] = make()
    return value


_lines: dict[str, _Line] = {}


def _line(text: str) -> _Line:
    return _memo(_lines, text, 200_000, lambda: _Line(text))


class _Scope:
    __slots__ = ("indent", "is_class", "names", "parent")

    def __init__(self, indent: int, is_class: bool, parent: int) -> None:
        self.indent = indent
        self.is_class = is_class
        self.parent = parent
        self.names: set[str] = set()


class ScopeIndex:
    """The identifiers of one document version, by the scope that owns them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.dynamic = any(k in text for k in ("import *", "globals()", "exec(", "locals()[")) and bool(_DYNAMIC.search(text))
        scopes = [_Scope(-1, False, -1)]  # 0: the module
        self.scopes = scopes
        self.all_names: set[str] = set()
        #: names used before a "." in code (``self``, ``os``, ``parser``): what member accesses start from
        self.roots: set[str] = set()
        self._line_starts: list[int] = []  # offsets of logical lines (with code) ...
        self._line_scopes: list[int] = []  # ... and the scope that owns each
        stack = [0]
        depth = 0
        continues = False  # the next line continues a logical line (open bracket, backslash, string)
        current = 0  # owner of the identifiers on the current logical line
        quote: str | None = None  # a triple-quoted string left open by an earlier line
        pos = 0
        phys_starts = self._phys_starts = []  # every physical line's offset ...
        phys_cont = self._phys_cont = []  # ... and whether it continues the logical line before
        for raw in text.split("\n"):
            start = pos
            pos += len(raw) + 1
            phys_starts.append(start)
            phys_cont.append(continues or quote is not None)
            if quote is not None:
                end = raw.find(quote)
                if end < 0:
                    continue  # all string
                ln = _line(raw[end + 3 :])  # the rest continues the line that opened the string
            else:
                ln = _line(raw)
                if not ln.code:
                    continue
                if not continues:
                    current = self._start_line(raw, start, stack, scopes)
            scopes[current].names.update(ln.idents)
            self.roots.update(ln.roots)
            depth = max(0, depth + ln.delta)
            quote = ln.open_quote
            continues = depth > 0 or ln.backslash or quote is not None
        for sc in scopes:
            self.all_names |= sc.names
        self._module = frozenset(scopes[0].names)

    def _start_line(self, line: str, pos: int, stack: list[int], scopes: list[_Scope]) -> int:
        ind = len(line) - len(line.lstrip(" \t"))
        while len(stack) > 1 and scopes[stack[-1]].indent >= ind:
            stack.pop()
        owner = stack[-1]
        h = _HEADER.match(line)
        if h:
            scopes.append(_Scope(ind, h.group(1) == "class", owner))
            scopes[owner].names.add(h.group(2))  # the name is bound where the def/class is
            stack.append(len(scopes) - 1)
            owner = len(scopes) - 1  # parameters and bases are on the header line
        self._line_starts.append(pos)
        self._line_scopes.append(owner)
        # `global x` / `nonlocal x`: the line is in its function, its names count at module level
        return 0 if _GLOBAL.match(line) else owner

    def logical_start(self, pos: int) -> int:
        """Where the logical line that a line starting at ``pos`` belongs to starts (``pos``
        itself unless it continues an earlier line)."""
        k = bisect.bisect_right(self._phys_starts, pos) - 1
        if k < 0 or not self._phys_cont[k]:
            return pos
        j = bisect.bisect_right(self._line_starts, pos) - 1
        return self._line_starts[j] if j >= 0 else 0

    def scope_at(self, pos: int, indent: int) -> int:
        """The scope a logical line starting at ``pos`` with ``indent`` would be in."""
        k = bisect.bisect_right(self._line_starts, pos) - 1
        scope = self._line_scopes[k] if k >= 0 else 0
        while scope > 0 and self.scopes[scope].indent >= indent:
            scope = self.scopes[scope].parent
        return scope

    def class_span(self, pos: int, indent: int) -> tuple[int, int] | None:
        """Offsets of the innermost ``class`` (header to end of body) around a logical line that
        would start at ``pos`` with ``indent``; None outside any class."""
        cls = self.scope_at(pos, indent)
        while cls > 0 and not self.scopes[cls].is_class:
            cls = self.scopes[cls].parent
        if cls <= 0:
            return None
        first = self._line_scopes.index(cls)  # the header is the first line the class owns

        def inside(scope: int) -> bool:
            while scope > cls:  # scopes are numbered in document order: ancestors come first
                scope = self.scopes[scope].parent
            return scope == cls

        k = first + 1
        while k < len(self._line_scopes) and inside(self._line_scopes[k]):
            k += 1
        end = self._line_starts[k] if k < len(self._line_starts) else len(self.text)
        return self._line_starts[first], end

    def visible(self, scope: int) -> frozenset[str]:
        """Names a line in ``scope`` can see: its own, its enclosing functions', the module's."""
        if scope == 0:
            return self._module
        out = self._module | self.scopes[scope].names
        scope = self.scopes[scope].parent
        while scope > 0:
            if not self.scopes[scope].is_class:
                out |= self.scopes[scope].names
            scope = self.scopes[scope].parent
        return out


_cache: dict[tuple[int, int], ScopeIndex] = {}


def scope_index(text: str) -> ScopeIndex:
    """The index of ``text``, cached for the last few document versions."""
    return _memo(_cache, (len(text), hash(text)), 8, lambda: ScopeIndex(text))
