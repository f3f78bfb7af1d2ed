"""Semantic cache keys: when two analyses must give the same answer, without running jedi.

A jedi member analysis costs 30-60 ms on a 2,000-line file, and every keystroke makes a new
document. But the members of ``self.`` in class ``C`` only change when C's definitions change
(its methods, class attributes, ``self.x =`` targets, its bases), and the members of ``os.path.``
only when the import that binds ``os`` changes. These functions compute, lexically and in well
under a millisecond, a key that captures exactly those inputs; equal keys mean equal analyses.

When the key cannot be made safely (a local variable, a name rebound in the function, anything
unusual) the functions return None and the caller runs jedi.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["member_key", "dotted_expression"]

_DOTTED_TAIL = re.compile(r"([^\W\d][\w]*(?:\.[^\W\d]\w*)*)\.$")
_CLASS = re.compile(r"^([ \t]*)class\s+([^\W\d]\w*)\s*(\([^)]*\))?\s*:", re.M)
_DEF = re.compile(r"^[ \t]*(?:async\s+)?def\s+([^\W\d]\w*)", re.M)
_SELF_ASSIGN = re.compile(r"\b(?:self|cls)\.([^\W\d]\w*)\s*(?::[^=\n]*)?=(?!=)")
_CLASS_LEVEL = re.compile(r"^([ \t]*)([^\W\d]\w*)\s*(?::[^=\n]*)?=(?!=)", re.M)
_IMPORT = re.compile(r"^[ \t]*(?:import\s+[^\n]+|from\s+\S+\s+import\s+(?:\([^)]*\)|[^\n]+))", re.M)


def dotted_expression(before: str) -> str | None:
    """The plain dotted name right before the trailing '.' of ``before`` (``self.a`` in ``self.a.``)."""
    m = _plain_tail(before, _DOTTED_TAIL)
    return m.group(1) if m else None


def _plain_tail(before: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """``pattern``'s match at the end of ``before``, unless it is part of a longer expression
    (a call result, a subscript, a string's method ...)."""
    tail = before[-300:]
    m = pattern.search(tail)
    if not m:
        return None
    start = len(tail) - len(m.group(0))
    if start > 0 and tail[start - 1] in ".)]}\"'":
        return None
    return m


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(repr(p).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


_DEF_HEADER = re.compile(r"[ \t]*(?:async\s+)?def\s+\w+\s*\(")
_CLASS_HEADER = re.compile(r"([ \t]*)class\s+([^\W\d]\w*)\s*(\([^)]*\))?\s*:")


def _enclosing(code: str, pos: int, header: re.Pattern[str], below_indent: int | None = None):
    """(line start, match) of the nearest line above ``pos`` that matches ``header`` and is
    indented less than everything between it and ``pos``; None at module level."""
    ls = code.rfind("\n", 0, pos) + 1
    cur_line = code[ls:pos]
    cur = below_indent if below_indent is not None else (_indent(cur_line) if cur_line.strip() else len(cur_line))
    p = ls
    while p > 0:
        end = p - 1
        start = code.rfind("\n", 0, end) + 1
        text = code[start:end]
        p = start
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        ind = _indent(text)
        if ind < cur:
            m = header.match(text)
            if m:
                return start, m
            cur = ind
            if ind == 0:
                return None
    return None


def _block_end(code: str, start: int, indent: int) -> int:
    """Offset where the block whose header ends at ``start`` (header indentation ``indent``) ends."""
    pos = code.find("\n", start)
    while 0 <= pos < len(code):
        nxt = code.find("\n", pos + 1)
        line = code[pos + 1 : nxt if nxt >= 0 else len(code)]
        if line.strip() and not line.lstrip().startswith("#") and _indent(line) <= indent:
            return pos + 1
        if nxt < 0:
            break
        pos = nxt
    return len(code)


def _class_signature(code: str, m: re.Match[str], depth: int, seen: set[str], skip: tuple[int, int] = (0, 0)) -> tuple | None:
    """What jedi's members of an instance of this class depend on (None: too dynamic to key)."""
    indent = len(m.group(1))
    end = _block_end(code, m.end(), indent)
    body = code[m.end() : end]
    if skip[0] >= m.end() and skip[1] <= end:  # the statement being written is not a definition yet
        body = code[m.end() : skip[0]] + code[skip[1] : end]
    if re.search(r"^[ \t]+(?:if|try|for|while|with)\b", body, re.M) and _conditional_members(body):
        return None
    defs = frozenset(_DEF.findall(body))
    attrs = frozenset(_SELF_ASSIGN.findall(body))
    method_indent = None
    class_level = set()
    for cm in _CLASS_LEVEL.finditer(body):
        ind = len(cm.group(1))
        if method_indent is None:
            method_indent = ind
        if ind == method_indent:
            class_level.add(cm.group(2))
    bases_text = (m.group(3) or "").strip()
    bases = []
    if depth < 3:
        for name in re.findall(r"[^\W\d]\w*(?=\s*[,)])", bases_text):
            if name in seen:
                continue
            seen.add(name)
            for bm in _CLASS.finditer(code):
                if bm.group(2) == name and len(bm.group(1)) == 0:
                    base_sig = _class_signature(code, bm, depth + 1, seen)
                    if base_sig is None:
                        return None
                    bases.append((name, base_sig))
                    break
    return (m.group(2), bases_text, defs, attrs, frozenset(class_level), tuple(bases))


def _conditional_members(body: str) -> bool:
    """True when definitions sit under if/try/for/... at the class's member level."""
    member_indent = None
    for line in body.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ind = _indent(line)
        if member_indent is None:
            member_indent = ind
        if ind == member_indent and re.match(r"[ \t]*(if|try|for|while|with)\b", line):
            return True
    return False


def member_key(path: str | None, before: str, after: str) -> str | None:
    """A key such that equal keys give equal jedi member sets after ``before``'s trailing dot."""
    expr = dotted_expression(before)
    if expr is None:
        return None
    code = before + after
    pos = len(before)
    root, *chain = expr.split(".")
    func = _enclosing(code, pos, _DEF_HEADER)
    func_text = code[func[0] : pos] if func else ""
    if root in ("self", "cls"):
        if func is None:
            return None
        cls = _enclosing(code, func[0] + 1, _CLASS_HEADER, below_indent=_indent(func[1].group(0)))
        if cls is None:
            return None
        cls_start, cm = cls
        m = _CLASS.match(code, cls_start)
        if m is None:
            return None
        if re.search(r"\b" + root + r"\s*=(?!=)", func_text):
            return None  # ``self`` rebound in the function: all bets are off
        ls = code.rfind("\n", 0, pos) + 1
        le = code.find("\n", pos)
        sig = _class_signature(code, m, 0, {m.group(2)}, (ls, le if le >= 0 else len(code)))
        if sig is None:
            return None
        lines: list[str] = []
        if chain:  # the type of self.a (for self.a.b) depends on how ``a`` is assigned
            body = code[m.end() : _block_end(code, m.end(), len(m.group(1)))]
            pat = re.compile(r"^[ \t]*(?:self|cls)\." + re.escape(chain[0]) + r"\b[^\n]*", re.M)
            lines = sorted(x.strip() for x in pat.findall(body))
        return _digest("self", path, sig, expr, tuple(lines), func[1].group(0).strip())
    # a name bound by a module-level import, assigned nowhere else, not rebound in the function
    imports = [m.group(0).strip() for m in _IMPORT.finditer(code) if _indent(m.group(0)) == 0]
    r = re.escape(root)
    binding = [i for i in imports if re.search(r"(?:^import\s+|,\s*|\bas\s+|import\s+\(?)\s*" + r + r"\b", i)]
    if not binding:
        return None
    if re.search(r"^[ \t]*" + r + r"\s*(?::[^=\n]*)?=(?!=)", code, re.M):
        return None
    if func_text and re.search(r"\b" + r + r"\b\s*(?:=(?!=)|,[^\n]*=)|\bfor\b[^\n]*\b" + r + r"\b|def\s+\w+\([^)]*\b" + r + r"\b", func_text):
        return None
    return _digest("import", path, tuple(binding), expr)


_CALLEE = re.compile(r"([^\W\d][\w]*(?:\.[^\W\d]\w*)*)\s*\($")


def signature_key(path: str | None, before: str, after: str) -> str | None:
    """A key such that equal keys give equal jedi signatures for the call whose '(' ends ``before``."""
    import builtins

    m = _plain_tail(before, _CALLEE)
    if not m:
        return None
    callee = m.group(1)
    code = before + after
    if "." in callee:
        obj, name = callee.rsplit(".", 1)
        cut = len(before) - (len(m.group(0)) - len(obj)) + 1  # just after the dot before ``name``
        k = member_key(path, before[:cut], before[cut:] + after)
        return None if k is None else _digest("sig-member", k, name)
    name = callee
    r = re.escape(name)
    defs = list(re.finditer(r"^((?:[ \t]*@[^\n]*\n)*)def\s+" + r + r"\s*\((?:[^()]|\([^()]*\))*\)[^:\n]*:", code, re.M))
    assigned = re.search(r"^[ \t]*" + r + r"\s*(?::[^=\n]*)?=(?!=)|^[ \t]*class\s+" + r + r"\b", code, re.M)
    func = _enclosing(code, len(before), _DEF_HEADER)
    if func is not None and re.search(r"\b" + r + r"\b\s*=(?!=)|def\s+\w+\([^)]*\b" + r + r"\b", code[func[0] : len(before)]):
        return None
    imports = [i.group(0).strip() for i in _IMPORT.finditer(code) if _indent(i.group(0)) == 0]
    binding = [i for i in imports if re.search(r"(?:^import\s+|,\s*|\bas\s+|import\s+\(?)\s*" + r + r"\b", i)]
    if len(defs) == 1 and not assigned and not binding and not defs[0].group(0).startswith((" ", "\t")):
        return _digest("sig-def", path, defs[0].group(0))
    if defs or assigned:
        return None
    if binding:
        return _digest("sig-import", path, tuple(binding), name)
    if hasattr(builtins, name):
        return _digest("sig-builtin", name)
    return None


def class_signature_by_name(code: str, name: str, pos: int | None = None) -> str | None:
    """The signature of the one class called ``name`` in ``code`` (None: absent or ambiguous).

    With ``pos``, the statement being written at ``pos`` is left out (it defines nothing yet).
    """
    found = [m for m in _CLASS.finditer(code) if m.group(2) == name]
    if len(found) != 1:
        return None
    skip = (0, 0)
    if pos is not None:
        ls = code.rfind("\n", 0, pos) + 1
        le = code.find("\n", pos)
        skip = (ls, le if le >= 0 else len(code))
    sig = _class_signature(code, found[0], 0, {name}, skip)
    return None if sig is None else _digest("class", sig)
