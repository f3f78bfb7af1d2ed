"""monitors/python/parso_patches.py: each replacement answers as the parso code it replaces, over
documents that change the way an editor changes them (typing a line a character at a time,
jumps between places, broken brackets and indentation, lines added and deleted)."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import parso
import pytest

from monitors.python import parso_patches

SRC = Path(argparse.__file__).read_text(encoding="utf-8")


def _edits(seed: int, n: int) -> list[str]:
    """Versions of argparse.py as an editor produces them, each from the one before."""
    rnd = random.Random(seed)
    lines = SRC.splitlines(keepends=True)
    out = []
    for _ in range(n):
        kind = rnd.choice(["type", "type", "jump", "jump", "delete", "insert", "break", "dedent", "blank"])
        i = rnd.randrange(20, len(lines) - 20)
        if kind == "jump" and rnd.random() < 0.5:  # a block's last line, before blank lines
            ends = [j for j in range(20, len(lines) - 20) if lines[j].strip() and not lines[j + 1].strip()]
            i = rnd.choice(ends)
        if kind == "type":  # a line cut and typed back, a few keystrokes at a time
            line = lines[i]
            for k in range(len(line) - len(line.lstrip()), len(line), max(1, len(line) // 4)):
                out.append("".join(lines[:i]) + line[:k] + "\n" + "".join(lines[i + 1 :]))
            continue
        if kind == "jump":  # another line cut, the one before back as it was
            lines2 = list(lines)
            lines2[i] = lines2[i][: len(lines2[i]) // 2] + "\n"
            out.append("".join(lines2))
            continue
        if kind == "delete":
            del lines[i : i + rnd.randint(1, 6)]
        elif kind == "insert":
            lines[i:i] = ["    def added(self, x):\n", "        return x.\n", "\n"]
        elif kind == "blank":
            lines[i:i] = ["\n"] * rnd.randint(1, 3)
        elif kind == "break":
            lines[i] = lines[i].rstrip("\n") + " (( [\n"
        else:
            lines[i] = lines[i].lstrip() or "\n"
        out.append("".join(lines))
    return out


def _shape(node) -> list:
    """A tree as (type, value, start, end) of every node and leaf, in order."""
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append((n.type, getattr(n, "value", None), n.start_pos, n.end_pos))
        stack.extend(reversed(getattr(n, "children", [])))
    return out


def _walk_names(module) -> dict[str, list]:
    """parso 0.8's own used-names walk (recursive)."""
    out: dict[str, list] = {}

    def walk(node):
        if hasattr(node, "children"):
            for c in node.children:
                walk(c)
        elif node.type == "name":
            out.setdefault(node.value, []).append(node)

    walk(module)
    return out


@pytest.fixture(scope="module")
def grammar():
    parso_patches.install()
    return parso.load_grammar()


def test_used_names_of_a_fresh_parse_equal_parsos_own():
    import re

    code = open(re.__file__).read() + "\nclass K:\n    def f(self, a):\n        return [a for a in self.b]\n"
    ours = parso_patches._used_names(parso.parse(code))
    ref = _walk_names(parso.parse(code))
    assert set(ours) == set(ref) and len(ref) > 50
    assert all([(n.value, n.start_pos) for n in ours[k]] == [(n.value, n.start_pos) for n in ref[k]] for k in ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_used_names_kept_between_versions_equal_a_fresh_walk(grammar, seed):
    path = f"/tmp/steercode-parso-test-{seed}.py"
    grammar.parse(SRC, path=path, diff_cache=True, cache=False)
    reused = 0
    for code in _edits(seed, 40):
        module = grammar.parse(code, path=path, diff_cache=True, cache=False)
        assert module.get_code() == code
        doc = parso_patches._documents.get(id(module))
        reused += bool(doc and doc[1])  # classes and functions kept from the version before
        ours = module.get_used_names()
        ref = _walk_names(module)
        assert list(ours) == list(ref)
        assert all(ours[k] == ref[k] for k in ref)  # the same leaves, in document order
    assert reused >= 30


@pytest.mark.parametrize("seed", [2, 3])
def test_diff_parsed_trees_with_the_trimmed_line_diff_equal_fresh_parses(grammar, seed):
    path = f"/tmp/steercode-parso-test-{seed}.py"
    grammar.parse(SRC, path=path, diff_cache=True, cache=False)
    for code in _edits(seed, 12):
        module = grammar.parse(code, path=path, diff_cache=True, cache=False)
        assert _shape(module) == _shape(grammar.parse(code))


def test_trimmed_opcodes_rebuild_the_new_lines():
    rnd = random.Random(4)
    a = SRC.splitlines(keepends=True)[:400]
    for _ in range(200):
        b = list(a)
        for _ in range(rnd.randint(0, 3)):
            i = rnd.randrange(len(b))
            kind = rnd.randrange(3)
            if kind == 0:
                b.pop(i)
            elif kind == 1:
                b.insert(i, "x\n")
            else:
                b[i] = "y\n"
        ops = parso_patches._TrimmedMatcher(None, a, b).get_opcodes()
        rebuilt = []
        for tag, i1, i2, j1, j2 in ops:
            assert tag != "equal" or a[i1:i2] == b[j1:j2]
            rebuilt += a[i1:i2] if tag == "equal" else b[j1:j2]
        assert rebuilt == b
        assert [o[1:3] for o in ops] == sorted(o[1:3] for o in ops)  # in order, as difflib's


def test_name_of_position_equals_the_walk_at_every_position(grammar):
    original = parso_patches._originals["name_of_position"]
    broken = SRC[:9000] + "\n    def f(self, a=(\n        return a.\n" + SRC[9000:14000]
    for code in (SRC[:14000], broken):
        module = grammar.parse(code)
        lines = code.splitlines()
        found = 0
        for line in range(1, len(lines) + 1, 2):
            for col in range(0, len(lines[line - 1]) + 1):
                ours = module.get_name_of_position((line, col))
                assert ours is original(module, (line, col)), (line, col)
                found += ours is not None
        assert found > 500
