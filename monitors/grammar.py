"""The syntax constraint: a suggestion may not make the document syntactically worse.

The server knows the text after the cursor even when the model (Gemma: no FIM) does not. The
document with the suggestion put in must parse at least as well as the document without it:
``prefix + suggestion + suffix`` against ``prefix + suffix``.

* **Full check** (``SyntaxChecker.not_worse``): Python's own parser (``ast.parse``, exact,
  indentation included -- tree-sitter-python accepts ``if x:`` before a line that is not
  indented deeper) over the region that the suggestion can affect: the innermost ``def`` or
  ``class`` around the cursor (wrapped in ``if 1:`` when indented), or the top-level statements
  around it. Other languages: tree-sitter's ERROR and MISSING nodes in the whole document. The
  verdict compares the first error with the document's own: none where it had none, and never
  before the place where it had one (shifted by the suggestion).
* **Cheap checks per token**, Python, where a line of the suggestion starts (its first
  character that is not a blank): after a line that opens a block the next line is indented
  deeper; otherwise it is not, and a dedent lands on an enclosing level. A single line written
  at a statement start opens a block exactly when the suffix's next line is deeper.
* **Line ends**: a single-line suggestion is checked in full where its line ends (a token with a
  newline, or an end token); a worse one is rejected with a ``Rewind`` to the line's start, so
  the decoder takes its next choice there. A block is checked in full where generation would
  end (``may_end``, asked by the decoder before a stop rule or an end token ends it), and the
  engine trims a block that still ends badly back to its last line end that is well formed.

Answers depend only on (request, generated text); memoized by that text, so rollback is free.
A document that is already broken before the cursor gets no opinion, and so does a single line
in the middle of a statement where the document breaks at or after the cursor (the user is still
writing it).
"""

from __future__ import annotations

import ast
import logging
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

from .base import MonitorContext, MonitorStats
from .syntax import bracket_depth, canonical_language, offset_to_byte, parse
from .textscan import is_word, line_start
from .verdicts import Rewind, Verdict

log = logging.getLogger(__name__)

__all__ = ["PythonLines", "SyntaxChecker", "SyntaxMonitor", "SyntaxSession"]

#: Python statements that open a block (the line then ends with ``:``)
_OPENERS = frozenset({"if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class",
                      "async", "match", "case"})
_CLAUSES = ("else", "elif", "except", "finally", "case")
_HEADER = re.compile(r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]")
_STRING_TYPES = frozenset({"string", "string_content", "string_start", "string_end", "concatenated_string"})


def _width(ws: str) -> int:
    return sum(4 if ch == "\t" else 1 for ch in ws)


@dataclass
class _Line:
    start: int  # offset of the line's first character
    indent: int  # width of its leading blanks
    first: int  # offset of its first character that is not a blank (-1: a blank line so far)
    word: str  # its first word (a keyword, a name), "" if it starts otherwise
    continued: bool  # it starts inside brackets or a string opened on a line above
    comment: bool  # only a comment
    opener: bool  # ends with ``:`` outside brackets and strings (so far)
    open_at_end: bool  # brackets or a string still open where it ends (so far)


class PythonLines:
    """A lexical scan of Python text, line by line: indentation, first word, brackets, strings.

    Starts outside brackets and strings. The texts scanned are a suggestion's (a few hundred
    characters), and a scan happens only where a line starts, so it is not memoized.
    """

    def scan(self, text: str) -> list[_Line]:
        lines: list[_Line] = []
        pos, depth, quote = 0, 0, None
        while True:
            line, depth, quote, end = self._line(text, pos, depth, quote)
            lines.append(line)
            if end >= len(text):
                return lines
            pos = end + 1

    @staticmethod
    def _line(text: str, pos: int, depth: int, quote: str | None) -> tuple[_Line, int, str | None, int]:
        nl = text.find("\n", pos)
        end = len(text) if nl < 0 else nl
        continued = depth > 0 or quote is not None
        i = pos
        while i < end and text[i] in " \t\f":
            i += 1
        first = i if i < end else -1
        word = ""
        if first >= 0 and not continued and is_word(text[first]):
            j = first
            while j < end and is_word(text[j]):
                j += 1
            word = text[first:j]
        comment = first >= 0 and not continued and text[first] == "#"
        last_code = ""
        i = pos
        while i < end:
            ch = text[i]
            if quote is not None:
                if ch == "\\":
                    i += 2
                    continue
                if text.startswith(quote, i):
                    i += len(quote)
                    quote = None
                    last_code = "'"
                    continue
                i += 1
                continue
            if ch == "#":
                break
            if ch in "\"'":
                quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
                i += len(quote)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
            if ch not in " \t\r\f\\":
                last_code = ch
            i += 1
        if quote is not None and len(quote) == 1:
            quote = None  # a one-line string cannot go on to the next line (an error the parser sees)
        opener = last_code == ":" and depth == 0 and quote is None
        line = _Line(pos, _width(text[pos : first if first >= 0 else end]), first, word, continued, comment, opener,
                     depth > 0 or quote is not None)
        return line, depth, quote, end


class SyntaxChecker:
    """``not_worse(generated)``: does the document with ``generated`` at the decode start parse
    at least as well as the document as it is? (See the module docstring.)"""

    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx
        self.language = canonical_language(ctx.language)
        self.healed = ctx.text[ctx.offset : ctx.cursor]
        self._memo: dict[str, bool] = {}
        self.broken_before = False  # the document is broken before the cursor: no opinion
        self.needs_text = False  # the document is broken at the cursor: an empty suggestion is refused
        self.parses = 0
        self.parse_ms = 0.0
        if self.language == "python":
            self._py_region()
        else:
            self._ts_baseline()

    # ---- Python: the region's own parse --------------------------------------------------
    def _py_region(self) -> None:
        text, start, cursor = self.ctx.text, self.ctx.offset, self.ctx.cursor
        cur_ls = line_start(text, start)
        region_start, indent = self._py_header(text, cur_ls)
        region_end = self._py_end(text, cursor, indent)
        self.head = text[region_start:start]
        self.tail = text[cursor:region_end]
        self.wrap = "if 1:\n" if indent > 0 else ""
        self.cursor_line = self.head.count("\n")  # the cursor's line, 0-based in the region
        err = self._py_error(self.healed)
        self.base_error = err
        if err is not None and err < len(self.head) - (start - cur_ls):
            self.broken_before = True
        self.hole_end = self._hole_end()
        # the document without a suggestion breaks on the cursor's line or the next one (a block
        # opener above with no body, a body below with no opener): an empty suggestion is worse
        # than any that mends it
        nl = self.tail.find("\n")
        nl2 = self.tail.find("\n", nl + 1) if nl >= 0 else -1
        next_end = len(self.head) + len(self.healed) + (nl2 if nl2 >= 0 else len(self.tail))
        self.needs_text = (err is not None and not self.broken_before
                           and len(self.head) - (start - cur_ls) <= err <= next_end)

    def _py_header(self, text: str, cur_ls: int) -> tuple[int, int]:
        """(start, indentation) of the innermost ``def``/``class`` line above the cursor's line
        that encloses it; else (start of the top-level statement above, 0)."""
        nl = text.find("\n", cur_ls)
        line = text[cur_ls : nl if nl >= 0 else len(text)]
        limit = _width(line[: len(line) - len(line.lstrip())]) if line.strip() else _width(line)
        pos = cur_ls
        while pos > 0:
            pos = line_start(text, pos - 1)
            ln = text[pos : text.find("\n", pos)]
            s = ln.lstrip()
            if not s or s.startswith("#"):
                continue
            w = _width(ln[: len(ln) - len(s)])
            if w < limit:
                if _HEADER.match(ln) and not self._in_string(text, pos + len(ln) - len(s)):
                    return pos, w
                limit = w
            if w == 0 and s[0] not in ")]}" and not s.startswith(_CLAUSES) and not self._in_string(text, pos):
                return pos, 0
        return 0, 0

    def _in_string(self, text: str, pos: int) -> bool:
        parsed = parse(text, "python")
        if parsed is None:
            return False
        tree, _ = parsed
        b = offset_to_byte(text, pos)
        node = tree.root_node.descendant_for_byte_range(b, b)
        while node is not None:
            if node.type in _STRING_TYPES and node.start_byte < b:
                return True
            node = node.parent
        return False

    def _next_statement(self, text: str, pos: int, indent: int) -> int | None:
        """The start of the first code line after the one holding ``pos`` that is indented
        ``indent`` or less and begins a statement (None: the text ends first)."""
        nl = text.find("\n", pos)
        while nl >= 0:
            p = nl + 1
            nl = text.find("\n", p)
            ln = text[p : nl if nl >= 0 else len(text)]
            s = ln.lstrip()
            if not s or s.startswith("#") or s[0] in ")]}":
                continue
            if _width(ln[: len(ln) - len(s)]) > indent or (indent == 0 and s.startswith(_CLAUSES)):
                continue
            if self._in_string(text, p + len(ln) - len(s)):
                continue
            return p
        return None

    def _py_end(self, text: str, cursor: int, indent: int) -> int:
        """Where the region ends in the suffix: at the next statement indented ``indent`` or
        less; at the top level, after the next top-level statement (which the suggestion may
        join: a decorator before a ``def``)."""
        nxt = self._next_statement(text, cursor, indent)
        if nxt is not None and indent == 0:
            nxt = self._next_statement(text, nxt, 0)
        return len(text) if nxt is None else nxt

    def _py_error(self, middle: str) -> int | None:
        """Offset (in head + middle + tail) of the first syntax error, None when it parses."""
        src = self.wrap + self.head + middle + self.tail
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ast.parse(src)
            return None
        except SyntaxError as exc:
            return self._error_offset(src, exc)
        except (ValueError, RecursionError, MemoryError):
            return None  # not a syntax verdict
        finally:
            self.parses += 1
            self.parse_ms += (time.perf_counter() - t0) * 1000

    def _error_offset(self, src: str, exc: SyntaxError) -> int:
        lineno = (exc.lineno or 1) - (1 if self.wrap else 0)
        col = max((exc.offset or 1) - 1, 0)
        body = src[len(self.wrap) :]
        pos = 0
        for _ in range(max(lineno - 1, 0)):
            nl = body.find("\n", pos)
            if nl < 0:
                return len(body)
            pos = nl + 1
        return min(pos + col, len(body))

    # ---- other languages: tree-sitter's errors --------------------------------------------
    def _ts_baseline(self) -> None:
        text, start, cursor = self.ctx.text, self.ctx.offset, self.ctx.cursor
        self.head, self.tail, self.wrap = text[:start], text[cursor:], ""
        self.cursor_line = self.head.count("\n")
        first = self._ts_first_error(text)
        self.base_error = first
        if first is not None and first < line_start(text, start):
            self.broken_before = True
        self.hole_end = self._hole_end()

    def _hole_end(self) -> int:
        """In the tail: where the next code line after the cursor's ends. An error of the
        document before that is the hole the suggestion fills (a block opener missing before a
        deeper line): the suggestion must clear it, not just leave it."""
        tail = self.tail
        nl = tail.find("\n")
        while nl >= 0:
            p = nl + 1
            nl = tail.find("\n", p)
            ln = tail[p : nl if nl >= 0 else len(tail)]
            s = ln.strip()
            if s and not s.startswith(("#", "//")):
                return nl if nl >= 0 else len(tail)
        return len(tail)

    def _ts_first_error(self, text: str) -> int | None:
        t0 = time.perf_counter()
        try:
            parsed = parse(text, self.language)
            if parsed is None:
                return None
            tree, data = parsed
            root = tree.root_node
            if not root.has_error:
                return None
            node = root
            while True:  # the first node in document order that is an error
                nxt = next((c for c in node.children if c.has_error or c.is_missing or c.type == "ERROR"), None)
                if node.type == "ERROR" or node.is_missing or nxt is None:
                    return len(data[: node.start_byte].decode("utf-8", "ignore"))
                node = nxt
        finally:
            self.parses += 1
            self.parse_ms += (time.perf_counter() - t0) * 1000

    # ---- the verdict -----------------------------------------------------------------------
    def _compare(self, err: int | None, n: int) -> bool:
        """Is a first error at ``err`` (in head + generated + tail, ``n`` generated characters)
        no worse than the document's own? None is no error. An error inside the generated text
        is worse; one in the head only where the document's own is no later; one in the tail
        only where the document's own is in the tail too, no later (shifted along), and past
        the next code line (the hole the suggestion fills, ``hole_end``)."""
        if err is None:
            return True
        base = self.base_error
        if base is None:
            return False
        h = len(self.head)
        if err < h:
            return base <= err
        if err < h + n:
            return False
        base_in_tail = base - h - len(self.healed)
        if base_in_tail < 0:
            return False
        return err - h - n >= max(base_in_tail, self.hole_end)

    def not_worse(self, generated: str) -> bool:
        """True when ``head + generated + tail`` has no error, or its first error is no worse
        than the document's own (see ``_compare``)."""
        hit = self._memo.get(generated)
        if hit is not None:
            return hit
        if self.language == "python":
            err = self._py_error(generated)
        else:
            err = self._ts_first_error(self.head + generated + self.tail)
        ok = self._compare(err, len(generated))
        if len(self._memo) > 256:
            self._memo.clear()
        self._memo[generated] = ok
        return ok


class SyntaxSession:
    """The syntax constraint for one request (see the module docstring)."""

    name = "syntax"
    #: out of rewinds, the decoder turns this constraint off for the request instead of ending
    #: the suggestion before the dead end: a line the model insists on beats an empty one
    yields = True

    def __init__(self, ctx: MonitorContext, multiline: bool) -> None:
        self.ctx = ctx
        self.multiline = multiline
        self.checker = SyntaxChecker(ctx)
        self.python = self.checker.language == "python"
        self.healed = ctx.cursor - ctx.offset
        self.stats = MonitorStats()
        self._lines = PythonLines()
        text = ctx.text
        ls = line_start(text, ctx.offset)
        self.head_line = text[ls : ctx.offset]  # the cursor's line before the decode start
        self.at_statement_start = not self.head_line.strip()
        # inside brackets (a call's arguments, a dict's lines) indentation means nothing
        self.in_brackets = self.python and bracket_depth(text, ctx.offset, "python") > 0
        self.levels, self.prev = self._context(text, ls) if self.python else ([], None)
        self.next_indent = self._next_code_indent(text, ctx.cursor) if self.python else None

    # ---- context -----------------------------------------------------------------------------
    def _context(self, text: str, ls: int) -> tuple[list[int], tuple[int, bool] | None]:
        """The enclosing blocks' indentation levels above the cursor's line, innermost last, and
        (indentation, opens a block) of the code line right above it."""
        levels: list[int] = []
        prev: tuple[int, bool] | None = None
        limit = None
        pos = ls
        seen = 0
        while pos > 0 and seen < 400:
            pos = line_start(text, pos - 1)
            ln = text[pos : text.find("\n", pos)]
            s = ln.strip()
            seen += 1
            if not s or s.startswith("#"):
                continue
            w = _width(ln[: len(ln) - len(ln.lstrip())])
            if prev is None:
                code = s.split("#", 1)[0].rstrip() if "#" in s and "'" not in s and '"' not in s else s
                prev = (w, code.endswith(":"))
            if limit is None or w < limit:
                levels.append(w)
                limit = w
            if w == 0:
                break
        levels.reverse()
        if not levels or levels[0] != 0:
            levels.insert(0, 0)
        return levels, prev

    @staticmethod
    def _next_code_indent(text: str, cursor: int) -> int | None:
        nl = text.find("\n", cursor)
        while nl >= 0:
            pos = nl + 1
            nl = text.find("\n", pos)
            ln = text[pos : nl if nl >= 0 else len(text)]
            s = ln.strip()
            if s and not s.startswith("#"):
                return _width(ln[: len(ln) - len(ln.lstrip())])
        return None

    # ---- the constraint ----------------------------------------------------------------------
    def check(self, generated: str, token: int, text: str | None) -> Verdict:
        if self.checker.broken_before:
            return True
        t0 = time.perf_counter()
        try:
            if self.ctx.vocab.is_control[token]:
                if self._empty(generated):
                    return not self.checker.needs_text
                if not self.multiline:
                    return self._line_end(generated)
                return True
            if text is None:
                return True  # raw UTF-8 bytes (part of ``计``): judged once the character is complete
            if self.python and not self.in_brackets and text.strip():
                v = self._indentation(generated, text)
                if v is not True:
                    return v
            if not self.multiline and "\n" in text and self._empty(generated + text[: text.index("\n")]):
                return not self.checker.needs_text  # the first line would stay empty
            if not self.multiline and "\n" in text and len(generated) + text.index("\n") > self.healed:
                return self._line_end(generated + text[: text.index("\n")])
            return True
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000
            self.stats.checks += 1

    def allowed(self, generated: str) -> Any:
        return None  # rejections come with a rewind or are local: the decoder tries its next choices

    def may_end(self, generated: str) -> bool:
        """May the suggestion be exactly ``generated``? (Asked before generation ends.)"""
        if self.checker.broken_before:
            return True
        if self._empty(generated):
            return not self.checker.needs_text
        t0 = time.perf_counter()
        try:
            self.stats.constrained.add(len(generated))
            return self.checker.not_worse(generated)
        finally:
            self.stats.check_ms += (time.perf_counter() - t0) * 1000

    def _empty(self, generated: str) -> bool:
        """Nothing but blanks past the user's own text."""
        return not generated[self.healed :].strip()

    def _line_end(self, line: str) -> Verdict:
        self.stats.constrained.add(len(line))
        if self.checker.not_worse(line):
            return True
        return Rewind(self.healed)  # the line's start: the first token the model chose past the user's text

    def _indentation(self, generated: str, text: str) -> Verdict:
        """Where ``text`` brings a line's first character that is not a blank: is the line
        indented as the line above allows? (Python.)"""
        full = self.head_line + generated
        k = full.rfind("\n") + 1
        last = full[k:]
        if last.strip():
            if "\n" not in text:
                # the line started earlier; a single line's first word may still be completing
                return self._first_word(generated, text) if not self.multiline and "\n" not in full else True
        lines = self._lines.scan(full + text)
        base = len(self.head_line)
        for ln in lines:
            if ln.first < 0 or ln.first < len(full):
                continue  # blank, or began before this token
            if ln.continued or ln.comment:
                continue
            return self._judge_line(lines, ln, base)
        return True

    def _judge_line(self, lines: list[_Line], ln: _Line, base: int) -> Verdict:
        idx = lines.index(ln)
        prev = next((p for p in reversed(lines[:idx]) if p.first >= 0 and not p.comment and not p.continued), None)
        if prev is None:
            if not self.at_statement_start or self.prev is None:
                return True
            p_indent, p_opener = self.prev
        else:
            if prev.open_at_end:
                return True
            p_indent, p_opener = prev.indent, prev.opener
        w = ln.indent
        if prev is None and not self.multiline:
            return True  # a single line's indentation is the user's
        block = self._block_indent(lines)
        if prev is not None and self.multiline and block is not None and w < block:
            return True  # a dedent out of the block: a stop rule ends the suggestion there
        ok = w > p_indent if p_opener else (w <= p_indent and w in self._levels(lines, idx))
        if ok:
            return True
        self.stats.constrained.add(ln.first - base)
        return Rewind(max(ln.start - base, 0))

    def _block_indent(self, lines: list[_Line]) -> int | None:
        first = next((ln for ln in lines if ln.first >= 0 and not ln.comment), None)
        return None if first is None else first.indent

    def _levels(self, lines: list[_Line], idx: int) -> set[int]:
        """Indentation levels a line at ``lines[idx]`` may dedent to."""
        levels = set(self.levels)
        for ln in lines[:idx]:
            if ln.first >= 0 and not ln.comment and not ln.continued:
                levels.add(ln.indent)
        return levels

    def _first_word(self, generated: str, text: str) -> Verdict:
        """A single line at a statement start does not open a block (``if``, ``for`` ...) when the
        suffix's next code line is not indented deeper (its first word settles it, once complete)."""
        if not self.at_statement_start or self.next_indent is None:
            return True
        full = self.head_line + generated + text
        s = full.lstrip(" \t")
        m = re.match(r"[A-Za-z_]\w*", s)
        if m is None or m.end() == len(s):
            return True  # not a word, or it may still grow
        word = m.group(0)
        indent = _width(full[: len(full) - len(s)])
        deeper = self.next_indent > indent
        if word in _CLAUSES and not deeper:
            return True  # ``else:`` may close the block above and go on at the next line's level
        if word in ("async", "match", "case") or deeper or word not in _OPENERS:
            # soft keywords are names too; and a line before a deeper one may open brackets
            # that the lines below go on (``return (a +``): its line end decides
            return True
        self.stats.constrained.add(len(generated))
        # a block opener where the next line is not indented deeper: back to the word's start,
        # so that the decoder takes its next choice for the line (every token after the word
        # would be refused)
        return Rewind(max(len(full) - len(s) - len(self.head_line), 0))

    def describe(self) -> dict[str, Any]:
        d = self.stats.as_dict()
        d.update(parses=self.checker.parses, parse_ms=round(self.checker.parse_ms, 2))
        return d


class SyntaxMonitor:
    """Suggestions that parse: see the module docstring. Python (exact), JS/TS (tree-sitter)."""

    name = "syntax"
    languages = frozenset({"python", "javascript", "typescript", "javascriptreact", "typescriptreact"})

    def start(self, ctx: MonitorContext) -> SyntaxSession | None:
        if canonical_language(ctx.language) is None:
            return None
        session = SyntaxSession(ctx, ctx.multiline)
        if session.checker.broken_before:
            log.debug("syntax: the document is broken before the cursor; no opinion")
            return None
        typed = ctx.text[line_start(ctx.text, ctx.cursor) : ctx.cursor].strip()  # the user's, healing aside
        if not ctx.multiline and (typed or session.in_brackets) and session.checker.base_error is not None:
            # one line in the middle of a statement the user is still writing (``if kwargs.┃``,
            # ``x = f(a, ┃``, ``ar┃``, a continuation line in brackets, ``return ''.┃`` whose
            # ``])`` is two lines below), the document broken from there on: the statement is
            # broken whatever the line says, and a single line is a part of what the user types
            # next, not the statement's end. Judging its end rewound the model's first choice
            # away (``''.join(`` became ``''.casefold(``) and refused partial lines: no opinion
            log.debug("syntax: a single line inside an unfinished statement; no opinion")
            return None
        return session
