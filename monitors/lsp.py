"""Members monitor for other languages, through their language servers (multilspy).

TypeScript and JavaScript use typescript-language-server, which ``steercode install-servers``
(run by ``make setup``) installs with npm into steercode's cache directory (``monitors.languages``); nothing is
downloaded at run time -- a language whose server is not installed is skipped with one log line.
Other languages multilspy knows are used when their server binary is on PATH (gopls,
rust-analyzer, clangd).

The language server runs inside the analysis worker process (``monitors.worker``); a session
asks it for completions after ``expr.`` exactly as the jedi members monitor asks jedi, and the
same identifier state machine (``IdentifierSession``) applies the answer.
"""

from __future__ import annotations

import logging
import re

from .base import AnalysisRunner, MonitorContext, NameSet
from .identifiers import IdentifierSession
from .languages import LANGUAGE_SERVERS, server_status
from .syntax import canonical_language, cursor_in_code
from .textscan import after_member_dot, code_state, is_word, line_start

log = logging.getLogger(__name__)

__all__ = ["LspMembersMonitor"]


def _language_key(language: str) -> str | None:
    key = canonical_language(language) or (language or "").lower()
    return key if key in LANGUAGE_SERVERS else None


class LspMembersSession(IdentifierSession):
    name = "lsp-members"
    kind = "lsp-members"
    requires_identifier = True

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self._bindings: dict[str, NameSet] = {}

    def in_context(self, full: str, s: int) -> bool:
        if not after_member_dot(full, s, ")]}\"'`?$"):  # not a spread / range / number either
            return False
        if code_state(full, s, python=False) != "code":
            return False
        line = full[line_start(full, s) : s].lstrip()
        return not line.startswith(("import ", "export ", "//"))

    def job(self, before: str) -> tuple:
        key = _language_key(self.ctx.language)
        return ("lsp-members", key, self.ctx.root, self.ctx.path, before, self.after)

    def _binding(self, full: str, s: int) -> NameSet | None:
        """``this.x = ...`` at the start of a statement may define ``x`` (see the Python monitor)."""
        j = s - 1
        while j > 0 and (is_word(full[j - 1]) or full[j - 1] in ".$"):
            j -= 1
        if full[line_start(full, s) : j].strip():
            return None
        root = full[j : s - 1]
        if not root:
            return None
        if root in self._bindings:
            return self._bindings[root]
        text = self.ctx.text
        cl = text.rfind("\n", 0, self.ctx.cursor) + 1
        ce = text.find("\n", self.ctx.cursor)
        doc = text[:cl] + (text[ce:] if ce >= 0 else "")
        names = set(re.findall(r"\b" + re.escape(root) + r"\.([A-Za-z_$][\w$]*)", doc))
        params = re.findall(r"(?:constructor|function\s*\w*)\s*\(([^)]*)\)", full[max(0, s - 20000) : s])
        if params:
            names |= set(re.findall(r"([A-Za-z_$][\w$]*)\s*(?:[:=,?]|$)", params[-1]))
        ns = NameSet(names)
        self._bindings[root] = ns
        return ns

    def judge(self, full: str, s: int, e: int, word: str, complete: bool, legal: NameSet):
        if legal.admits(word, complete):
            return True
        binding = self._binding(full, s)
        if binding is None:
            return False
        rest = full[e:].lstrip(" \t")
        if e == len(full):
            return legal.admits(word, False) or binding.admits(word, False)
        if not rest:
            return binding.admits(word, True)
        if rest[0] == "=" and rest[1:2] != "=":
            return binding.admits(word, True)
        return self.rewind_from(legal, word, s)


class LspMembersMonitor:
    """After ``expr.`` in TypeScript/JavaScript (and more): only members the language server lists."""

    name = "lsp-members"

    def __init__(self, runner: AnalysisRunner, timeout_ms: float = 300.0, root: str | None = None) -> None:
        self.runner = runner
        self.timeout_s = timeout_ms / 1000
        self.root = root
        status = server_status()
        self.languages = frozenset(k for k, v in status.items() if v == "ok")
        skipped = {k: v for k, v in status.items() if v != "ok" and k in ("typescript", "javascript")}
        if skipped:
            log.info("LSP-backed monitors skipped: %s", skipped)

    def start(self, ctx: MonitorContext):
        if _language_key(ctx.language) is None:
            return None
        if not cursor_in_code(ctx.text, ctx.offset, ctx.language):
            return None
        session = LspMembersSession(ctx, self.runner, self.timeout_s)
        session.prefetch()
        return session

    def close(self) -> None:
        pass
