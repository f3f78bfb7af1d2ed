"""Settings shared by every front end (LSP server, CLI, JSON-lines), validated in one place.

Keys are accepted in snake_case or camelCase (``max_tokens`` / ``maxTokens``). ``Settings.merge``
returns the new settings *and* a list of readable problems; a bad value keeps the previous one,
so a typo in an editor's configuration never stops completions.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = ["Settings", "check_model_url"]

_LINE_MODES = ("auto", "single", "multi")
_AUTOMATIC = ("on", "single", "off")
_VOCABULARIES = ("full", "code")


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _monitors_value(value: Any, current: tuple[str, ...]) -> Any:
    """``monitors`` accepts true/false (all/none), a list of names (or a comma-separated string),
    or {name: bool} over the current set."""
    from monitors.suite import ALL_MONITORS

    if value is True:
        return ALL_MONITORS
    if value is False or value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    if isinstance(value, str):  # "members,calls" (a command line's --set monitors=...)
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, Mapping):
        on = set(current)
        for k, v in value.items():
            if k not in ALL_MONITORS:
                return (*current, str(k))  # reported as an unknown monitor by problems()
            (on.add if v else on.discard)(k)
        return tuple(m for m in ALL_MONITORS if m in on)
    return value


def check_model_url(url: str) -> str | None:
    """A readable problem with ``url`` as a model server address (None: it is fine): http(s)
    with a host; plain http only to a loopback host (anything else must be https)."""
    if not isinstance(url, str) or not url:
        return f"model_url must be an http(s)://host:port address, got {url!r}"
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"model_url must be an http(s)://host:port address, got {url!r}"
    if u.query or u.fragment or u.username or u.password:
        return f"model_url must not carry a query, fragment or credentials (use api_key): {url!r}"
    try:
        u.port  # noqa: B018 - validates it
    except ValueError:
        return f"model_url has a bad port: {url!r}"
    if u.scheme == "http" and not _is_loopback(u.hostname):
        return f"model_url {url!r}: plain http is only allowed to a loopback address; use https for {u.hostname}"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything a user can configure. Defaults are what ``steercode`` does out of the box."""

    enable: bool = True
    model_path: str | None = None  # None: the embedded Gemma-3-270M
    # the output head: "code" loads a derived model whose vocabulary keeps the tokens code uses
    # (completion/vocab_head.py; faster decoding, same output while the model's choice is in
    # it); "full" the model file as it is
    vocabulary: str = "code"
    threads: int = 0  # decode threads; 0: physical cores
    threads_batch: int = 0  # prompt threads; 0: all cores
    context_size: int = 4096  # KV cache size (n_ctx)
    context_tokens: int = 1024  # prompt budget for the text before the cursor
    suffix_tokens: int = 256  # prompt budget for the text after the cursor (FIM models)
    max_tokens: int = 64
    max_lines: int = 8
    line_mode: str = "auto"  # auto | single | multi
    automatic: str = "on"  # what Automatic (as-you-type) triggers get: on | single | off
    fim_template: str = "auto"  # auto | none | a template name (see completion.fim)
    token_healing: bool = True
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    model_wait_ms: int = 15000  # how long a request waits for the model to load
    monitors: tuple[str, ...] = ("members", "calls", "imports", "names", "lsp", "repeats", "syntax", "repetition")  # enabled monitors
    monitor_timeout_ms: int = 300  # analysis budget per trigger; slower means "no opinion" there
    cache: bool = True  # typed-through suggestion cache
    drafting: bool = True  # speculative drafts (prompt lookup + token recycling), verified exactly
    max_draft: int = 6  # at most 6: verification batches of 7 keep llama.cpp's numbers exact
    first_line_fast: bool = True  # return a block's first line at once, finish it in the background
    # with first_line_fast, for as-you-type (automatic) requests: once generation has run this
    # long (after the prompt), return the suggestion at the next word boundary and finish its
    # line in the background (0: off)
    time_budget_ms: int = 100
    prefetch: bool = True  # when idle, prepare the suggestion after the one shown
    # team mode: the model runs on a llama-server at this address (http(s)://host:port; plain
    # http only to loopback); model_path then names a local copy of its GGUF, whose vocabulary
    # is used (default: the embedded model, for a server running it). None: the local model
    model_url: str | None = None
    api_key: str | None = None  # sent as "Authorization: Bearer ..." (llama-server --api-key)
    server_timeout_ms: int = 30000  # no answer from the server for this long: the request fails
    server_connect_timeout_ms: int = 3000
    # when the server cannot answer, complete with the local model (model_path) instead
    model_fallback: bool = False

    #: settings that take effect only when the model is (re)loaded
    MODEL_KEYS: ClassVar[tuple[str, ...]] = ("model_path", "vocabulary", "threads", "threads_batch", "context_size", "fim_template",
                                             "model_url", "api_key", "server_timeout_ms", "server_connect_timeout_ms",
                                             "model_fallback")

    # ---- validation ------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Readable descriptions of invalid values (empty when all is well)."""
        return self._field_problems() + self._cross_problems()

    def _cross_problems(self) -> list[str]:
        """Problems of a combination of values (checked once all of a change is applied)."""
        ints = (self.context_tokens, self.suffix_tokens, self.max_tokens, self.context_size)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            need = self.context_tokens + self.suffix_tokens + self.max_tokens + 64
            if need > self.context_size:
                return [
                    f"context_tokens + suffix_tokens + max_tokens + 64 reserved ({self.context_tokens} + "
                    f"{self.suffix_tokens} + {self.max_tokens} + 64 = {need}) must fit in context_size "
                    f"({self.context_size})"
                ]
        return []

    def _field_problems(self) -> list[str]:
        p: list[str] = []

        def rng(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            whole = type(getattr(Settings, name)) is int  # the default says: a count, not a measure
            if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)) or not lo <= v <= hi:
                kind = "a whole number" if whole else "a number"
                p.append(f"{name} must be {kind} between {lo} and {hi}, got {v!r}")

        rng("threads", 0, 256)
        rng("threads_batch", 0, 256)
        rng("context_size", 256, 131072)
        rng("context_tokens", 16, 65536)
        rng("suffix_tokens", 0, 65536)
        rng("max_tokens", 1, 4096)
        rng("max_lines", 1, 200)
        rng("temperature", 0.0, 5.0)
        rng("seed", 0, 2**32 - 1)
        rng("model_wait_ms", 0, 600000)
        rng("monitor_timeout_ms", 1, 60000)
        from monitors.suite import ALL_MONITORS

        if not isinstance(self.monitors, tuple) or any(m not in ALL_MONITORS for m in self.monitors):
            p.append(f"monitors must name monitors among {', '.join(ALL_MONITORS)}, got {self.monitors!r}")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            p.append(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.line_mode not in _LINE_MODES:
            p.append(f"line_mode must be one of {', '.join(_LINE_MODES)}, got {self.line_mode!r}")
        if self.vocabulary not in _VOCABULARIES:
            p.append(f"vocabulary must be one of {', '.join(_VOCABULARIES)}, got {self.vocabulary!r}")
        if self.automatic not in _AUTOMATIC:
            p.append(f"automatic must be one of {', '.join(_AUTOMATIC)}, got {self.automatic!r}")
        if not isinstance(self.fim_template, str):
            p.append(f"fim_template must be a string, got {self.fim_template!r}")
        else:
            from .fim import template_by_name

            if self.fim_template not in ("auto", "none"):
                try:
                    template_by_name(self.fim_template)
                except ValueError as exc:
                    p.append(str(exc))
        if self.model_path is not None and not isinstance(self.model_path, str):
            p.append(f"model_path must be a string, got {self.model_path!r}")
        if self.model_url is not None:
            problem = check_model_url(self.model_url)
            if problem:
                p.append(problem)
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.isprintable()):
            p.append("api_key must be a printable string")
        rng("server_timeout_ms", 100, 600000)
        rng("server_connect_timeout_ms", 100, 600000)
        rng("max_draft", 0, 6)
        rng("time_budget_ms", 0, 600000)
        for name in ("enable", "token_healing", "cache", "drafting", "first_line_fast", "prefetch", "model_fallback"):
            if not isinstance(getattr(self, name), bool):
                p.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        return p

    def merge(self, changes: Mapping[str, Any] | None) -> tuple[Settings, list[str]]:
        """Apply ``changes`` (snake or camel case keys); bad or unknown entries are reported and skipped."""
        if changes is None:
            return self, []
        if not isinstance(changes, Mapping):
            return self, [f"settings must be an object, got {type(changes).__name__}"]
        names = {f.name: f for f in fields(self)}
        problems: list[str] = []
        current = self
        for raw_key, value in changes.items():
            key = _snake(str(raw_key))
            if key not in names:
                problems.append(f"unknown setting {raw_key!r}")
                continue
            if key in ("model_path", "model_url", "api_key") and value == "":
                value = None
            if key == "monitors":
                value = _monitors_value(value, current.monitors)
            if isinstance(value, float) and value.is_integer() and isinstance(getattr(self, key), int) and not isinstance(getattr(self, key), bool):
                value = int(value)
            candidate = dataclasses.replace(current, **{key: value})
            errs = [e for e in candidate._field_problems() if e.startswith(key) or key in e.split(" ")[0]]
            if errs:
                problems.extend(errs)
                continue
            current = candidate
        errs = current.problems()
        if errs:  # a problem of the combination: refuse the whole change
            return self, problems + errs
        return current, problems

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (the api_key masked: this is what status and logs show)."""
        d = dataclasses.asdict(self)
        if d.get("api_key"):
            d["api_key"] = "***"
        return d
