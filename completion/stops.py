"""Single- vs multi-line, and when to stop: stream filters on the text after the cursor.

``decide_line_mode`` looks at the syntax at the cursor (tree-sitter where there is a grammar):
text after the cursor, a string or comment, or an open bracket (also after a ``:`` or ``=>``
inside one) -> finish the line; an empty line or the end of a block opener -> a block of up to
``max_lines`` lines.

``StopRules.feed(text)`` is called with the text generated after the cursor after every token
and returns where to cut when generation should stop:

* single-line: the end of the line; a closing bracket or quote that the rest of the line
  already supplies (also one that the rest closes further on: ``print(┃, end="")``); (Python) a
  closing bracket that closes nothing open; (``;`` languages) the end of the statement; the
  ``}`` of a template literal's ``${┃}``;
* multi-line: a line indented less than the block; two blank lines; ``max_lines``; a line that
  equals the next non-blank line below the cursor (never repeat what is already there; a bare
  closer only at the same indent); the same line three times in a row; an assignment that
  calls nothing, right after itself.

``StopRules.finish(text)`` applies the same rules to the final text and trims it (trailing
whitespace, the part of the line that is already after the cursor, a block's last line when the
token limit cut it; a block before the editor's ``}`` ends on a line of its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitors.repeats import is_idempotent_assignment
from monitors.syntax import canonical_language, cursor_syntax, open_brackets

from .document import line_bounds

__all__ = ["LineMode", "StopRules", "decide_line_mode"]

_CLOSERS = {")": "(", "]": "[", "}": "{"}
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_SUFFIX_OK = set(")]}\"'`;:,. \t")
_CLOSER_LINE = set(")]};,")
_SUBSTITUTION = "${"
_SEMICOLON_LANGUAGES = frozenset({"javascript", "javascriptreact", "typescript", "typescriptreact", "tsx", "java",
                                  "c", "cpp", "csharp", "rust", "php"})
_PROSE = frozenset({"plaintext", "markdown", "text", "restructuredtext", "latex", "tex", "asciidoc", "git-commit"})


@dataclass(frozen=True)
class LineMode:
    multiline: bool
    max_lines: int
    reason: str


def _indent_width(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def _opens_block(before: str, language: str | None) -> bool:
    s = before.rstrip()
    if not s:
        return False
    key = canonical_language(language)
    if key == "python" or language in (None, "plaintext"):
        if s.endswith(":"):
            return True
    if key != "python" and s.endswith(("{", "=>")):
        return True
    return False


def _opened_here(text: str, offset: int, language: str | None, before: str) -> bool:
    """True when the innermost bracket open at the cursor is the ``{`` that ends ``before``."""
    opened = open_brackets(text, offset, language)
    return bool(opened) and text[opened[-1]] == "{" and not text[opened[-1] + 1 : offset].strip()


def decide_line_mode(text: str, offset: int, language: str | None, policy: str = "auto", max_lines: int = 8) -> LineMode:
    """Single-line or a block, from the syntax at the cursor and the configured policy."""
    if policy == "single" or max_lines <= 1:
        return LineMode(False, 1, "policy: single-line")
    start, end = line_bounds(text, offset)
    before = text[start:offset]
    after = text[offset:end]
    if after.strip() and not set(after.strip()) <= _SUFFIX_OK:
        return LineMode(False, 1, "text after the cursor")
    if policy == "multi":
        return LineMode(True, max_lines, "policy: multi-line")
    syn = cursor_syntax(text, offset, language)
    if syn is not None:
        if syn.in_comment:
            return LineMode(False, 1, "in a comment")
        if syn.in_string:
            return LineMode(False, 1, "in a string")
    if not before.strip():
        if syn is not None and syn.open_brackets:
            return LineMode(True, max_lines, "empty line inside brackets")
        return LineMode(True, max_lines, "empty line")
    if _opens_block(before, language):
        if syn is None or not syn.open_brackets or _opened_here(text, offset, language, before):
            return LineMode(True, max_lines, "after a block opener")
        # ``xs[1:┃]``, ``{"name":┃}``, ``lambda x:┃)``, ``map(x =>┃)``: a `:` or `=>` inside brackets
        # opens no block (as a block, the closers after the cursor were written twice)
        return LineMode(False, 1, "inside brackets")
    if syn is not None and syn.open_brackets:
        return LineMode(False, 1, "inside brackets")
    return LineMode(False, 1, "mid-statement: finish the line")


def _lead(line: str, *, complete: bool) -> str | None:
    """A line's first word, or its first character when it starts with no word character; None
    while that word may still grow (``complete``: the line is whole)."""
    s = line.lstrip()
    if not s:
        return None
    if not (s[0] == "_" or s[0].isalnum()):
        return s[0]
    j = 1
    while j < len(s) and (s[j] == "_" or s[j].isalnum()):
        j += 1
    return s[:j] if j < len(s) or complete else None


_REPEAT = re.compile(r"(.{3,}?)\1{2,}$", re.S)


def _repetition_cut(gen: str) -> int | None:
    """Where a run of the same chunk (3+ times in a row, on the last line) starts repeating."""
    ls = gen.rfind("\n") + 1
    tail = gen[ls:][-200:]
    m = _REPEAT.search(tail)
    if m is None or not m.group(1).strip():
        return None
    return len(gen) - len(tail) + m.start() + len(m.group(1))


class StopRules:
    """Stream filter for one request (see the module docstring)."""

    def __init__(self, text: str, offset: int, mode: LineMode, language: str | None = None) -> None:
        self.mode = mode
        start, end = line_bounds(text, offset)
        self.line_before = text[start:offset]
        # Python: the brackets still open at the cursor (None: do not judge closers; another
        # language, or the cursor in a string or comment)
        self.open_at_cursor: list[str] | None = None
        key = canonical_language(language)
        syn = cursor_syntax(text, offset, language) if key and not mode.multiline else None
        if key == "python" and syn is not None and not syn.in_string and not syn.in_comment:
            self.open_at_cursor = [text[p] for p in open_brackets(text, offset, "python")]
        in_comment = syn is not None and syn.in_comment
        self.line_after = text[offset:end].rstrip()
        self._suffix_closes: int | None = None
        self._before_state: tuple[tuple[str, ...], str | None] | None = None
        # prose has apostrophes, not strings (``Don't forget (┃)``, ``# don't call (┃)`` read as
        # inside a string), and no statements
        self._quotes = "" if language in _PROSE or in_comment else "\"'`"
        self._semicolons = not in_comment and (key in _SEMICOLON_LANGUAGES or language in _SEMICOLON_LANGUAGES)
        self.cursor_line_blank = not self.line_before.strip()
        self.line_indent = _indent_width(self.line_before if self.cursor_line_blank else text[start:end])
        # the next non-blank lines below the cursor line
        below: list[str] = []
        pos = end
        while pos < len(text) and len(below) < 3:
            nl = text.find("\n", pos + 1)
            line = text[pos + 1 : nl if nl >= 0 else len(text)].rstrip("\r")
            if line.strip():
                below.append(line)
            if nl < 0:
                break
            pos = nl
        self.below = below
        self.reason = ""

    # ---- streaming -------------------------------------------------------------------------
    def feed(self, gen: str) -> int | None:
        """Where to cut ``gen`` if generation should stop now, else None (``reason`` says why)."""
        self.reason = ""
        rep = _repetition_cut(gen)
        if rep is not None:
            self.reason = "repetition"
            return rep
        if not self.mode.multiline:
            nl = gen.find("\n")
            cut, reason = self._line_cut(gen[: nl if nl >= 0 else len(gen)])
            if cut is not None:
                self.reason = reason
                return cut
            if nl >= 0:
                self.reason = "end of line"
                return nl
            return None
        return self._block_cut(gen, final=False)

    def _scan(self, line: str, stack: list[str], quote: str | None, stop_below: int | None = None,
              python: bool = False, semicolon_at: int | None = None, depths: list[int] | None = None):
        """Bracket/quote scan of ``line`` from (stack, quote); with ``stop_below``, also find the
        index where a closer matching the line suffix's first character takes the stack below
        that depth (the suggestion closing what the cursor line already closes). With
        ``python``, a closer that matches nothing open is found too, and a ``#`` ends the scan.
        With ``semicolon_at``, the index after a ``;`` at that depth is found (a statement's end).
        ``depths`` collects the stack's depth after each closer."""
        after = self.line_after.lstrip()
        escaped = False
        substitution = False  # at the ``{`` of a template literal's ``${``
        for i, ch in enumerate(line):
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
                elif quote == "`" and ch == "$" and line[i + 1 : i + 2] == "{" and not python:
                    # ``${`` in a JS/TS template literal: code until its ``}``
                    stack.append(_SUBSTITUTION)
                    quote, substitution = None, True
                continue
            if substitution:
                substitution = False
                continue
            if ch in self._quotes:
                quote = ch
            elif ch in _OPENERS:
                stack.append(ch)
            elif ch in _CLOSERS:
                if stack and (stack[-1] == _CLOSERS[ch] or (ch == "}" and stack[-1] == _SUBSTITUTION)):
                    if stack.pop() == _SUBSTITUTION:
                        quote = "`"  # back in the template literal
                    if depths is not None:
                        depths.append(len(stack))
                    if stop_below is not None and len(stack) < stop_below and after[:1] == ch:
                        return i, stack, quote
                elif python:
                    return i, stack, quote
            elif python and ch == "#":
                break  # a comment: what follows is not code
            elif ch == ";" and semicolon_at is not None and len(stack) == semicolon_at:
                return i + 1, stack, quote
        return None, stack, quote

    def _line_cut(self, line: str) -> tuple[int | None, str]:
        """Where a single-line suggestion ends before its line's end, and why (None, ""): the
        same rules for the stream and for the final text."""
        for rule, reason in ((self._closer_cut, "line suffix"), (self._unmatched_closer, "unmatched bracket"),
                             (self._statement_end, "end of statement")):
            cut = rule(line)
            if cut is not None:
                return cut, reason
        return None, ""

    def _before(self) -> tuple[list[str], str | None]:
        """(open brackets, open quote) at the cursor from a scan of its line, computed once
        per request (the rules ask after every token); the stack is a fresh copy."""
        if self._before_state is None:
            _, stack, quote = self._scan(self.line_before, [], None)
            self._before_state = (tuple(stack), quote)
        return list(self._before_state[0]), self._before_state[1]

    def _closer_cut(self, line: str) -> int | None:
        """Index where the suggestion starts closing what the rest of the cursor line closes."""
        after = self.line_after.lstrip()
        if not after or after[0] not in ")]}\"'`":
            return None
        stack, quote = self._before()
        base = len(stack)
        if quote and after[0] == quote:
            # the cursor is inside a string the line suffix closes: stop at its closing quote
            return self._closer_in_string(line, quote)
        cut, _, _ = self._scan(line, list(stack), quote, stop_below=base)
        return cut

    def _unmatched_closer(self, line: str) -> int | None:
        """Python: index of a closing bracket in the suggestion that closes nothing open (more
        ``)`` than there are ``(``, or ``]`` where ``(`` is open): the line ends before it."""
        if self.open_at_cursor is None:
            return None
        if self._suffix_closes is None:
            self._suffix_closes = self._closed_by_line_suffix()
        open_for_it = self.open_at_cursor[: len(self.open_at_cursor) - self._suffix_closes]
        cut, _, _ = self._scan(line, open_for_it, None, python=True)
        return cut

    def _statement_end(self, line: str) -> int | None:
        """Languages whose statements end with ``;``: the index after the ``;`` that ends the
        cursor's statement when more follows it (``s.len┃`` + ``gth; console.clear(); …``).
        A ``;`` inside brackets (``for (;;)``, also when the cursor is in them) or strings is not
        an end; neither is one when the rest of the line has text (the suggestion is inserted
        into a statement)."""
        if not self._semicolons or self.line_after.strip():
            return None
        stack, quote = self._before()
        if quote or stack:
            return None
        cut, _, _ = self._scan(line, [], None, semicolon_at=0)
        return cut if cut is not None and line[cut:].strip() else None

    def _closed_by_line_suffix(self) -> int:
        """How many of the brackets open at the cursor the rest of its line closes: the
        suggestion must not close those too (``print(┃, end="")`` + ``msg)``)."""
        depth = len(self.open_at_cursor or ())
        depths: list[int] = []
        self._scan(self.line_after, list(self.open_at_cursor or ()), None, python=True, depths=depths)
        return depth - min([depth, *depths])

    @staticmethod
    def _closer_in_string(line: str, quote: str) -> int | None:
        escaped = False
        for i, ch in enumerate(line):
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                return i
        return None

    def _block_cut(self, gen: str, *, final: bool) -> int | None:
        lines = gen.split("\n")
        complete = lines if final else lines[:-1]  # the last line may still grow
        offsets = []
        pos = 0
        for line in lines:
            offsets.append(pos)
            pos += len(line) + 1
        block_indent: int | None = None
        if self.cursor_line_blank:
            block_indent = _indent_width(self.line_before + lines[0]) if lines[0].strip() else None
        blank_run = 0
        nonblank = 0
        repeat_run = 1
        prev = None
        for i, line in enumerate(complete):
            stripped = line.strip()
            if i == 0 and not self.cursor_line_blank:
                continue  # the rest of the cursor line
            full = (self.line_before + line) if i == 0 else line
            if not stripped:
                blank_run += 1
                if blank_run >= 2 and nonblank:
                    self.reason = "two blank lines"
                    return offsets[i - 1] - 1 if i > 0 else 0
                if nonblank and (block_indent if block_indent is not None else self.line_indent) > 0 and i > 0:
                    # inside a function or class: a blank line ends a paragraph of code, and
                    # what comes after it the model writes without knowing the text below
                    self.reason = "blank line"
                    return offsets[i] - 1
                continue
            blank_run = 0
            indent = _indent_width(full)
            if block_indent is None:
                if not self.cursor_line_blank and indent <= self.line_indent:
                    self.reason = "no indented block after the opener"
                    return max(offsets[i] - 1, 0)
                block_indent = indent
            elif indent < self._dedent_floor(block_indent):
                self.reason = "dedent"
                return max(offsets[i] - 1, 0)
            if (self.below and stripped == self.below[0].strip() and (i > 0 or self.cursor_line_blank)
                    and (indent == _indent_width(self.below[0]) or not set(stripped) <= _CLOSER_LINE)):
                # a bare closer (``}``) repeats the one below only at its indent: deeper, it
                # closes the suggestion's own block (``if (…) {`` … ``    }``)
                self.reason = "repeats the line below"
                return max(offsets[i] - 1, 0)
            if stripped == prev and is_idempotent_assignment(stripped):
                # ``self.x = x`` twice in a row does nothing
                self.reason = "repeats the assignment above"
                return max(offsets[i] - 1, 0)
            if stripped == prev:
                repeat_run += 1
                if repeat_run >= 3:
                    self.reason = "repeating line"
                    return max(offsets[i] - 1, 0)
            else:
                repeat_run = 1
            prev = stripped
            nonblank += 1
            if nonblank > self.mode.max_lines:
                self.reason = "max lines"
                return max(offsets[i] - 1, 0)
        return self._suffix_follows(lines, offsets, final)

    def _dedent_floor(self, block_indent: int) -> int:
        """How far a block may dedent before it ends: to its own indentation, or -- at a blank
        line inside a block that the text below goes on at a lower level -- to that level (the
        suggestion may close the inner block first; the document goes on where it lands)."""
        if not self.cursor_line_blank or not self.below:
            return block_indent
        below = _indent_width(self.below[0])
        return below if 0 < below < block_indent else block_indent

    def _suffix_follows(self, lines: list[str], offsets: list[int], final: bool) -> int | None:
        """A block ends before a line of its own (not its first) that starts as the next line
        below the cursor does: at its indentation, with its first word (``return``, ``for``,
        ``#``). The model goes on with what the document already has there: a prefix-only model
        cannot see the suffix, so this is where the block it was asked for ends."""
        if not self.below or not self.cursor_line_blank:
            return None
        below = self.below[0]
        want = _lead(below, complete=True)
        if want is None:
            return None
        width = _indent_width(below)
        for i in range(1, len(lines)):
            line = lines[i]
            if not line.strip():
                continue
            if _indent_width(line) == width and _lead(line, complete=final or i < len(lines) - 1) == want:
                self.reason = "the suffix follows"
                return max(offsets[i] - 1, 0)
        return None

    def supplies_own_closers(self, line: str, after: str) -> bool:
        """True when ``line`` already closes what ``after`` would close (so ``after`` repeats)."""
        before_stack, before_quote = self._before()
        _, full_stack, full_quote = self._scan(line, list(before_stack), before_quote)
        closers = sum(ch in _CLOSERS for ch in after)
        return full_quote is None and len(full_stack) <= len(before_stack) - closers

    # ---- final text ------------------------------------------------------------------------
    def finish(self, gen: str, *, cut_short: bool = False) -> str:
        """The suggestion to show: ``gen`` cut by the rules and trimmed. ``cut_short``: generation
        ended without a natural end (the token limit): a block's unfinished last line is dropped
        (it ended in an open string, a half name, ``epilog=\"\"\"`` ...)."""
        if not self.mode.multiline:
            nl = gen.find("\n")
            line = gen if nl < 0 else gen[:nl]
            cut, _ = self._line_cut(line)
            if cut is not None:
                line = line[:cut]
            line = line.rstrip()
            after = self.line_after.strip()
            if after and line.endswith(after) and self.supplies_own_closers(line, after):
                line = line[: len(line) - len(after)].rstrip()
            if not line.strip():
                return ""
            return line
        cut = self._block_cut(gen, final=True)
        if cut is not None:
            gen = gen[:cut]
        lines = [ln.rstrip() for ln in gen.split("\n")]
        if (cut_short or self.reason == "repetition") and cut is None and len(lines) > 1 and lines[-1].strip():
            lines.pop()  # the last line stops mid-way: keep the complete ones
        while lines and not lines[-1].strip():
            lines.pop()
        out = "\n".join(lines)
        if not out.strip():
            return ""
        if self.cursor_line_blank and self.below:
            first = next((ln for ln in lines if ln.strip()), "")
            if first.strip() == self.below[0].strip():
                return ""
        if "\n" in out and not self.cursor_line_blank and self.line_after.lstrip()[:1] in _CLOSERS:
            # ``{┃}``: the block ends on a line of its own so that the editor's closer lands on
            # the next line at the opener's indent (it was glued to the last line: ``x;}``)
            out += "\n" + self.line_before[: len(self.line_before) - len(self.line_before.lstrip())]
        return out
