"""jedi, in-process: the static analysis behind the Python monitors.

Every query takes the code to analyse and answers at its *end* (the monitors cut the document at
the trigger and append what follows the cursor's line). Results are plain, immutable data. All
calls must run on the ``AnalysisRunner`` thread: jedi is not thread-safe.
"""

from __future__ import annotations

import hashlib
import inspect
import keyword
import logging
import os
import re
import site
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .. import version_gate
from . import parso_patches
from .semantic_keys import class_signature_by_name

log = logging.getLogger(__name__)

__all__ = ["WARM_MEMBERS", "JediAnalyzer", "Param", "Signature"]

POSITIONAL_ONLY = "POSITIONAL_ONLY"
POSITIONAL_OR_KEYWORD = "POSITIONAL_OR_KEYWORD"
VAR_POSITIONAL = "VAR_POSITIONAL"
KEYWORD_ONLY = "KEYWORD_ONLY"
VAR_KEYWORD = "VAR_KEYWORD"

PY_KEYWORDS = frozenset(keyword.kwlist) | frozenset(getattr(keyword, "softkwlist", ()))
MODULE_DUNDERS = frozenset(
    {"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__", "__debug__", "__path__"}
)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    has_default: bool


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]


_STATE_REUSE = 64
_SHARE_STATE = os.environ.get("STEERCODE_JEDI_SHARED_STATE") == "1"
_LIBRARY_ROOTS = tuple(
    os.path.abspath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} | set(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
)


def _is_library(path: str) -> bool:
    """Installed code (stdlib, site-packages, typeshed inside jedi): it does not change under us."""
    p = os.path.abspath(path)
    return p.startswith(_LIBRARY_ROOTS) or "/typeshed/" in p


class _SharedStateScript:
    """``jedi.Script`` built on an existing InferenceState (see JediAnalyzer._script)."""

    def __new__(cls, code: str, path: str | None, project, state):
        import parso
        from jedi import cache, settings
        from jedi.api import Script

        script = Script.__new__(Script)
        script._orig_path = path
        script.path = Path(path).absolute() if path else None
        script._inference_state = state
        script._module_node, code = state.parse_and_get_code(
            code=code,
            path=script.path,
            use_latest_grammar=bool(path) and str(path).endswith(".pyi"),
            cache=False,
            diff_cache=settings.fast_parser,
            cache_path=settings.cache_directory,
        )
        script._code_lines = parso.split_lines(code, keepends=True)
        script._code = code
        cache.clear_time_caches()
        return script


_MISSING = object()
#: expressions whose members the warm-up caches by type, one analysis each: the builtin types
#: and modules code uses most (the first ``lines.`` of a session costs 100-250 ms otherwise)
WARM_MEMBERS = (
    "''.", "b''.", "s = str()\ns.", "x = []\nx.", "d = {}\nd.", "t = ()\nt.", "st = set()\nst.", "n = 0\nn.",
    "import os\nos.", "import os\nos.path.", "import sys\nsys.", "import re\nre.",
)
_MEMBER_CALL = re.compile(r"\.([^\W\d]\w*)\($")


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def _remember(cache: OrderedDict, key: str, value: object, size: int = 16) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _end_position(code_before: str) -> tuple[int, int]:
    line = code_before.count("\n") + 1
    col = len(code_before) - (code_before.rfind("\n") + 1)
    return line, col


def _leaf_before_dot(script, line: int, col: int):
    """The parse leaf that ends just before the ``.`` at (line, col - 1), or None."""
    leaf = script._module_node.get_leaf_for_position((line, col - 1))
    if leaf is not None and leaf.type == "operator" and leaf.value == ".":
        leaf = leaf.get_previous_leaf()
    return leaf if leaf is not None and leaf.end_pos == (line, col - 1) else None


def _literal_type_key(script, line: int, col: int):
    """The type key of a string literal that ends just before the ``.`` at (line, col - 1):
    ``', '.`` and ``b''.`` have the members of str and bytes whatever the document says."""
    leaf = _leaf_before_dot(script, line, col)
    if leaf is None:
        return None
    if leaf.type == "fstring_end":
        return ("literal", "str")
    if leaf.type == "string":
        prefix = leaf.value[: len(leaf.value) - len(leaf.value.lstrip("rRbBuU"))]
        return ("literal", "bytes" if "b" in prefix.lower() else "str")
    return None


def _display_kind(script, line: int, col: int) -> str | None:
    """``list``, ``dict`` or ``set`` when the expression before the ``.`` at (line, col - 1) is
    a plain name whose every binding in its function is a display of that kind (``parts =
    [header]``): such a name has that type's members, whatever its elements are. jedi infers a
    list's element types before it gives the list (``parts.`` after ``parts = [action_header]``
    in argparse.py: 220-380 ms). None when unsure: another binding in the function (a
    parameter, a ``for`` target, ``+=``, an annotation, a call), ``global``/``nonlocal``/``del``,
    a name bound in no function, or no binding before the cursor."""
    leaf = _leaf_before_dot(script, line, col)
    if leaf is None or leaf.type != "name":
        return None
    prev = leaf.get_previous_leaf()
    if prev is not None and prev.type == "operator" and prev.value == ".":
        return None  # ``a.parts.``: an attribute, not a local
    scope = _scope_of(leaf)
    if scope is None or scope.type != "funcdef":
        return None
    kinds = set()
    before_cursor = False
    for name in script._module_node.get_used_names().get(leaf.value, ()):
        if not (scope.start_pos <= name.start_pos < scope.end_pos):
            continue
        parent = name.parent
        if parent.type in ("global_stmt", "nonlocal_stmt", "del_stmt"):
            return None
        if name is leaf or not name.is_definition(include_setitem=False):
            continue
        if _scope_of(name) is not scope:
            continue  # a nested function's or class's own name
        kind = _display_of(name)
        if kind is None:
            return None
        kinds.add(kind)
        before_cursor = before_cursor or name.start_pos < leaf.start_pos
    return kinds.pop() if len(kinds) == 1 and before_cursor else None


def _scope_of(node):
    """The function, lambda, class or module whose names ``node`` belongs to (comprehensions
    count as the function around them: a name they bind makes ``_display_of`` give up)."""
    node = node.parent
    while node is not None and node.type not in ("funcdef", "lambdef", "classdef", "file_input"):
        node = node.parent
    return node


def _display_of(name) -> str | None:
    """The kind of display a plain ``name = <display>`` binds, else None."""
    stmt = name.parent
    if stmt.type != "expr_stmt" or len(stmt.children) != 3 or stmt.children[0] is not name:
        return None
    if stmt.children[1].type != "operator" or stmt.children[1].value != "=":
        return None
    rhs = stmt.children[2]
    if rhs.type != "atom" or rhs.children[0].type != "operator":
        return None
    opening = rhs.children[0].value
    if opening == "[":
        return "list"
    if opening != "{":
        return None
    if len(rhs.children) == 2:
        return "dict"  # ``{}``
    inner = rhs.children[1]
    if inner.type == "dictorsetmaker":  # two children at least
        head = inner.children[:2]
        if any(c.type == "operator" and c.value in (":", "**") for c in head):
            return "dict"  # ``{k: v, ...}``, ``{**d}``, ``{k: v for ...}``
        if head[0].type == "star_expr" or head[1].type in ("operator", "sync_comp_for", "comp_for"):
            return "set"  # ``{a, b}``, ``{*xs, 1}``, ``{x for ...}``
        return None
    return "set" if inner.type != "operator" else None  # ``{a}``


_DISPLAY_CODE = {"list": "x = []\nx.", "dict": "d = {}\nd.", "set": "st = set()\nst."}


def _signatures(sigs) -> tuple[Signature, ...] | None:
    """jedi signatures as plain data; None when there are none, or when one of them is a guess
    (a call must fit one of the overloads: judging by the others could reject a right call)."""
    out = []
    for s in sigs:
        params = _params(s)
        if params is None:
            return None
        out.append(Signature(name=s.name, params=params))
    return tuple(out) or None


def _params(sig) -> tuple[Param, ...] | None:
    """The parameters a call of ``sig`` must fit, or None when jedi's are a guess:
    - a class whose ``__new__`` comes before any ``__init__`` in its MRO (``float('inf')``):
      jedi reads only ``__init__`` and would find ``object()``'s empty one;
    - a function that forwards ``*args``/``**kwargs``: jedi shows the callee's parameters
      instead, and misses what the function does with them first (argparse's
      ``add_argument_group`` fills required ones with ``kwargs.setdefault``). The function's
      own parameters are what the call must fit."""
    inner = getattr(sig, "_signature", None)  # jedi's internal signature (jedi 0.19)
    try:
        if sig.type == "class" and _new_before_init(inner.value):
            return None
        declared = inner.get_param_names(resolve_stars=False)
        stars = {(p.string_name, p.get_kind()) for p in declared if p.get_kind() in _STARS}
        if stars - {(p.name, p.kind) for p in sig.params}:
            return tuple(Param(p.string_name, p.get_kind().name, _declared_default(p)) for p in declared)
    except Exception:
        log.debug("jedi signature internals not as expected", exc_info=True)
        return None
    return tuple(Param(p.name, p.kind.name, _has_default(p.description)) for p in sig.params)


_STARS = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def _new_before_init(cls) -> bool:
    for c in cls.py__mro__():
        node = getattr(c, "tree_node", None)
        if node is None or node.type != "classdef":
            continue
        defined = {f.name.value for f in node.iter_funcdefs()}
        if "__init__" in defined:
            return False
        if "__new__" in defined:
            return True
    return False


def _declared_default(param_name) -> bool:
    node = getattr(param_name, "default_node", _MISSING)  # a tree parameter's ``= value``
    return _has_default(param_name.to_string()) if node is _MISSING else node is not None


def _has_default(description: str) -> bool:
    # jedi describes parameters as "param name", "param name=1", "param name: T=..."
    rest = description.split(":", 1)[1] if ":" in description else description
    return "=" in rest


class JediAnalyzer:
    """Members, scope names, import names and call signatures at a position."""

    def __init__(self, root: str | None = None, *, dynamic_params: bool = False) -> None:
        import jedi  # imported lazily: only Python monitors need it

        parso_patches.install()
        self._jedi = jedi
        # jedi infers un-annotated parameters from every call site in the module, and list
        # contents from every .append: 200-700 ms on a 2,000-line file. Monitors answer "no
        # opinion" for such parameters instead (element types of lists are rarely needed).
        self.dynamic_params = dynamic_params
        self._projects: dict[str, object] = {}
        self._default_root = root
        self._lock = threading.Lock()
        self._states: dict[int, list] = {}
        self._type_cache: dict = {}
        self.type_hits = 0
        # per member trigger (digest of the code up to the dot): its inferred type, and the jedi
        # completions when a full completion ran -- so ``obj.name(`` finds name's signature
        # without parsing the document again
        self._dot_types: OrderedDict[str, object] = OrderedDict()
        self._dot_completions: OrderedDict[str, dict] = OrderedDict()
        # list/dict/set: the type key of a display of that kind; and for such a key, the code
        # that shows one (its members are completed there, not through the document's names)
        self._display_keys: dict[str, object] = {}
        self._display_codes: dict[object, str] = {}

    def _project(self, path: str | None):
        key = self._default_root or (os.path.dirname(path) if path else os.getcwd())
        proj = self._projects.get(key)
        if proj is None:
            if self._default_root:
                proj = self._jedi.Project(self._default_root)
            else:  # the enclosing project (.git, setup.py, pyproject.toml ...) of the file
                proj = self._jedi.get_default_project(key)
            self._projects[key] = proj
        return proj

    def _script(self, code: str, path: str | None):
        """A jedi Script sharing one inference state per project between requests.

        jedi builds a fresh InferenceState per Script, so every request re-infers builtins,
        typeshed stubs and imported modules; sharing it keeps those warm. The state is renewed
        every ``_STATE_REUSE`` scripts (its memo caches hold on to old parse trees).
        """
        project = self._project(path)
        self._jedi.settings.dynamic_params = self.dynamic_params
        self._jedi.settings.dynamic_params_for_other_modules = self.dynamic_params
        self._jedi.settings.dynamic_array_additions = self.dynamic_params
        if not _SHARE_STATE or not version_gate.exact(
            "jedi", "the shared InferenceState (STEERCODE_JEDI_SHARED_STATE)", "a fresh jedi.Script per analysis"
        ):
            return self._jedi.Script(code, path=path, project=project)
        state = self._states.get(id(project))
        if state is None or state[1] >= _STATE_REUSE:
            from jedi.inference import InferenceState

            state = [InferenceState(project, environment=None, script_path=None), 0]
            self._states[id(project)] = state
        state[1] += 1
        return _SharedStateScript(code, path, project, state[0])

    def _type_key(self, values, code: str, path: str | None):
        """A cache key for the members/signatures of what ``values`` are (None: do not cache)."""
        parts = []
        for v in values:
            fn = v.full_name
            if not fn:
                return None
            mp = str(v.module_path) if v.module_path else None
            in_document = mp is None or (path is not None and os.path.abspath(mp) == os.path.abspath(path))
            if in_document and v.module_name in ("builtins", "typing"):
                in_document = False
            if in_document:
                # defined in the document being edited: key by what jedi reads of it
                if v.type not in ("instance", "class"):
                    return None
                sig = class_signature_by_name(code, fn.rsplit(".", 1)[-1])
                if sig is None:
                    return None
                parts.append((v.type, fn, sig))
            elif mp is not None and not _is_library(mp):
                try:
                    parts.append((v.type, fn, mp, os.path.getmtime(mp)))
                except OSError:
                    return None
            else:
                parts.append((v.type, fn, mp))
        return tuple(sorted(parts, key=repr)) if parts else None

    def _expression_type_key(self, script, before: str, after: str, path: str | None):
        """The type key (see ``_type_key``) of the expression that ends just before the last
        character of ``before`` (the ``.`` or ``(`` being analysed); None when unknown."""
        line, col = _end_position(before)
        if col < 2:
            return None
        try:
            kind = _display_kind(script, line, col)
            if kind is not None:
                key = self._display_key(kind)
                if key is not None:
                    return key
            values = script.infer(line, col - 1)
            if not values:  # jedi infers no value for a literal: ``', '.``
                return _literal_type_key(script, line, col)
            return self._type_key(values, before + after, path)
        except Exception:
            return None

    def _display_key(self, kind: str):
        """The type key jedi gives a ``kind`` display (the same key its own inference gives
        one, so the members the warm-up cached under it are found)."""
        if kind not in self._display_keys:
            code = _DISPLAY_CODE[kind]
            line, col = _end_position(code)
            script = self._script(code + "\n", None)
            try:
                key = self._type_key(script.infer(line, col - 1), code, None)
            except Exception:
                log.debug("no type key for a %s display", kind, exc_info=True)
                key = None
            self._display_keys[kind] = key
            if key is not None:
                self._display_codes[key] = code
        return self._display_keys[kind]

    def _store_type(self, key, value) -> None:
        if len(self._type_cache) > 2048:
            self._type_cache.clear()
        self._type_cache[key] = value

    # ---- queries (code = text before the position + "\n" + what follows the cursor line) ----
    def completions(self, before: str, after: str, path: str | None) -> list:
        line, col = _end_position(before)
        return self._script(before + after, path).complete(line, col)

    def members(self, before: str, after: str, path: str | None) -> frozenset[str] | None:
        """Attribute names after ``expr.`` at the end of ``before``; None when unknown.

        The expression is inferred first (cheap); members are cached by the inferred type, so
        only the first ``list`` / ``HelpFormatter`` / ``posixpath`` pays for a full completion.
        """
        line, col = _end_position(before)
        dot = _digest(before, after)
        with self._lock:
            script = self._script(before + after, path)
            key = self._expression_type_key(script, before, after, path)
            _remember(self._dot_types, dot, key)
            if key is not None and key in self._type_cache:
                self.type_hits += 1
                return self._type_cache[key]
            code = self._display_codes.get(key) if key is not None else None
            if code is not None:  # members of the type itself, not through this document's names
                comps = self._script(code + "\n", None).complete(*_end_position(code))
            else:
                comps = script.complete(line, col)
                if not comps and key is not None:
                    # a Script that has just inferred the expression can complete nothing after
                    # it (argparse's ``inserts.``, a dict: 0 names, where a new Script over the
                    # same parse gives 43)
                    comps = self._script(before + after, path).complete(line, col)
            _remember(self._dot_completions, dot, {c.name: c for c in comps if c.type in ("function", "class")})
        names = frozenset(c.name for c in comps if c.type != "keyword")
        result = None if (not names or "__getattr__" in names) else names  # unknown / dynamic: no opinion
        if key is not None and result is not None:  # never cache "unknown" under a type
            self._store_type(key, result)
        return result

    def import_names(self, before: str, after: str, path: str | None) -> frozenset[str] | None:
        """Module or member names in an import statement at the end of ``before``."""
        with self._lock:
            comps = self.completions(before, after, path)
        names = frozenset(c.name for c in comps if c.type != "keyword")
        return names or None

    def scope_names(self, before: str, after: str, path: str | None) -> frozenset[str] | None:
        """Names that resolve at an expression start at the end of ``before`` (with keywords)."""
        with self._lock:
            comps = self.completions(before, after, path)
        names = frozenset(c.name for c in comps)
        if not names:
            return None
        return names | PY_KEYWORDS | MODULE_DUNDERS

    def signatures(self, before: str, after: str, path: str | None) -> tuple[Signature, ...] | None:
        """Signatures of the call whose '(' ends ``before``; None when unknown (cached by callee)."""
        line, col = _end_position(before)
        with self._lock:
            fast = self._member_call_signatures(before, after)
            if fast is not _MISSING:
                return fast
            script = self._script(before + after, path)
            key = self._expression_type_key(script, before, after, path)
            if key is not None and ("sig", key) in self._type_cache:
                self.type_hits += 1
                return self._type_cache[("sig", key)]
            result = _signatures(script.get_signatures(line, col))
        if key is not None and result is not None:
            self._store_type(("sig", key), result)
        return result

    def _member_call_signatures(self, before: str, after: str):
        """Signatures for ``obj.name(`` from the member analysis of ``obj.`` (no new parse)."""
        m = _MEMBER_CALL.search(before[-200:])
        if not m:
            return _MISSING
        name = m.group(1)
        dot = _digest(before[: len(before) - len(m.group(0)) + 1], after)
        tkey = self._dot_types.get(dot, _MISSING)
        if tkey is _MISSING:
            return _MISSING
        if tkey is not None and ("sigm", tkey, name) in self._type_cache:
            self.type_hits += 1
            return self._type_cache[("sigm", tkey, name)]
        comp = self._dot_completions.get(dot, {}).get(name)
        if comp is None:
            return _MISSING
        out = _signatures(comp.get_signatures())
        if out is None:
            # the completion knows no signature (jedi gives none for a class defined in the
            # class body, ``self._Section``): ask at the call itself
            return _MISSING
        if tkey is not None:
            self._store_type(("sigm", tkey, name), out)
        return out

    def warm_up(self) -> None:
        """Load builtins and common stubs once so the first real request is not the slow one.
        (``WARM_MEMBERS`` then go through ``members`` as jobs of their own.)"""
        code = "import os\nos.path.join\nprint("
        with self._lock:
            s = self._script(code, None)
            s.complete(2, 8)
            s.get_signatures(3, 6)
