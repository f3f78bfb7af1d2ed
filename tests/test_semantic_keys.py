"""Semantic cache keys (``monitors/python/semantic_keys.py``): equal keys mean equal analyses.

A key stands for a jedi analysis: ``member_key`` for the members after ``expr.``
(``JediAnalyzer.members``, the ``py-members`` job), ``signature_key`` for the signatures of the
call whose ``(`` ends the text (``JediAnalyzer.signatures``), and ``class_signature_by_name`` for
the members of an instance of a class defined in the document (the analyzer's own type cache).
The monitors answer a repeat from the cache under an equal key without asking jedi, so an
equal key for two versions whose analyses differ is a wrong answer: a stale member set rejects
right code.

The checks replay editor-like edits on one document (typing a line a character at a time,
deleting lines, edits in other classes, at class level and at module level), take every version
with the cursor right after a trigger, and require jedi's uncached answer to be equal for every
pair of versions with an equal key. They also require keys to stay equal where nothing the
analysis reads changed (typing in another method), or the cache would never hit.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from conftest import split_cursor

from monitors.python.jedi_analysis import JediAnalyzer
from monitors.python.semantic_keys import class_signature_by_name, member_key, signature_key

DOC = '''\
import os
import os.path
from collections import OrderedDict


def helper(a, b=1):
    return OrderedDict()


class Base:
    def __init__(self, size):
        self.size = size

    def grow(self):
        return self.size + 1
«BASE»

class Widget(Base):
    kind = "widget"
«CLASS»
    def __init__(self, name, parent=None):
        super().__init__(1)
        self.name = name
«MID»        self.parent = parent
        self.children = []
«INIT»
    def add(self, child):
        self.children.append(child)
«ADD»
«DECO»    def show(self):
        «CURSOR»


class Other:
    def __init__(self):
        self.other = 1
«OTHER»
«MODULE»
'''

SLOTS = ("«BASE»", "«CLASS»", "«MID»", "«INIT»", "«ADD»", "«DECO»", "«OTHER»", "«MODULE»")

#: (slot, the text typed there a character at a time)
TYPED = [
    ("«ADD»", "        total = len(self.children) + 1\n"),  # a method body: nothing the analyses read
    ("«ADD»", "        self.x, self.b = child, 2\n"),  # tuple targets
    ("«ADD»", "        self.y, = [child]\n"),
    ("«ADD»", "        *self.rest, self.last = [child]\n"),
    ("«ADD»", "        (self.first,\n         self.second) = 1, 2\n"),
    ("«ADD»", "        self.count: int = 0\n"),  # annotated assignments
    ("«ADD»", "        self.total: int\n"),
    ("«ADD»", "        self.hits += 1\n"),  # augmented assignment
    ("«ADD»", "        for self.item in self.children: pass\n"),
    ("«ADD»", "        with open(child) as self.fh: pass\n"),
    ("«ADD»", "        self.children = {}\n"),  # the type of self.children
    ("«ADD»", "        self.children = helper(child)\n"),
    ("«MID»", "        log(self.name, parent)\n"),  # an open bracket takes the next line in
    ("«MID»", '        """Set up."""\n'),  # an open triple quote takes the rest
    ("«MID»", "        x = \\\n            1\n"),  # a backslash continuation
    ("«MID»", "        if name:\n            pass\n"),  # a block opener
    ("«MID»", "            extra = 1\n"),  # an unexpected indent
    ("«MID»", "      odd = 1\n"),  # a dedent to no level
    ("«INIT»", "        self.a = self.b = 0\n"),
    ("«INIT»", "    def reset(me):\n        me.state = None\n"),  # a method whose self is not `self`
    ("«CLASS»", "    a, b = 1, 2\n"),  # class level
    ("«CLASS»", "    limit: int\n"),
    ("«CLASS»", "    import json\n"),
    ("«CLASS»", "    class Meta: pass\n"),
    ("«CLASS»", "    x = 1; y = 2\n"),
    ("«CLASS»", "    counter = 0\n    counter += 1\n"),
    ("«DECO»", "    @staticmethod\n"),
    ("«BASE»", "    def shrink(self):\n        self.small = True\n"),  # another class: the base
    ("«OTHER»", "        self.zzz = 1\n"),  # another class, not a base
    ("«MODULE»", "os = None\n"),  # module level: the import's name rebound
    ("«MODULE»", "os, sys = None, None\n"),
    ("«MODULE»", "for os in []: pass\n"),
    ("«MODULE»", "with open('f') as os: pass\n"),
    ("«MODULE»", "def helper(c): pass\n"),
    ("«MODULE»", "helper, other = len, 1\n"),
    ("«MODULE»", "Base = Other\n"),
    ("«MODULE»", "from json import *\n"),
    ("«MODULE»", "def f(os): pass\n"),  # a parameter of another function
    ("«ADD»", "        os = None\n"),  # a local of another method
]

#: the triggers, as the cursor line's text up to the cursor
MEMBER_TRIGGERS = ["self.", "self.children.", "os.path.", 'Widget("w").']
CALL_TRIGGERS = ["self.add(", "os.path.join(", "helper(", "len("]


def _kind(c: str) -> str:
    return "w" if c.isalnum() or c == "_" else " " if c in " \t" else c


def typed_prefixes(typed: str) -> list[int]:
    """The lengths of the prefixes of ``typed`` that the checks visit: after every punctuation
    character, and one character into and at the end of every word and run of spaces (``s``,
    ``self``, ``self.``, ``self.x``, not ``se``, ``sel``): the characters inside a word change no
    structure jedi sees (``d`` and ``de`` are both names; ``def`` is visited), and skipping them
    keeps this module's jedi runs within a minute."""
    keep = []
    for i in range(1, len(typed) + 1):
        k = _kind(typed[i - 1])
        if k not in ("w", " ") or i == len(typed) or _kind(typed[i]) != k or i == 1 or _kind(typed[i - 2]) != k:
            keep.append(i)
    return keep


def document(cursor_line: str, fills: dict[str, str]) -> str:
    text = DOC
    for slot in SLOTS:
        text = text.replace(slot, fills.get(slot, ""))
    return text.replace("«CURSOR»", cursor_line + "┃")


def versions(cursor_line: str) -> list[str]:
    """Every version an editor would see: each edit typed a character at a time (each prefix a
    version), and the base document with one of its lines deleted."""
    out = [document(cursor_line, {})]
    for slot, typed in TYPED:
        out.extend(document(cursor_line, {slot: typed[:i]}) for i in typed_prefixes(typed))
    base = out[0].split("\n")
    for i, line in enumerate(base):
        if line.strip() and "┃" not in line:
            out.append("\n".join(base[:i] + base[i + 1 :]))
    return list(dict.fromkeys(out))


def split(source: str) -> tuple[str, str]:
    """(before, after) as a session asks for them: the text up to the cursor, and the document
    after the cursor's line."""
    text, cursor = split_cursor(source)
    nl = text.find("\n", cursor)
    return text[:cursor], "" if nl < 0 else text[nl:]


@pytest.fixture(scope="module")
def analyzer():
    return JediAnalyzer(None)


def uncached(analyzer: JediAnalyzer, kind: str, before: str, after: str):
    """jedi's answer with none of the analyzer's caches."""
    analyzer._type_cache.clear()
    analyzer._dot_types.clear()
    analyzer._dot_completions.clear()
    return getattr(analyzer, kind)(before, after, None)


def check_keys(analyzer, kind: str, key_fn, trigger: str, min_shared: int) -> None:
    """Versions with equal keys have equal answers; at least ``min_shared`` versions share a key
    with another (the cache can hit)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source in versions(trigger):
        before, after = split(source)
        key = key_fn(None, before, after)
        if key is not None:
            groups[key].append((before, after))
    shared = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        shared += len(members)
        first = uncached(analyzer, kind, *members[0])
        for before, after in members[1:]:
            got = uncached(analyzer, kind, before, after)
            if got != first:
                diff = set(got or ()) ^ set(first or ()) if kind == "members" else (got, first)
                pytest.fail(
                    f"equal {key_fn.__name__} for two versions whose analyses differ at {trigger!r} ({diff}):\n"
                    f"--- one\n{members[0][0]}\n--- the other\n{before}"
                )
    assert shared >= min_shared, f"{trigger!r}: only {shared} versions share a key"


@pytest.mark.parametrize("trigger", MEMBER_TRIGGERS[:3])
def test_equal_member_keys_mean_equal_members(analyzer, trigger):
    check_keys(analyzer, "members", member_key, trigger, min_shared=30)


@pytest.mark.parametrize("trigger", CALL_TRIGGERS)
def test_equal_signature_keys_mean_equal_signatures(analyzer, trigger):
    check_keys(analyzer, "signatures", signature_key, trigger, min_shared=30)


def test_equal_class_signatures_mean_equal_instance_members(analyzer):
    """The analyzer's type cache keys an instance of a class in the document by the class's
    signature: equal signatures, equal members."""

    def key(_path, before, after):
        return class_signature_by_name(before + after, "Widget")

    check_keys(analyzer, "members", key, MEMBER_TRIGGERS[3], min_shared=30)


def test_the_type_cache_gives_what_jedi_gives(analyzer):
    """One analyzer kept across the versions (as the worker keeps it) answers what a fresh
    analysis does at every version."""
    warm = JediAnalyzer(None)
    for source in versions(MEMBER_TRIGGERS[3])[::3]:
        before, after = split(source)
        assert warm.members(before, after, None) == uncached(analyzer, "members", before, after), before
    assert warm.type_hits > 10


@pytest.mark.parametrize(
    "first, second",
    [
        # the known miss: the first target of a tuple assignment
        ("        self.x, self.b = child, 2\n", "        self.y, self.b = child, 2\n"),
        ("        self.count: int\n", "        self.total: int\n"),
        ("        self.hits += 1\n", "        self.misses += 1\n"),
        ("        for self.item in self.children: pass\n", "        for self.thing in self.children: pass\n"),
    ],
)
def test_a_new_attribute_changes_the_self_key(first, second):
    keys = {member_key(None, *split(document("self.", {"«ADD»": text}))) for text in (first, second)}
    assert len(keys) == 2 and None not in keys


def test_a_binding_counts_where_it_is_visible():
    """A name bound as another function's parameter or local, or mentioned in a docstring,
    keeps the import's key; bound in the cursor's own function, or ``global`` anywhere, it
    has none."""
    base = member_key(None, *split(document("os.", {})))
    assert base is not None
    for fill in (
        {"«MODULE»": "def f(os): pass\n"},
        {"«ADD»": "        os = None\n"},
        {"«OTHER»": '        """os is the module"""\n'},
    ):
        assert member_key(None, *split(document("os.", fill))) == base, fill
    for source in (
        "import os\n\n\ndef f(os=None):\n    os.┃\n",  # the cursor's own function: its parameter
        "import os\n\n\ndef f():\n    os = None\n    os.┃\n",  # its local
        "import os\n\n\ndef f():\n    global os\n    os = None\n\n\ndef g():\n    os.┃\n",
    ):
        assert member_key(None, *split(source)) is None, source
    assert member_key(None, *split("import os\n\n\ndef f(os=None):\n    pass\n\n\ndef g():\n    os.┃\n"))


def test_a_trigger_inside_a_triple_quoted_string_has_no_key():
    source = document("os.", {"«MID»": '        """\n'})
    assert member_key(None, *split(source)) is None
    assert signature_key(None, *split(document("len(", {"«MID»": '        """\n'}))) is None
