"""Structural repetition: statement signatures of a generated block, and the repeats among them.

A small model that has written ``elif n == 1: return 1`` and ``elif n == 2: return 2`` goes on
with ``elif n == 3:`` until the token limit: the *structure* repeats while the text changes (RPG,
"Rethinking Repetition Problems of LLMs in Code Generation"). A statement's **signature** is its
tree-sitter node type with its children's types, two levels down (``elif n == 1: return 1`` and
``elif n == 2: return 2`` agree; ``x = f(1)`` and ``x = a.b`` do not); a comment's is its text
with numbers masked (``#print(x[0])``, ``#print(x[1])``). A **repeat** is a unit of 1..8
consecutive signatures that the block ends with, several times in a row.

Language-agnostic wherever tree-sitter has a grammar: a line's statement is the largest node
that starts at its first non-blank character below the enclosing block.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import MonitorContext, MonitorStats
from .syntax import canonical_language, offset_to_byte, parse
from .textscan import is_word, line_start
from .verdicts import Rewind, Shift, Verdict

__all__ = ["MAX_PERIOD", "RepetitionMonitor", "block_signatures", "block_statements", "has_repetition",
           "line_statement", "signature", "trailing_repeat"]

MAX_PERIOD = 8

#: nodes that hold statements: a line's statement is the node just below one of these
_CONTAINERS = frozenset({
    "module", "block", "program", "statement_block", "class_body", "switch_body", "source_file",
    "compound_statement", "declaration_list", "interface_body", "enum_body", "object", "array",
    "switch_case", "switch_default",
})
_COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
_NUMBER = re.compile(r"\d+")
_WS = re.compile(r"\s+")


#: node types that play the same part in a repeat (``if n == 2: …`` then ``elif n == 3: …``)
_ALIASES = {"elif_clause": "if_statement", "elif": "if", "else_if_clause": "if_statement"}
#: clauses that continue a compound statement on lines of their own
_CLAUSES = frozenset({"elif_clause", "else_clause", "except_clause", "finally_clause", "else_if_clause"})
#: lines above the cursor in its block whose statements count towards a repeat
HEAD_LINES = 16


def signature(node, data: bytes, depth: int = 2) -> str:
    """The node's type with its children's types, ``depth`` levels down (comments: their text
    with numbers masked; ``elif`` counts as ``if``)."""
    if node.type in _COMMENTS:
        text = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
        return "comment:" + _NUMBER.sub("0", _WS.sub(" ", text).strip())
    kind = _ALIASES.get(node.type, node.type)
    if depth <= 0 or not node.children:
        return kind
    # an ``if``'s own part: its ``elif``/``else`` clauses are statements of their own lines
    children = [c for c in node.children if c.type not in _CLAUSES]
    return kind + "(" + ",".join(signature(c, data, depth - 1) for c in children) + ")"


def line_statement(root, b: int):
    """The statement that starts at byte ``b`` (a line's first non-blank character), or None
    when the line continues a statement begun above (an argument, a closer)."""
    node = root.descendant_for_byte_range(b, b)
    if node is None or node.start_byte != b:
        return None
    while node.parent is not None and node.parent.start_byte == b and node.parent.type not in _CONTAINERS:
        node = node.parent
    parent = node.parent
    if node.type in _COMMENTS or node.type.endswith("_clause"):
        return node
    if parent is None or parent.type not in _CONTAINERS:
        return None
    return node


def block_signatures(text: str, start: int, end: int, language: str | None, *,
                     incremental: bool = False) -> list[str] | None:
    """Signatures of the statements that start on the lines of ``text[start:end]`` (code-point
    offsets), in order; None when there is no grammar."""
    found = block_statements(text, start, end, language, incremental=incremental)
    return None if found is None else [sig for _, sig in found]


def block_statements(text: str, start: int, end: int, language: str | None, *,
                     incremental: bool = False) -> list[tuple[int, str]] | None:
    """(offset of its first character, signature) of each statement that starts on the lines of
    ``text[start:end]``, in order; None when there is no grammar."""
    parsed = parse(text, language, incremental=incremental)
    if parsed is None:
        return None
    tree, data = parsed
    out: list[tuple[int, str]] = []
    pos = start
    while pos < end:
        nl = text.find("\n", pos)
        line_end = end if nl < 0 or nl > end else nl
        line = text[pos:line_end]
        stripped = line.lstrip()
        if stripped:
            first = pos + len(line) - len(stripped)
            node = line_statement(tree.root_node, offset_to_byte(text, first))
            if node is not None:
                out.append((first, signature(node, data)))
        pos = line_end + 1
    return out


def trailing_repeat(sigs: Sequence[str], max_period: int = MAX_PERIOD) -> tuple[int, int]:
    """(period, count): the shortest unit that ``sigs`` ends with ``count`` >= 2 times in a row
    (the most repeated one if several); (0, 0) when it ends with no repeat."""
    best = (0, 0)
    n = len(sigs)
    for p in range(1, min(max_period, n // 2) + 1):
        count = 1
        while n - (count + 1) * p >= 0 and list(sigs[n - (count + 1) * p : n - count * p]) == list(sigs[n - p :]):
            count += 1
        if count >= 2 and count > best[1]:
            best = (p, count)
    return best


def has_repetition(sigs: Sequence[str], min_count: int = 3, max_period: int = MAX_PERIOD) -> bool:
    """Does some unit of 1..``max_period`` statements occur ``min_count`` times in a row
    (``a; a; a``, ``a b; a b; a b``)? Two alike in a row is ordinary code; three is a loop."""
    n = len(sigs)
    for end in range(2, n + 1):
        p, count = trailing_repeat(sigs[:end], max_period)
        if p and count >= min_count:
            return True
    return False


# ---- the monitor ------------------------------------------------------------------------------

#: probabilities of a repeat's critical token are multiplied by LAMBDA ** count (RPG uses 0.9)
LAMBDA = 0.9
#: a unit that the block already holds this many times in a row is not started again: chosen
#: despite the decay, its critical token ends the suggestion instead (a third ``elif n == 3``)
END_AT = 2


def _first_word(line: str) -> str:
    """A statement line's first word (``elif``, ``print``) or, when it starts otherwise, its
    first character (``#``, ``@``, ``(``)."""
    s = line.lstrip()
    if not s:
        return ""
    if not is_word(s[0]):
        return s[0]
    j = 1
    while j < len(s) and is_word(s[j]):
        j += 1
    return s[:j]


_WS_NORM = re.compile(r"\s+")


class RepetitionSession:
    """For one request: the repetition penalty and the no-copy-of-the-header rule."""

    name = "repetition"

    def __init__(self, ctx: MonitorContext, header: frozenset[str], lam: float = LAMBDA, end_at: int = END_AT) -> None:
        self.ctx = ctx
        self.end_at = end_at
        self.language = canonical_language(ctx.language)
        self.log_lambda = math.log(lam)
        self.head = ctx.text[: ctx.offset]
        self.tail = ctx.text[ctx.cursor :]
        self.head_line = ctx.text[line_start(ctx.text, ctx.offset) : ctx.offset]
        self.healed = ctx.cursor - ctx.offset
        self.header = header  # the enclosing function's signature and docstring lines, normalized
        # the statements above the cursor in its block count towards a repeat (``if n < 2:
        # return n`` then a generated ``elif n < 3: …``): they start at ``scan_from``
        self.line_from = line_start(ctx.text, ctx.offset)
        self.scan_from = _block_head_start(ctx.text, self.line_from)
        self.stats = MonitorStats()
        self._memo: dict[str, tuple[int, str, str] | None] = {}

    # ---- never copy the header above ---------------------------------------------------------
    def check(self, generated: str, token: int, text: str | None) -> Verdict:
        if not self.header:
            return True
        if text is not None and "\n" not in text and not self.ctx.vocab.is_control[token]:
            return True
        t0 = time.perf_counter()
        try:
            full = self.head_line + generated + ("" if text is None else text.split("\n", 1)[0])
            k = full.rfind("\n") + 1
            line = _WS_NORM.sub(" ", full[k:]).strip()
            if line and line in self.header:
                self.stats.constrained.add(len(generated))
                return Rewind(max(k - len(self.head_line), self.healed, 0))
            return True
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000
            self.stats.checks += 1

    def allowed(self, generated: str) -> Any:
        return None

    # ---- the penalty -----------------------------------------------------------------------
    def penalty(self, generated: str) -> list[Shift] | None:
        """At a line start after a block that ends with a repeated unit (count >= 2), the tokens
        that would start the unit once more get ``count * ln(lambda)`` on their logits; from
        ``END_AT`` repeats on, choosing one anyway ends the suggestion there."""
        full = self.head_line + generated
        k = full.rfind("\n")
        if k < 0:
            return None
        partial = full[k + 1 :]
        if partial.strip(" \t") or "\r" in partial:
            return None  # not at a line start
        t0 = time.perf_counter()
        try:
            block = generated[: len(generated) - len(partial)]
            shifts = []
            vocab = self.ctx.vocab
            for count, generated_units, indent, word in self._repeat(block):
                if not indent.startswith(partial):
                    continue  # the line goes to another indentation: not this repeat
                rest = indent[len(partial) :] + word
                ids = vocab.ids_consistent_with(rest)
                if len(rest) > len(word):  # the blanks before the word are not the repeat's start
                    ids = np.setdiff1d(ids, vocab.ids_prefix_of(rest[: len(rest) - len(word)]))
                # ending needs a repeat the suggestion took part in (a list of alike lines above
                # the cursor may go on by one more)
                end = count >= self.end_at and generated_units >= 1
                shifts.append(Shift(ids, count * self.log_lambda, end=end))
            if not shifts:
                return None
            self.stats.constrained.add(len(generated))
            return shifts
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000

    def _repeat(self, block: str) -> list[tuple[int, int, str, str]]:
        """For each indentation level whose statements end with a repeated unit after ``block``
        (complete lines; counted with the statements above the cursor in its block): (count, how
        many of the units are generated, indentation, first word of the statement that would
        start the unit once more). A compound statement stands for its body at its own level
        (``elif n < 3: return n + 1`` repeats ``if n < 2: return n``); the body's lines form the
        next level's sequence."""
        if block in self._memo:
            return self._memo[block]
        found: list[tuple[int, int, str, str]] = []
        if block.strip():
            doc = self.head + block + self.tail
            stmts = block_statements(doc, self.scan_from, len(self.head) + len(block), self.language,
                                     incremental=True)
            if stmts:
                cols = [o - line_start(doc, o) for o, _ in stmts]
                for c in sorted(set(cols)):
                    seq: list[tuple[int, str]] = []
                    for (o, sig), col in zip(stmts, cols, strict=True):
                        if col < c:
                            seq = []  # a shallower statement closes this level's sequence
                        elif col == c:
                            seq.append((o, sig))
                    p, count = trailing_repeat([sig for _, sig in seq])
                    if not p:
                        continue
                    starts = [seq[len(seq) - k * p][0] for k in range(1, count + 1)]
                    generated_units = sum(1 for o in starts if o >= self.line_from)
                    if generated_units:
                        first = starts[0]  # the latest unit: its first word starts the next
                        ls = line_start(doc, first)
                        found.append((count, generated_units, doc[ls:first], _first_word(doc[first : first + 80])))
        if len(self._memo) > 64:
            self._memo.clear()
        self._memo[block] = found
        return found

    def describe(self) -> dict[str, Any]:
        return self.stats.as_dict()


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _block_head_start(text: str, ls: int) -> int:
    """Where the cursor line's block begins above it: the earliest of the (at most
    ``HEAD_LINES``) contiguous lines above that are blank or indented at least as deep as the
    cursor line (``ls``: its start)."""
    nl = text.find("\n", ls)
    cur = text[ls : nl if nl >= 0 else len(text)]
    width = _indent_width(cur)
    start = ls
    pos = ls
    for _ in range(HEAD_LINES):
        if pos == 0:
            break
        prev = line_start(text, pos - 1)
        line = text[prev : pos - 1]
        if line.strip() and _indent_width(line) < width:
            break
        pos = prev
        if line.strip():
            start = prev
    return start


_FUNCTIONS = frozenset({"function_definition", "function_declaration", "method_definition", "arrow_function",
                        "function_expression", "function"})
_PY_DEF = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]")


def _python_def_above(text: str, cursor: int, tree):
    """The ``def`` whose body the cursor's line is in, by indentation (a blank line after a
    function's last statement is not inside its node)."""
    ls = line_start(text, cursor)
    nl = text.find("\n", ls)
    line = text[ls : nl if nl >= 0 else len(text)]
    limit = len(line) - len(line.lstrip()) if line.strip() else len(line)
    pos = ls
    while pos > 0 and limit > 0:
        pos = line_start(text, pos - 1)
        ln = text[pos : text.find("\n", pos)]
        s = ln.lstrip()
        if not s or s.startswith("#"):
            continue
        w = len(ln) - len(s)
        if w < limit:
            if _PY_DEF.match(ln):
                node = tree.root_node.descendant_for_byte_range(*(2 * [offset_to_byte(text, pos + w)]))
                while node is not None and node.type != "function_definition":
                    node = node.parent
                return node
            limit = w
    return None


def _header_lines(ctx: MonitorContext) -> frozenset[str]:
    """The enclosing function's header lines and (Python) docstring lines, normalized, that a
    suggestion must not write again."""
    parsed = parse(ctx.text, ctx.language)
    if parsed is None:
        return frozenset()
    tree, data = parsed
    b = offset_to_byte(ctx.text, ctx.cursor)
    node = tree.root_node.descendant_for_byte_range(b, b)
    while node is not None and node.type not in _FUNCTIONS:
        node = node.parent
    if node is None and canonical_language(ctx.language) == "python":
        node = _python_def_above(ctx.text, ctx.cursor, tree)
    if node is None:
        return frozenset()
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    if body is not None and body.named_child_count:
        first = body.named_children[0]
        if first.type == "expression_statement" and first.named_child_count and first.named_children[0].type == "string":
            end = first.end_byte  # the docstring
    if end > b:
        return frozenset()  # the cursor is in the header itself
    text = data[node.start_byte : end].decode("utf-8", "replace")
    lines = {_WS_NORM.sub(" ", ln).strip() for ln in text.split("\n")}
    # lines any function may have twice are not copies worth refusing
    return frozenset(ln for ln in lines if len(ln) >= 8 and ln not in ('"""', "'''"))


class RepetitionMonitor:
    """Structural repetition penalty (RPG) and no copy of the function's header; any language
    with a tree-sitter grammar."""

    name = "repetition"
    languages = frozenset({"python", "javascript", "typescript", "javascriptreact", "typescriptreact"})

    def __init__(self, lam: float = LAMBDA, end_at: int = END_AT) -> None:
        self.lam = lam
        self.end_at = end_at

    def start(self, ctx: MonitorContext) -> RepetitionSession | None:
        if canonical_language(ctx.language) is None:
            return None
        return RepetitionSession(ctx, _header_lines(ctx), self.lam, self.end_at)
