"""From a document and a cursor to the tokens the model evaluates.

* Context window: the text before the cursor, cut at a line boundary so it fits the token budget.
  The window's first line is snapped to a multiple of ``WINDOW_STEP`` lines, so while the user
  types the start (and with it every cached KV entry) stays put; it moves in coarse steps only.
* Templates: a FIM template (``completion.fim``) when the model has FIM tokens, else prefix-only.
  Special tokens are inserted as ids, text segments tokenized separately, so segment boundaries
  are stable across keystrokes.
* File header: at the top of a file (nothing but blank lines before the cursor's line) the model
  has no code to tell it the language, and the default model wrote English prose into an empty
  ``.py`` file. The prompt then starts with the file's name as a line comment (``# main.py``),
  as other completion tools head their prompts with the path; it is not part of the document.
* Token healing: when the prompt ends inside what the tokenizer would merge with the next
  characters (half an identifier, indentation after a newline), the last token(s) are backed off
  and the decoder must regenerate that text first (``healing`` in the returned Prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitors.vocabulary import Vocabulary

from .fim import ResolvedTemplate

__all__ = ["WINDOW_STEP", "Prompt", "PromptBuilder", "heal_tokens"]

WINDOW_STEP = 16  # lines: granularity of the context window's start
_CHARS_PER_TOKEN_GUESS = 3.0
#: line comment per LSP language id, for the file header of a prompt at the top of a file
LINE_COMMENTS = {
    **dict.fromkeys(("python", "ruby", "shellscript", "perl", "r", "yaml", "toml", "makefile", "dockerfile",
                     "powershell", "elixir", "julia", "nim", "coffeescript"), "#"),
    **dict.fromkeys(("javascript", "javascriptreact", "typescript", "typescriptreact", "go", "rust", "java",
                     "c", "cpp", "csharp", "swift", "kotlin", "scala", "php", "dart", "zig", "groovy",
                     "objective-c", "objective-cpp", "fsharp"), "//"),
    **dict.fromkeys(("lua", "sql", "haskell", "elm", "ada"), "--"),
    **dict.fromkeys(("clojure", "lisp", "scheme"), ";;"),
    **dict.fromkeys(("erlang", "latex", "tex", "matlab"), "%"),
    "vim": '"',
}


@dataclass(frozen=True)
class Prompt:
    """What to evaluate and how the output relates to the document."""

    tokens: list[int]
    healing: str  # text removed from the prompt's end; the output must start with it
    decode_start: int  # document offset where generated text begins (cursor - len(healing))
    window_start: int  # document offset of the first prefix character in the prompt
    suffix_end: int  # document offset after the last suffix character in the prompt (FIM)
    template: str  # FIM template name or "prefix-only"
    n_fixed: int  # leading tokens that are structure (BOS, markers), never healed


def heal_tokens(
    tokens: Sequence[int],
    vocab: Vocabulary,
    *,
    n_fixed: int = 0,
    max_tokens: int = 3,
    max_chars: int = 32,
) -> tuple[list[int], str]:
    """Back off trailing tokens that the tokenizer could merge with what comes next.

    The last token is backed off when some vocabulary token strictly extends its text; each
    earlier one when a single token could span it and the text already backed off. Returns
    (kept tokens, backed-off text). Pure: the input is not modified.
    """
    removed = ""
    k = 0
    n = len(tokens)
    while k < max_tokens and n - k > n_fixed:
        text = vocab.text(tokens[n - 1 - k])
        if text is None:
            break
        cand = text + removed
        if len(cand) > max_chars:
            break
        if k == 0:
            if not vocab.has_longer_than(cand):
                break
        elif not len(vocab.ids_starting_with(cand)):
            break
        removed = cand
        k += 1
    return list(tokens[: n - k]), removed


class PromptBuilder:
    """Builds prompts for one model (tokenizer + vocabulary + optional FIM template)."""

    def __init__(
        self,
        tokenize: Callable[[str], list[int]],
        vocab: Vocabulary,
        *,
        bos_id: int | None,
        template: ResolvedTemplate | None,
        heal: bool = True,
    ) -> None:
        self._tokenize = tokenize
        self.vocab = vocab
        self.bos_id = bos_id
        self.template = template
        self.heal = heal

    # ---- windows ---------------------------------------------------------------------------
    def _prefix_window(self, text: str, end: int, budget: int) -> tuple[int, list[int]]:
        """Window start and tokens of text[start:end], at most ``budget`` tokens.

        The start is the first line start, at or after an estimate, whose line number is a
        multiple of WINDOW_STEP and that fits the budget, so it stays put while the user types;
        finer steps are used only when WINDOW_STEP lines alone exceed the budget, and a
        character position inside one huge line as the last resort.
        """
        if end == 0 or budget <= 0:
            return end, []
        pos = max(0, end - int(budget * _CHARS_PER_TOKEN_GUESS * 1.5))
        for step in (WINDOW_STEP, 4, 1):
            start = _snap_line_start(text, pos, end, step)
            for _ in range(8):
                if start is None:
                    break
                toks = self._tokenize(text[start:end])
                if len(toks) <= budget:
                    return start, toks
                advance = int((len(toks) - budget) * (end - start) / len(toks)) + 1
                start = _snap_line_start(text, start + advance, end, step)
        # one very long line: cut inside it
        start = max(pos, text.rfind("\n", 0, end) + 1)
        toks = self._tokenize(text[start:end])
        while len(toks) > budget and start < end:
            # drop the excess at this text's own characters per token (digits and operators run
            # one character a token: a fixed guess of two jumped past the cursor, leaving no context)
            start = min(end, start + int((len(toks) - budget) * (end - start) / len(toks)) + 1)
            toks = self._tokenize(text[start:end])
        return start, toks

    def _suffix_window(self, text: str, offset: int, budget: int) -> tuple[int, list[int]]:
        if budget <= 0 or offset >= len(text):
            return offset, []
        end = min(len(text), offset + int(budget * _CHARS_PER_TOKEN_GUESS * 1.5))
        for _ in range(6):
            nl = text.rfind("\n", offset, end)
            cut = nl + 1 if nl >= offset and end < len(text) else end
            toks = self._tokenize(text[offset:cut])
            if len(toks) <= budget:
                return cut, toks
            end = offset + int((cut - offset) * budget / len(toks))
        return offset, []

    def _file_comment(self, text: str, line_start: int, path: str | None, language: str | None) -> list[int]:
        """Tokens of ``# name.py`` and a blank line when only blank lines come before the cursor's
        line of a file whose language has line comments (see the module docstring)."""
        marker = LINE_COMMENTS.get(language or "")
        if self.template is not None and self.template.file_sep_id is not None:
            return []  # the template names the file itself
        name = path.replace("\\", "/").rsplit("/", 1)[-1] if path else ""
        if not marker or not name or text[:line_start].strip():
            return []
        return self._tokenize(f"{marker} {name}\n\n")

    # ---- prompt ---------------------------------------------------------------------------
    def build(
        self,
        text: str,
        offset: int,
        *,
        budget: int,
        suffix_budget: int = 0,
        path: str | None = None,
        language: str | None = None,
    ) -> Prompt:
        """The prompt for a completion at code-point ``offset`` of ``text``."""
        if not 0 <= offset <= len(text):
            raise ValueError(f"offset {offset} is outside the document (length {len(text)})")
        line_start = text.rfind("\n", 0, offset) + 1
        line_part = text[line_start:offset]
        head: list[int] = [self.bos_id] if self.bos_id is not None else []
        t = self.template
        file_comment = self._file_comment(text, line_start, path, language)
        if file_comment:
            budget -= len(file_comment)
        if t is None:
            # prefix-only: the whole window is one text segment; typing appends to it
            start, body = self._prefix_window(text, offset, budget)
            tokens = head + file_comment + body
            n_fixed = len(head) + len(file_comment)
            suffix_end = offset
            name = "prefix-only"
        else:
            line_cut = line_start
            line_toks = self._tokenize(line_part) if line_part else []
            if len(line_toks) > budget // 2:  # a huge current line: keep its end
                line_cut, line_toks = self._prefix_window(text, offset, budget // 2)
                if line_cut < line_start:
                    line_cut, line_toks = line_start, self._tokenize(line_part)
            prefix_budget = max(0, budget - len(line_toks))
            start, pre_toks = self._prefix_window(text, line_start, prefix_budget) if line_cut == line_start else (line_cut, [])
            suffix_end, suf_toks = self._suffix_window(text, offset, suffix_budget)
            file_head: list[int] = []
            if t.file_sep_id is not None and path:
                file_head = [t.file_sep_id, *self._tokenize(path.rsplit("/", 1)[-1] + "\n")]
            pre_toks = file_comment + pre_toks
            if t.template.order == "psm":
                tokens = head + file_head + [t.prefix_id] + pre_toks + [t.suffix_id] + suf_toks + [t.middle_id]  # type: ignore[list-item]
            else:
                tokens = head + file_head + [t.suffix_id] + suf_toks + [t.prefix_id] + pre_toks
            n_fixed = len(tokens)
            tokens += line_toks
            name = t.name
        healing = ""
        if self.heal:
            tokens, healing = heal_tokens(tokens, self.vocab, n_fixed=n_fixed)
        return Prompt(
            tokens=tokens,
            healing=healing,
            decode_start=offset - len(healing),
            window_start=start,
            suffix_end=suffix_end,
            template=name,
            n_fixed=n_fixed,
        )


def _snap_line_start(text: str, pos: int, limit: int, step: int = WINDOW_STEP) -> int | None:
    """First line start at or after ``pos`` whose 0-based line number is a multiple of ``step``.

    Only line starts up to the start of the line holding ``limit`` qualify; None when there is
    no such line start.
    """
    last = text.rfind("\n", 0, limit) + 1  # start of the line holding ``limit``
    if pos <= 0:
        start = 0
    elif text[pos - 1] == "\n":
        start = pos
    else:
        nl = text.find("\n", pos)
        if nl < 0:
            return None
        start = nl + 1
    if start > last:
        return None
    line_no = text.count("\n", 0, start)
    while line_no % step:
        nl = text.find("\n", start)
        if nl < 0 or nl + 1 > last:
            return None
        start = nl + 1
        line_no += 1
    return start if start <= last else None
