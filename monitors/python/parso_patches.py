"""Speed-ups for parso and jedi on a large document that changes by a keystroke at a time.

Every analysis of a new document version paid, before any inference, for work proportional to
the whole file (argparse.py, 2,600 lines, measured 2026-12-06): parso's line diff (difflib over
every line, 2-5 ms), the used-names map rebuilt by walking the whole tree (3-7 ms), jedi finding
the name at the cursor by walking the tree from its start (up to 4-8 ms near the end), and a
name filter's sort of every name in the module (4 ms). The replacements below give the same
answers (each has a test that compares it with the original) and touch only what changed.

- ``_trimmed_opcodes``: the line diff, with the lines equal at both ends taken out before
  difflib looks at the rest (what a keystroke changes is one line, a jump two).
- ``_used_names``: parso's used-names map (every name leaf, by value, in document order), built
  from per-class and per-function maps that are kept between versions of a diff-parsed module.
  parso's diff parser moves the old nodes it keeps into the new tree, and the only old nodes
  whose children it changes are the ones it "finishes" (``_NodesTreeNode.finish``: the module
  and the suites it copies into); those and their ancestors are dropped from the cache after
  each update, the rest is reused.
- ``_name_of_position``: the name leaf at a position by parso's binary search over the tree.
- ``_scoped_values``: a class's or function's name filter looks only at the names inside it.

All calls happen on the analysis thread (jedi is not thread-safe), so the module state here is
not locked.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from typing import Any

from .. import version_gate

#: nodes whose used names are kept between versions of a diff-parsed module
_CACHED_TYPES = frozenset({"classdef", "funcdef"})
#: diff-parsed modules (the documents being edited): id -> (module, {id(node): (node, names)}, count)
_documents: OrderedDict[int, list] = OrderedDict()
_MAX_DOCUMENTS = 4
_PRUNE_EVERY = 64  # updates of a module between sweeps of its cache for nodes no longer in it
_finished: list = []
_originals: dict[str, Any] = {}


# ---- the used-names map ---------------------------------------------------------------------


def _collect(node, cache: dict | None) -> dict[str, list]:
    """Every name leaf under ``node`` by value, in document order; classes and functions answered
    from ``cache`` (and stored in it) when there is one."""
    dct: dict[str, list] = {}
    if not hasattr(node, "children"):  # a leaf (jedi's scope of a name, for one)
        return {node.value: [node]} if node.type == "name" else dct
    stack = [iter(node.children)]
    while stack:
        for child in stack[-1]:
            children = getattr(child, "children", None)
            if children is not None:
                if cache is not None and child.type in _CACHED_TYPES:
                    for value, names in _cached_names(child, cache).items():
                        known = dct.get(value)
                        if known is None:
                            dct[value] = list(names)
                        else:
                            known.extend(names)
                    continue
                stack.append(iter(children))
                break
            if child.type == "name":
                names = dct.get(child.value)
                if names is None:
                    dct[child.value] = [child]
                else:
                    names.append(child)
        else:
            stack.pop()
    return dct


def _used_names(module):
    """parso's ``Module.get_used_names``: the same mapping, without recursion, and for a module
    the diff parser updates, from the classes and functions it kept."""
    if module._used_names is None:
        from parso.python.tree import UsedNamesMapping

        module._used_names = UsedNamesMapping(_collect(module, _cache_of(module)))
    return module._used_names


def _cache_of(module) -> dict | None:
    """The kept names of a diff-parsed module's classes and functions (None: not one)."""
    doc = _documents.get(id(module))
    return doc[1] if doc is not None and doc[0] is module else None


def _cached_names(node, cache: dict) -> dict[str, list]:
    """The used names inside a class or function, from ``cache`` or collected into it."""
    hit = cache.get(id(node))
    if hit is None or hit[0] is not node:
        hit = cache[id(node)] = (node, _collect(node, cache))
    return hit[1]


def _names_under(node) -> dict[str, list]:
    """The used names inside ``node`` (a class's or function's kept between versions)."""
    cache = _cache_of(node.get_root_node())
    if cache is None or node.type not in _CACHED_TYPES:
        return _collect(node, cache)
    return _cached_names(node, cache)


def _forget_changed(module) -> None:
    """After a diff update of ``module``: drop the cached names of every node whose children the
    update replaced, and of their ancestors."""
    doc = _documents.get(id(module))
    if doc is None or doc[0] is not module:
        doc = _documents[id(module)] = [module, {}, 0]
        while len(_documents) > _MAX_DOCUMENTS:
            _documents.popitem(last=False)
    _documents.move_to_end(id(module))
    cache = doc[1]
    for node in _finished:
        while node is not None and cache:
            cache.pop(id(node), None)
            node = node.parent
    _finished.clear()
    doc[2] += 1
    if doc[2] % _PRUNE_EVERY == 0:  # nodes the diff parser replaced
        for key, (node, _names) in list(cache.items()):
            if node.get_root_node() is not module:
                del cache[key]


def _finish(self):
    _finished.append(self.tree_node)
    return _originals["finish"](self)


def _update(self, old_lines, new_lines):
    _finished.clear()
    try:
        module = _originals["update"](self, old_lines, new_lines)
    except BaseException:
        _documents.pop(id(self._module), None)
        _finished.clear()
        raise
    try:
        _forget_changed(module)
    except Exception:  # never keep names of a tree that could not be followed
        _documents.pop(id(module), None)
        _finished.clear()
    return module


def _old_line_stmt(self, old_line):
    """``DiffParser._get_old_line_stmt``, which also finds a statement whose prefix starts on an
    earlier line than ``old_line`` when the statement itself starts on ``old_line``.

    parso copies an old statement only when its prefix (the blank lines and comments before it)
    starts on the first line not yet parsed. A parsed part that ends on the blank lines before
    a dedented statement has taken those lines already, so the next statement was parsed
    instead of copied -- for ``class ArgumentParser`` after a change in the method above it,
    the whole class (~4,700 tokens, 50-90 ms). Here the part of the old prefix on the lines
    already parsed is cut off (the parsed part's own text stands for those lines, and the rest
    of the prefix comes from lines the diff found equal), and the statement is copied.
    """
    node = _originals["old_line_stmt"](self, old_line)
    if node is not None:
        return node
    from parso.python.diff import _ends_with_newline
    from parso.utils import split_lines

    leaf = self._module.get_leaf_for_position((old_line, 0), include_prefixes=True)
    if _ends_with_newline(leaf):
        leaf = leaf.get_next_leaf()
    if leaf is None or leaf.start_pos[0] != old_line or leaf.type == "endmarker":
        return None
    first = leaf.get_start_pos_of_prefix()
    if first[0] >= old_line or first[1] != 0:
        return None
    lines = split_lines(leaf.prefix, keepends=True)
    skip = old_line - first[0]
    if len(lines) <= skip or any(line.strip() for line in lines[:skip]):
        return None  # only blank lines are cut off
    node = leaf
    while node.parent.type not in ("file_input", "suite"):
        node = node.parent
    if node.start_pos[0] < old_line or node.get_first_leaf() is not leaf:
        return None
    leaf.prefix = "".join(lines[skip:])
    return node


# ---- the line diff --------------------------------------------------------------------------


class _TrimmedMatcher:
    """``difflib.SequenceMatcher`` for parso's diff parser: the same kind of opcodes, computed on
    the lines between the equal start and the equal end only."""

    def __init__(self, isjunk, a, b) -> None:
        self.a, self.b = a, b

    def get_opcodes(self) -> list[tuple[str, int, int, int, int]]:
        a, b = self.a, self.b
        la, lb = len(a), len(b)
        n = min(la, lb)
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        if i == la == lb:
            return [("equal", 0, la, 0, lb)] if la else []
        j = 0
        while j < n - i and a[la - 1 - j] == b[lb - 1 - j]:
            j += 1
        out = [("equal", 0, i, 0, i)] if i else []
        mid = difflib.SequenceMatcher(None, a[i : la - j], b[i : lb - j], autojunk=False).get_opcodes()
        out += [(tag, i1 + i, i2 + i, j1 + i, j2 + i) for tag, i1, i2, j1, j2 in mid]
        if j:
            out.append(("equal", la - j, la, lb - j, lb))
        return out


class _DifflibForParso:
    """What parso's diff module uses of ``difflib``."""

    SequenceMatcher = _TrimmedMatcher


# ---- the name at a position -----------------------------------------------------------------


def _name_of_position(self, position):
    """``get_name_of_position`` on a module: the first name leaf (in document order) with
    ``start_pos <= position <= end_pos``, found by binary search instead of a walk from the
    start. Leaves are in position order, so the leaves that can contain ``position`` start at
    the first leaf ending at or after it."""
    try:
        leaf = self.get_leaf_for_position(position, include_prefixes=True)
    except ValueError:  # outside the module
        return _originals["name_of_position"](self, position)
    while leaf is not None and leaf.start_pos <= position:
        if leaf.type == "name" and position <= leaf.end_pos:
            return leaf
        leaf = leaf.get_next_leaf()
    return None


# ---- jedi's name filters ----------------------------------------------------------------------


def _module_values(self):
    """jedi's own ``_AbstractUsedNamesFilter.values`` (set by ``install``)."""
    return _originals["values"](self)


def _scoped_values(self):
    """jedi's ``_AbstractUsedNamesFilter.values`` for a filter of a class or function: the same
    names, but only the ones inside the scope are looked at.

    jedi lists a scope's names by going through every name *of the module* -- for each of the
    thousands of names of a 2,000-line file ``is_definition``, then whether its scope is this
    one -- once per class of the MRO and again for ``self.`` attributes, on every new document
    version. That was most of the 60-75 ms of the first ``self.`` of a class. Every filter of
    this kind keeps only names inside its scope (``_is_name_reachable`` asks for the scope
    itself; ``SelfAttributeFilter`` for names between its start and end), so leaving out the
    names outside it first changes nothing: the same definitions reach ``_filter`` in the same
    order (names by the module's first use of their text, each one's in document order).
    """
    scope = self._parser_scope
    used = self._used_names
    if scope is None or scope.type == "file_input":
        return _module_values(self)
    memo = getattr(used, "_steercode_scopes", None)
    if memo is None:
        memo = ({key: i for i, key in enumerate(used)}, {})
        try:
            used._steercode_scopes = memo
        except AttributeError:  # not parso's mapping: the original way
            return _module_values(self)
    order, by_scope = memo
    defs = by_scope.get(id(scope))
    if defs is None or defs[0] is not scope:
        inside = _names_under(scope)
        grouped = {k: [n for n in ns if n.is_definition(include_setitem=True)] for k, ns in inside.items()}
        defs = by_scope[id(scope)] = (scope, [grouped[k] for k in sorted(grouped, key=order.__getitem__) if grouped[k]])
    return self._convert_names(name for group in defs[1] for name in self._filter(group))


def install() -> None:
    """Install the replacements on the exact versions they were checked against
    (``monitors.version_gate.TESTED``); on any other version that library's own code runs, and
    a warning says so."""
    if "update" not in _originals and version_gate.exact(
        "parso", "parso_patches (the diff parser, used names, the name at a position)",
        "parso's own code runs: the same answers, each keystroke's parse over the whole file",
    ):
        from parso.python import diff
        from parso.python.tree import Module

        _originals["update"] = diff.DiffParser.update
        _originals["old_line_stmt"] = diff.DiffParser._get_old_line_stmt
        diff.DiffParser._get_old_line_stmt = _old_line_stmt
        _originals["finish"] = diff._NodesTreeNode.finish
        _originals["name_of_position"] = Module.get_name_of_position
        Module.get_used_names = _used_names
        Module.get_name_of_position = _name_of_position
        diff.DiffParser.update = _update
        diff._NodesTreeNode.finish = _finish
        diff.difflib = _DifflibForParso
    if "values" not in _originals and version_gate.exact(
        "jedi", "parso_patches (scoped name filters)",
        "jedi's own filters run: the same answers, every scope's filter over the module's names",
    ):
        from jedi.inference import filters

        _originals["values"] = filters._AbstractUsedNamesFilter.values
        filters._AbstractUsedNamesFilter.values = _scoped_values
