"""Semantic cache keys: when two analyses must give the same answer, without running jedi.

A jedi member analysis costs 30-60 ms on a 2,000-line file, and every keystroke makes a new
document. But the members of ``self.`` in class ``C`` only change when C's definitions change
(its class-level statements, the attributes its methods assign on ``self``, its bases), and the
members of ``os.path.`` only when the import that binds ``os`` changes. These functions compute,
lexically and in well under a millisecond, a key that captures those inputs; equal keys mean
equal analyses (``tests/test_semantic_keys.py`` checks that over editor-like edits).

Every scan over-approximates what jedi reads. A class's key holds its class-level lines and,
verbatim, every method line that may define an attribute on the method's first parameter
(``self.x, self.y = …``, ``self.x: int``, ``self.x += 1``, ``for self.x in``, ``with … as
self.x``; an unfinished ``self.x =`` is a different line from ``self.x = 1``, and jedi answers
differently for the two), with every line that can change whether such a line parses as a
statement (open brackets and backslashes, triple quotes, block openers, odd indentation) and
whether each ``def`` has a body. A name bound by anything but a module-level import (an
assignment, a loop, a parameter, an import inside a block) is not keyed at all, nor is a
trigger that may sit inside a triple-quoted string. A key that changes more often than needed
only costs a jedi run; one that changes too rarely answers with a stale set.

When the key cannot be made safely (a local variable, a name rebound anywhere, a decorated
function, anything unusual) the functions return None and the caller runs jedi.
"""

from __future__ import annotations

import bisect
import builtins
import functools
import hashlib
import re

__all__ = ["class_signature_by_name", "dotted_expression", "member_key", "signature_key"]

_NAME = r"[^\W\d]\w*"
_DOTTED_TAIL = re.compile(r"(" + _NAME + r"(?:\." + _NAME + r")*)\.$")
_CLASS = re.compile(r"^([ \t]*)class\s+(" + _NAME + r")\s*(\([^)]*\))?\s*:", re.M)
#: a module-level import statement, searched for in "\n" + code (a literal first: a fast search)
_MODULE_IMPORT = re.compile(r"\n(import\s+[^\n]+|from\s+\S+\s+import\s+(?:\([^)]*\)|[^\n]+))")
_STAR_IMPORT = re.compile(r"^from\s+\S+\s+import\s+\*", re.M)
#: ``root.attr`` (not itself an attribute of something: ``a.self.x`` has no root ``self``)
_ATTR = re.compile(r"(?<![\w.])(" + _NAME + r")\s*\.\s*(" + _NAME + r")")
#: the ``=`` of an assignment or an augmented assignment (not ``==``, ``<=``, ``>=``, ``!=``)
_ASSIGN_OP = re.compile(r"(?:>>|<<|\*\*|//)=|(?<![=<>!])=(?!=)")
_ANNOTATION = re.compile(r"[^\W\d][\w.]*\s*:(?!=)")
_FIRST_PARAM = re.compile(r"(?:async\s+)?def\s+\w+\s*\(\s*(" + _NAME + r")")
_MAX_DEPTH = 4  # base classes followed in the document; deeper hierarchies get no key


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


def _in_triple_string(before: str) -> bool:
    """Whether the text may end inside a triple-quoted string (an odd count of either quote):
    the trigger is then string content to jedi, whatever the keys below say."""
    return before.count('"""') % 2 == 1 or before.count("'''") % 2 == 1


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(repr(p).encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


# ---- what a line may define -------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _target_text(line: str) -> str:
    """The part of a physical line that may hold assignment targets (over-approximated): before
    the last ``=`` outside brackets, an annotation's target, or the whole line for ``for``,
    ``with``, ``… as``, ``del`` and a line that starts a bracketed or starred target list."""
    s = line.strip()
    if s.startswith(("for ", "async ", "with ", "del ")) or " as " in s or " for " in s:
        return s
    last = -1
    for m in _ASSIGN_OP.finditer(s):
        p = s[: m.start()]
        if p.count("(") + p.count("[") + p.count("{") <= p.count(")") + p.count("]") + p.count("}"):
            last = m.start()
    if last >= 0:
        return s[:last]
    m = _ANNOTATION.match(s)
    if m:
        return m.group()
    return s if s[:1] in "([*" else ""


@functools.lru_cache(maxsize=1 << 16)
def _defined_attrs(line: str) -> tuple[tuple[str, str], ...]:
    """(root, attribute) pairs a line may define (``self.x`` in ``self.x, self.y = …``)."""
    if "." not in line:
        return ()
    target = _target_text(line)
    return tuple(_ATTR.findall(target)) if "." in target else ()


@functools.lru_cache(maxsize=1024)
def _bare(name: str) -> re.Pattern[str]:
    """``name`` used as a plain name that something could bind (not ``x.name``, ``name.x``,
    ``name(`` or ``name[``)."""
    return re.compile(r"(?<![\w.])" + re.escape(name) + r"(?!\w)(?!\s*[.(\[])")


@functools.lru_cache(maxsize=1024)
def _occurrence(name: str) -> re.Pattern[str]:
    # the name first: a pattern that starts with a literal is searched for by the literal
    return re.compile(re.escape(name) + r"(?!\w)(?<![\w.]" + re.escape(name) + r")")


def _classes_named(code: str, name: str) -> list[re.Match[str]]:
    """The ``class name…:`` headers in ``code`` (``_CLASS`` matches at their line starts)."""
    out = []
    for m in re.finditer(r"class\s+" + re.escape(name) + r"\b", code):
        ls = code.rfind("\n", 0, m.start()) + 1
        cm = _CLASS.match(code, ls)
        if cm is not None and cm.group(2) == name and cm.start(2) == m.end() - len(name):
            out.append(cm)
    return out


def _binds(line: str, name: str) -> bool:
    """May this line (not a module-level import) bind ``name``? Over-approximated: an
    assignment or loop target, ``as name``, a ``def``/``class``/``lambda`` or parameter,
    ``name :=``, ``del name``, an import inside a block, a line of parameters."""
    s = line.strip()
    if not s or s[0] == "#":
        return False
    n = re.escape(name)
    if re.match(r"(?:from|import)\b", s):
        return bool(_occurrence(name).search(s))
    if re.search(r"\b(?:def|class)\s+" + n + r"\b", s):
        return True
    if (s.startswith(("def ", "async def ")) or "lambda" in s) and _bare(name).search(s):
        return True  # a parameter
    if _bare(name).search(_target_text(line)):
        return True
    return bool(re.search(r"(?<![\w.])" + n + r"\s*:=", s) or re.match(r"\*{0,2}" + n + r"\s*[:=,)]", s))


def _string_spans(code: str) -> list[int]:
    """Where triple-quoted strings start and end, flattened (``[start0, end0, start1, …]``; an
    unclosed one ends at the end of ``code``): a name inside one binds nothing."""
    out: list[int] = []
    pos = 0
    while True:
        m = _TRIPLE.search(code, pos)
        if m is None:
            return out
        close = code.find(m.group(0), m.end())
        end = len(code) if close < 0 else close + 3
        out += [m.start(), end]
        pos = end


def _visible_at(code: str, line_start: int, line: str, name: str, pos: int) -> bool:
    """Whether a binding of ``name`` on the line at ``line_start`` can be what ``name`` means at
    ``pos``: it binds in the scope of the innermost function around it (its own, for a
    ``def``'s parameter), which only code inside that function sees; any other scope counts."""
    stripped = line.strip()
    own_def = stripped.startswith(("def ", "async def ")) and not re.match(
        r"(?:async\s+)?def\s+" + re.escape(name) + r"\b", stripped
    )
    if own_def:
        start, indent = line_start, _indent(line)
    else:
        scope = _enclosing(code, line_start + _indent(line) + 1, _DEF_HEADER)
        if scope is None:
            return True
        start, indent = scope[0], _indent(scope[1].group(0))
    return start <= pos < _block_end(code, start, indent)


def _bindings(code: str, name: str, pos: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the module-level import statements that bind ``name``, with the star imports that may;
    the other lines that may bind what ``name`` means at ``pos``: anywhere but in a function
    that does not hold ``pos``, unless a ``global``/``nonlocal`` names it; not inside
    triple-quoted strings)."""
    spans, stars = _module_imports(code)
    binding = re.compile(r"(?:^import\s+|,\s*|\bas\s+|import\s+\(?)\s*" + re.escape(name) + r"\b")
    declared = ("global" in code or "nonlocal" in code) and re.search(
        r"(?:global|nonlocal)\b[^\n]*(?<![\w.])" + re.escape(name) + r"(?!\w)", code
    )
    strings = _string_spans(code)
    imports: list[str] = []
    others: list[str] = []
    seen_lines: set[int] = set()
    k = 0
    for m in _occurrence(name).finditer(code):
        while k < len(spans) and spans[k][1] <= m.start():
            k += 1
        if k < len(spans) and spans[k][0] <= m.start() < spans[k][1]:
            stmt = spans[k][2]
            if binding.search(stmt) and stmt not in imports:
                imports.append(stmt)
            continue
        if bisect.bisect_right(strings, m.start()) % 2:
            continue  # string content
        ls = code.rfind("\n", 0, m.start()) + 1
        if ls in seen_lines:
            continue
        seen_lines.add(ls)
        le = code.find("\n", m.start())
        line = code[ls : le if le >= 0 else len(code)]
        if _binds(line, name) and (declared or _visible_at(code, ls, line, name, pos)):
            others.append(line.strip())
    return tuple(imports) + stars, tuple(others)


@functools.lru_cache(maxsize=4)
def _module_imports(code: str) -> tuple[tuple[tuple[int, int, str], ...], tuple[str, ...]]:
    """((start, end, statement) of every module-level import; the star imports)."""
    spans = tuple((m.start(1) - 1, m.end(1) - 1, m.group(1).strip()) for m in _MODULE_IMPORT.finditer("\n" + code))
    return spans, tuple(stmt for _, _, stmt in spans if _STAR_IMPORT.match(stmt))


def _import_binding(code: str, name: str, pos: int) -> tuple[str, ...] | None:
    """The import statements ``name`` comes from at ``pos``, when module-level imports are all
    that may bind it there (None: something else may, or nothing does)."""
    imports, others = _bindings(code, name, pos)
    if others or not any(not _STAR_IMPORT.match(i) for i in imports):
        return None
    return imports


# ---- classes ------------------------------------------------------------------------------------

_DEF_HEADER = re.compile(r"[ \t]*(?:async\s+)?def\s+\w+\s*\(")
_CLASS_HEADER = re.compile(r"([ \t]*)class\s+(" + _NAME + r")\s*(\([^)]*\))?\s*:")


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


_TRIPLE = re.compile(r"\"\"\"|'''")
_ONE_LINE_STRING = re.compile(r"""[rRbBuUfF]{0,2}(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')""")


_SPECIAL = re.compile(r"[()\[\]{}'\"\\#:]")


def _brackets(line: str) -> tuple[int, int]:
    """(open minus closed brackets in the line's code, strings and comment removed; the same
    counted over the raw line)."""
    raw = line.count("(") + line.count("[") + line.count("{") - line.count(")") - line.count("]") - line.count("}")
    if "'" not in line and '"' not in line and "#" not in line:
        return raw, raw
    code = _ONE_LINE_STRING.sub('""', line) if "'" in line or '"' in line else line
    hash_at = code.find("#")
    if hash_at >= 0:
        code = code[:hash_at]
    return code.count("(") + code.count("[") + code.count("{") - code.count(")") - code.count("]") - code.count("}"), raw


@functools.lru_cache(maxsize=64)
def _class_body(body: str) -> tuple[tuple[object, ...], frozenset[str]]:
    """(what jedi's members of the class read of its body; the names its methods' first
    parameters have).

    Kept verbatim: every class-level line (statements, method headers and decorators, nested
    class headers) with whether an indented block follows its statement (a ``def`` without a
    body is no function to parso); and, in method bodies, every line that may define an
    attribute on a method's first parameter, with anything that can change whether it is
    parsed as a statement: the lines of an unclosed bracket or a backslash continuation, lines
    with triple quotes, block openers, and lines whose indentation the tokenizer would not take
    as given. The other method-body lines (plain statements, balanced, at a legal indentation)
    are left out: typing in them leaves the key as it is."""
    lines = [line for line in body.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return (), frozenset({"self", "cls"})
    member_indent = _indent(lines[0])
    roots = {"self", "cls"}
    for line in lines:
        if _indent(line) <= member_indent:
            m = _FIRST_PARAM.match(line.strip())
            if m:
                roots.add(m.group(1))
    kept: list[object] = []
    open_brackets = 0  # brackets (or a backslash) the lines above left open
    in_string = False  # inside a triple-quoted string
    member_stmt = False  # the current logical line started at class level
    indents = [member_indent]  # the tokenizer's indentation stack, as far as it can be told
    opener = False  # the previous line opens a block
    for i, line in enumerate(lines):
        ind = _indent(line)
        continued = open_brackets > 0 or in_string
        plain = _SPECIAL.search(line) is None  # no bracket, quote, backslash, colon or comment
        triples = 0 if plain else len(_TRIPLE.findall(line))
        balance, raw = (0, 0) if plain or (in_string and not triples) else _brackets(line)
        if not continued:
            member_stmt = ind <= member_indent
            if opener and ind > indents[-1]:
                indents.append(ind)
            else:
                while len(indents) > 1 and ind < indents[-1]:
                    indents.pop()
        legal = continued or ind == indents[-1]
        stripped = line.strip()
        code_end = stripped
        if not plain and ("'" in stripped or '"' in stripped or "#" in stripped):
            code_end = _ONE_LINE_STRING.sub('""', stripped).split("#", 1)[0].rstrip()
        if member_stmt and not continued:
            # a class-level statement: and whether an indented block follows it
            j = i + 1
            depth = balance
            while j < len(lines) and (depth > 0 or lines[j - 1].rstrip().endswith("\\")):
                depth += _brackets(lines[j])[0]
                j += 1
            kept.append((line, j < len(lines) and _indent(lines[j]) > member_indent))
        elif (
            member_stmt
            or continued
            or not legal
            or triples
            or balance
            or raw
            or code_end.endswith((":", "\\"))
            or any(root in roots for root, _ in _defined_attrs(line))
        ):
            kept.append(line)
        if triples % 2:
            in_string = not in_string
        if not in_string:
            open_brackets = max(0, open_brackets + balance) if not code_end.endswith("\\") else max(1, open_brackets)
        opener = not in_string and open_brackets == 0 and code_end.endswith(":")
    return tuple(kept), frozenset(roots)


def _class_signature(code: str, m: re.Match[str], depth: int, seen: set[str]) -> tuple | None:
    """What jedi's members of an instance of this class depend on (None: too dynamic to key)."""
    indent = len(m.group(1))
    end = _block_end(code, m.end(), indent)
    body = code[m.end() : end]
    if re.search(r"^[ \t]+(?:if|try|for|while|with|match)\b", body, re.M) and _conditional_members(body):
        return None
    members, _ = _class_body(body)
    bases_text = (m.group(3) or "").strip()
    bases = []
    context = []
    for name in dict.fromkeys(re.findall(r"(?<![\w.])" + _NAME, bases_text)):
        found = _classes_named(code, name)
        if not found:  # imported, a builtin, or bound some other way
            imports, others = _bindings(code, name, m.start())
            if others:
                return None
            context.append((name, imports))
            continue
        if len(found) > 1 or found[0].group(1) or _bindings(code, name, m.start())[1] != (found[0].group(0).strip(),):
            return None  # defined twice, in a block, or bound some other way too
        if name in seen:
            continue
        if depth >= _MAX_DEPTH:
            return None
        seen.add(name)
        base_sig = _class_signature(code, found[0], depth + 1, seen)
        if base_sig is None:
            return None
        bases.append((name, base_sig))
    return (m.group(2), bases_text, members, tuple(bases), tuple(context))


def _conditional_members(body: str) -> bool:
    """True when definitions sit under if/try/for/... at the class's member level."""
    member_indent = None
    for line in body.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ind = _indent(line)
        if member_indent is None:
            member_indent = ind
        if ind == member_indent and re.match(r"[ \t]*(if|try|for|while|with|match)\b", line):
            return True
    return False


def _decorated_header(code: str, def_start: int) -> str:
    """The ``def`` line at ``def_start`` with the decorator lines right above it."""
    end = code.find("\n", def_start)
    start = def_start
    while start > 0:
        prev = code.rfind("\n", 0, start - 1) + 1
        if not code[prev : start - 1].lstrip().startswith("@"):
            break
        start = prev
    return code[start : end if end >= 0 else len(code)].strip()


def member_key(path: str | None, before: str, after: str) -> str | None:
    """A key such that equal keys give equal jedi member sets after ``before``'s trailing dot."""
    expr = dotted_expression(before)
    if expr is None or _in_triple_string(before):
        return None
    code = before + after
    pos = len(before)
    root, *chain = expr.split(".")
    func = _enclosing(code, pos, _DEF_HEADER)
    if root in ("self", "cls"):
        return _self_key(path, code, pos, expr, func)
    # a name bound by module-level imports only
    binding = _import_binding(code, root, pos)
    if binding is None:
        return None
    return _digest("import", path, binding, expr)


def _self_key(path: str | None, code: str, pos: int, expr: str, func) -> str | None:
    root, *chain = expr.split(".")
    if func is None:
        return None
    cls = _enclosing(code, func[0] + 1, _CLASS_HEADER, below_indent=_indent(func[1].group(0)))
    if cls is None:
        return None
    cls_start, _ = cls
    m = _CLASS.match(code, cls_start)
    if m is None:
        return None
    header_end = code.find("\n", func[0])
    if any(_binds(line, root) for line in code[header_end + 1 : pos].split("\n")):
        return None  # ``self`` rebound in the function: all bets are off
    sig = _class_signature(code, m, 0, {m.group(2)})
    if sig is None:
        return None
    header = _decorated_header(code, func[0])
    if not chain:
        return _digest("self", path, sig, expr, header)
    # self.a.: the type of ``a`` is what jedi infers for every definition of it in the class,
    # each in the context of its method, through anything outside the class
    class_end = _block_end(code, m.end(), len(m.group(1)))
    body = code[m.end() : class_end]
    _, roots = _class_body(body)
    methods = []
    for dm in re.finditer(r"^([ \t]*)(?:async\s+)?def\s", body, re.M):
        method_end = _block_end(body, dm.end(), len(dm.group(1)))
        text = body[dm.start() : method_end]
        lines = [line for line in text.split("\n") if (root, chain[0]) in _defined_attrs(line)]
        if not lines:
            continue
        for line in lines:
            if any(r in roots and a != chain[0] for r, a in _ATTR.findall(line)) or re.search(r"\bsuper\s*\(", line):
                return None  # typed by another member, whose body the key does not hold
        methods.append(text)
    outside = code[: m.start()] + code[class_end:]
    return _digest("self-chain", path, sig, expr, header, tuple(methods), outside)


# ---- calls ----------------------------------------------------------------------------------------

_CALLEE = re.compile(r"(" + _NAME + r"(?:\." + _NAME + r")*)\s*\($")


def signature_key(path: str | None, before: str, after: str) -> str | None:
    """A key such that equal keys give equal jedi signatures for the call whose '(' ends ``before``."""
    m = _plain_tail(before, _CALLEE)
    if not m or _in_triple_string(before):
        return None
    callee = m.group(1)
    code = before + after
    if "." in callee:
        obj, name = callee.rsplit(".", 1)
        cut = len(before) - (len(m.group(0)) - len(obj)) + 1  # just after the dot before ``name``
        k = member_key(path, before[:cut], before[cut:] + after)
        return None if k is None else _digest("sig-member", k, name)
    name = callee
    imports, others = _bindings(code, name, len(before))
    explicit = tuple(i for i in imports if not _STAR_IMPORT.match(i))
    if not others:
        if explicit:
            return _digest("sig-import", path, imports, name)
        if not imports and hasattr(builtins, name):
            return _digest("sig-builtin", name)
        return None
    if imports or len(others) != 1:
        return None
    # one function defined at module level, not decorated, not forwarding *args / **kwargs
    # (jedi then shows what it forwards to): its header is its signature
    r = re.escape(name)
    defs = list(re.finditer(r"^(@[^\n]*\n)?def\s+" + r + r"\s*\((?:[^()]|\([^()]*\))*\)[^:\n]*:", code, re.M))
    if len(defs) != 1 or defs[0].group(1) or "*" in defs[0].group(0):
        return None
    if others[0] != code[defs[0].start() : code.find("\n", defs[0].start())].strip():
        return None
    return _digest("sig-def", path, defs[0].group(0), _has_body(code, defs[0].end()))


def _has_body(code: str, colon_end: int) -> bool:
    """Whether a module-level block header whose ``:`` ends at ``colon_end`` has a body (on its
    line, or an indented line below it): a ``def`` without one is no function to parso."""
    nl = code.find("\n", colon_end)
    rest = code[colon_end : nl if nl >= 0 else len(code)].split("#", 1)[0]
    if rest.strip():
        return True
    for line in code[nl + 1 :].split("\n") if nl >= 0 else ():
        if line.strip() and not line.lstrip().startswith("#"):
            return _indent(line) > 0
    return False


def class_signature_by_name(code: str, name: str) -> str | None:
    """The signature of the one class called ``name`` in ``code`` (None: absent or ambiguous):
    equal signatures, equal members of the class and of its instances."""
    found = _classes_named(code, name)
    if len(found) != 1:
        return None
    sig = _class_signature(code, found[0], 0, {name})
    return None if sig is None else _digest("class", sig)
