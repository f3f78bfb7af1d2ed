"""The completion engine: request -> line mode -> prompt -> constraints -> decode -> stop rules.

Front ends (LSP server, ``steercode complete``, ``steercode stdio``) hand it plain data -- the
document text, a code-point offset, a language id -- and get back the text to insert and the
range it replaces, plus stats. One engine owns one model; ``complete`` calls are serialized
(one model, one KV cache) and may run on any thread; cancellation arrives through a
``CancelToken`` checked between evaluations.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitors.base import MonitorContext
from monitors.suite import MonitorSuite
from monitors.syntax import canonical_language
from monitors.vocabulary import Vocabulary

from .backend import BackendConfig, LlamaBackend, ModelLoadError
from .constraints import Constraint, HealingConstraint
from .decoding import CancelToken, Decoder, Sampling
from .document import line_bounds
from .fim import ResolvedTemplate, detect_template
from .models import resolve_model_path
from .prompt import PromptBuilder
from .settings import Settings
from .stops import StopRules, decide_line_mode

log = logging.getLogger(__name__)

__all__ = ["Completion", "CompletionRequest", "Engine", "EngineNotReady", "ModelLoadError"]

ProgressFn = Callable[[str, int], None]


def _spare_cores(threads: int) -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return n - threads


class EngineNotReady(RuntimeError):
    """No model is loaded (yet, or loading failed: the message says which)."""


@dataclass(frozen=True)
class CompletionRequest:
    """One completion at a cursor. ``offset`` counts code points into ``text``."""

    text: str
    offset: int
    language: str = "plaintext"
    path: str | None = None
    trigger: str = "invoked"  # "invoked" | "automatic"
    options: Mapping[str, Any] = field(default_factory=dict)  # per-request setting overrides

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError("text must be a string")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or not 0 <= self.offset <= len(self.text):
            raise ValueError(f"offset {self.offset!r} is outside the document (length {len(self.text)})")
        if self.trigger not in ("invoked", "automatic"):
            raise ValueError(f"trigger must be 'invoked' or 'automatic', got {self.trigger!r}")


@dataclass
class Completion:
    """What to show: replace text[range_start:range_end] with ``insert_text``."""

    insert_text: str
    range_start: int
    range_end: int
    multiline: bool
    stats: dict[str, Any]

    @property
    def empty(self) -> bool:
        return not self.insert_text


@dataclass
class _Model:
    backend: LlamaBackend
    vocab: Vocabulary
    template: ResolvedTemplate | None
    builder: PromptBuilder
    decoder: Decoder
    marker_texts: tuple[str, ...]
    path: str


class Engine:
    """Owns the model; turns CompletionRequests into Completions."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._model: _Model | None = None
        self._load_error: str | None = None
        self._ready = threading.Event()
        self.load_stats: dict[str, float] = {}
        self._suite: MonitorSuite | None = None
        self._suite_key: tuple | None = None
        self.root: str | None = None  # project root for static analysis (the LSP workspace)

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def load_error(self) -> str | None:
        return self._load_error

    def wait_ready(self, timeout: float | None) -> bool:
        return self._ready.wait(timeout)

    def load(self, progress: ProgressFn | None = None) -> None:
        """Load (or reload) the model named by the settings. Raises ModelLoadError."""
        progress = progress or (lambda msg, pct: None)
        with self._lock:
            self._ready.clear()
            old, self._model = self._model, None
            if old is not None:
                old.backend.close()
            try:
                self._model = self._load(progress)
                self._load_error = None
            except ModelLoadError as exc:
                self._load_error = str(exc)
                raise
            except Exception as exc:  # anything else is still a load failure, said plainly
                self._load_error = f"could not load the model: {type(exc).__name__}: {exc}"
                raise ModelLoadError(self._load_error) from exc
            finally:
                self._ready.set()

    def _load(self, progress: ProgressFn) -> _Model:
        s = self.settings
        t0 = time.perf_counter()
        progress("locating model", 5)
        path = resolve_model_path(s.model_path)
        t1 = time.perf_counter()
        progress(f"loading {path.name}", 30)
        backend = LlamaBackend(
            BackendConfig(
                model_path=str(path),
                n_ctx=s.context_size,
                n_threads=s.threads,
                n_threads_batch=s.threads_batch,
            )
        )
        t2 = time.perf_counter()
        progress("indexing vocabulary", 60)
        try:
            special = backend.special_ids()
            vocab = Vocabulary(backend.pieces(), control=special)
            raw = {}
            for tid, piece in enumerate(backend.pieces()):
                if b"<" in piece or b"[" in piece:  # FIM markers all contain one of these
                    txt = backend.token_text(tid)
                    raw.setdefault(txt, tid)
            template = detect_template(raw, s.fim_template)
        except ValueError as exc:
            backend.close()
            raise ModelLoadError(str(exc)) from exc
        progress("warming up", 90)
        backend.warm_up()
        t3 = time.perf_counter()
        stop_ids = {tid for tid in special if backend.is_eog(tid)}
        if template is not None:
            stop_ids |= set(template.stop_ids)
        markers = tuple(sorted({backend.token_text(t) for t in (template.control_ids if template else ())}, key=len))
        bos = backend.bos_id if backend.add_bos and backend.bos_id >= 0 else None
        builder = PromptBuilder(
            lambda text: backend.tokenize(text, add_bos=False, special=False),
            vocab,
            bos_id=bos,
            template=template,
            heal=s.token_healing,
        )
        decoder = Decoder(backend, vocab, stop_ids, speculate=True)
        self.load_stats = {
            "resolve_ms": round((t1 - t0) * 1000, 1),
            "load_ms": round((t2 - t1) * 1000, 1),
            "vocab_ms": round((t3 - t2) * 1000, 1),
            "total_ms": round((time.perf_counter() - t0) * 1000, 1),
        }
        progress("ready", 100)
        log.info(
            "model ready: %s, template=%s, %s", path.name, template.name if template else "prefix-only", self.load_stats
        )
        return _Model(backend, vocab, template, builder, decoder, tuple(m for m in markers if m), str(path))

    def update_settings(self, settings: Settings) -> bool:
        """Adopt new settings; True when the model must be reloaded for them to apply."""
        with self._lock:
            old = self.settings
            self.settings = settings
            reload_keys = ("model_path", "threads", "threads_batch", "context_size", "fim_template")
            if any(getattr(old, k) != getattr(settings, k) for k in reload_keys):
                return True
            if self._model is not None:
                self._model.builder.heal = settings.token_healing
            return False

    def describe(self) -> dict[str, Any]:
        m = self._model
        if m is None:
            return {"ready": False, "error": self._load_error}
        d = m.backend.describe()
        d.update(ready=True, template=m.template.name if m.template else "prefix-only", load=self.load_stats)
        return d

    def close(self) -> None:
        with self._lock:
            if self._model is not None:
                self._model.backend.close()
                self._model = None
            if self._suite is not None:
                self._suite.close()
                self._suite = None

    # ---- monitors --------------------------------------------------------------------------
    def monitor_suite(self, settings: Settings | None = None) -> MonitorSuite | None:
        """The monitors for these settings (rebuilt when the monitor settings change)."""
        s = settings or self.settings
        if not s.monitors:
            return None
        key = (s.monitors, s.monitor_timeout_ms, self.root)
        if self._suite is None or self._suite_key != key:
            if self._suite is not None:
                self._suite.close()
            self._suite = MonitorSuite(s.monitors, s.monitor_timeout_ms, self.root)
            self._suite_key = key
        return self._suite

    @staticmethod
    def _thread_hint(suite: MonitorSuite | None, backend):
        """While an analysis runs, decode on one thread fewer: on small machines, llama.cpp's
        threads spin-wait on each other when a core is taken, which is far slower."""
        if suite is None or backend.n_threads < 2:
            return None
        reduced = max(1, backend.n_threads - 1)
        return lambda: reduced if suite.runner.busy() else None

    def warm_up_monitors(self) -> None:
        """Start loading the static analysis in the background (does not block)."""
        suite = self.monitor_suite()
        if suite is not None:
            suite.warm_up()

    # ---- completion ------------------------------------------------------------------------
    def complete(self, req: CompletionRequest, cancel: CancelToken | None = None) -> Completion:
        """One completion. Raises EngineNotReady, Cancelled, or ValueError for bad options."""
        t_start = time.perf_counter()
        s = self.settings
        if req.options:
            s, problems = s.merge(req.options)
            if problems:
                raise ValueError("; ".join(problems))
        empty = Completion("", req.offset, req.offset, False, {})
        if not s.enable:
            empty.stats = {"skipped": "disabled"}
            return empty
        if req.trigger == "automatic" and s.automatic == "off":
            empty.stats = {"skipped": "automatic triggers are off"}
            return empty
        policy = s.line_mode
        if req.trigger == "automatic" and s.automatic == "single":
            policy = "single"
        mode = decide_line_mode(req.text, req.offset, req.language, policy, s.max_lines)
        with self._lock:
            m = self._model
            if m is None:
                raise EngineNotReady(self._load_error or "the model is not loaded yet")
            if cancel:
                cancel.check()
            t_wait = time.perf_counter()
            prompt = m.builder.build(
                req.text,
                req.offset,
                budget=min(s.context_tokens, m.backend.n_ctx - s.max_tokens - 64),
                suffix_budget=s.suffix_tokens if m.template else 0,
                path=req.path,
            )
            t_prompt = time.perf_counter()
            rules = StopRules(req.text, req.offset, mode)
            healing = prompt.healing
            markers = m.marker_texts
            constraints: list[Constraint] = []
            sessions: list = []
            suite = self.monitor_suite(s)
            lang = canonical_language(req.language) or req.language
            if suite is not None:
                mctx = MonitorContext(
                    text=req.text, offset=prompt.decode_start, cursor=req.offset, language=lang,
                    path=req.path, vocab=m.vocab, root=self.root,
                )
                sessions = suite.sessions(mctx)
                constraints.extend(sessions)
            if healing:
                constraints.append(HealingConstraint(healing, m.vocab))

            def stop(gen: str) -> int | None:
                for mk in markers:
                    k = gen.find(mk)
                    if k >= 0:
                        rules.reason = "control text"
                        return k
                if len(gen) < len(healing):
                    return None
                c = rules.feed(gen[len(healing) :])
                return None if c is None else c + len(healing)

            result = m.decoder.generate(
                prompt.tokens,
                max_tokens=s.max_tokens,
                constraints=constraints,
                stop=stop,
                cancel=cancel,
                sampling=Sampling(temperature=s.temperature, top_p=s.top_p, seed=s.seed),
                threads=self._thread_hint(suite, m.backend) if sessions else None,
            )
        gen = result.text
        after = gen[len(healing) :] if gen.startswith(healing) else ""
        for mk in markers:
            k = after.find(mk)
            if k >= 0:
                after = after[:k]
        text = rules.finish(after)
        if "\r\n" in req.text and "\n" in text:
            text = text.replace("\n", "\r\n")
        range_end = req.offset
        if text and not mode.multiline and rules.line_after.strip():
            range_end = self._suffix_replacement(req, text, rules)
        stats = result.stats.as_dict()
        mon: dict[str, Any] = {}
        for sess in sessions:
            d = sess.stats.as_dict()
            d["interventions"] = result.stats.interventions.get(sess.name, 0)
            mon[sess.name] = d
        stats["monitors"] = mon
        stats["monitor_overhead_ms"] = round(sum(x.stats.overhead_ms for x in sessions), 3)
        stats["constrained_tokens"] = len(set().union(*(x.stats.constrained for x in sessions))) if sessions else 0
        if rules.reason and result.stats.stop_reason == "stop rule":
            stats["stop_reason"] = rules.reason
        stats.update(
            template=prompt.template,
            healing=healing,
            line_mode="multi" if mode.multiline else "single",
            line_mode_reason=mode.reason,
            window_start=prompt.window_start,
            queue_ms=round((t_wait - t_start) * 1000, 2),
            prompt_build_ms=round((t_prompt - t_wait) * 1000, 2),
            total_ms=round((time.perf_counter() - t_start) * 1000, 2),
        )
        return Completion(text, req.offset, range_end, mode.multiline, stats)

    def complete_text(
        self, text: str, offset: int | None = None, *, language: str = "python", path: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Convenience: complete at ``offset`` (default: the end) of ``text``."""
        return self.complete(
            CompletionRequest(text=text, offset=len(text) if offset is None else offset, language=language, path=path,
                              options=dict(options or {}))
        )

    @staticmethod
    def _suffix_replacement(req: CompletionRequest, text: str, rules: StopRules) -> int:
        """Replace the rest of the line when the suggestion rewrote its closing characters."""
        after = rules.line_after.strip()
        if not after or not set(after) <= set(")]}\"'`;:,."):
            return req.offset
        # the suggestion supplies the same closers itself, in order: it replaces them
        it = iter(text)
        if all(ch in it for ch in after) and text.rstrip().endswith(after[-1]):
            _, end = line_bounds(req.text, req.offset)
            return end
        return req.offset
