"""The completion engine: request -> line mode -> prompt -> constraints -> decode -> stop rules.

Front ends (LSP server, ``steercode complete``, ``steercode stdio``) hand it plain data -- the
document text, a code-point offset, a language id -- and get back the text to insert and the
range it replaces, plus stats. One engine owns one model; ``complete`` calls are serialized
(one model, one KV cache) and may run on any thread; cancellation arrives through a
``CancelToken`` checked between evaluations.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitors.base import AnalysisRunner, MonitorContext
from monitors.suite import MonitorSuite
from monitors.syntax import canonical_language
from monitors.textscan import is_word
from monitors.verdicts import Rewind
from monitors.vocabulary import Vocabulary

from .backend import BackendConfig, LlamaBackend, ModelLoadError, VocabTokenizer
from .cache import SuggestionCache
from .constraints import Constraint, Ending, HealingConstraint, Penalty
from .decoding import Cancelled, CancelToken, Decoder, Sampling
from .document import line_bounds
from .drafting import CombinedDrafter, DraftPolicy, NgramIndex, PromptLookupDrafter, RecycledDrafter
from .fim import ResolvedTemplate, detect_template
from .models import resolve_model_path
from .prompt import PromptBuilder
from .remote_backend import ModelServerError, RemoteBackend, RemoteConfig
from .settings import Settings
from .stops import StopRules, decide_line_mode
from .vocab_head import VocabHeadUnavailable, code_model_path

log = logging.getLogger(__name__)

__all__ = ["Completion", "CompletionRequest", "Engine", "EngineNotReady", "ModelLoadError", "ModelServerError"]

ProgressFn = Callable[[str, int], None]


def _prompt_budget(s: Settings, n_ctx: int) -> int:
    """Tokens of text before the cursor the prompt may hold (room left for generation)."""
    return min(s.context_tokens, n_ctx - s.max_tokens - 64)


def _cache_config(s: Settings, req: CompletionRequest) -> tuple:
    """Everything besides the text that a cached suggestion depends on (the language and path
    too: an empty ``app.js`` was answered with what an empty ``main.py`` got)."""
    return (req.language, req.path, s.model_path, s.vocabulary, s.monitors, s.max_tokens, s.max_lines, s.line_mode, s.temperature, s.top_p, s.seed,
            s.fim_template, s.token_healing, s.context_tokens, s.suffix_tokens)


def _document_line_ends(text: str, document: str) -> str:
    """``text`` with the document's line ends: \r\n in a CRLF document (whether the model wrote
    \n or \r\n), else as it is."""
    if "\r\n" in document and "\n" in text:
        return text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text


def _first_line_end(after: str) -> int | None:
    """Index of the newline that ends the first non-blank generated line (None: not yet)."""
    seen = False
    for i, ch in enumerate(after):
        if ch == "\n":
            if seen:
                return i
        elif not ch.isspace():
            seen = True
    return None


def _last_word_boundary(text: str) -> int | None:
    """The last place ``text`` can be cut without splitting a word (``end`` in ``x = end_``: the
    word may go on), leaving something to show; None when there is none."""
    for p in range(len(text), 0, -1):
        inside = is_word(text[p - 1]) and (p == len(text) or is_word(text[p]))
        if not inside:
            return p if text[:p].strip() else None
    return None


@dataclass
class _Continuation:
    """What ``run_background`` needs to finish a suggestion cut after its first line or when its
    time budget ran out."""

    req: CompletionRequest
    settings: Settings
    mode: Any
    prompt: Any
    tokens: list[int]
    gen: str
    constraints: list
    rules: StopRules
    healing: str
    markers: tuple[str, ...]
    drafter: Any


class _Prefixed:
    """A constraint seen from a continuation: the text generated before is put back in front."""

    def __init__(self, inner: Any, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.name = inner.name
        self.stats = getattr(inner, "stats", None)
        self.yields = getattr(inner, "yields", False)

    def check(self, generated: str, token: int, text: str | None):
        r = self.inner.check(self.prefix + generated, token, text)
        if isinstance(r, Rewind):
            return False  # a rewind into the part already shown: a plain rejection here
        return r

    def allowed(self, generated: str):
        return self.inner.allowed(self.prefix + generated)

    def may_end(self, generated: str) -> bool:
        return not isinstance(self.inner, Ending) or self.inner.may_end(self.prefix + generated)

    def penalty(self, generated: str):
        """The inner penalty, as if the text shown were generated in the same run (the
        continuation must write what one uninterrupted generation would have)."""
        return self.inner.penalty(self.prefix + generated) if isinstance(self.inner, Penalty) else None


def _well_formed_end(text: str, healing: str, constraints: list) -> str:
    """``text`` cut back to its last line end where every constraint that judges ends
    (``may_end``, the syntax constraint) lets the suggestion end; "" when none does. A
    constraint that raises has no opinion."""
    enders = [c for c in constraints if isinstance(c, Ending)]

    def ok(t: str) -> bool:
        for c in enders:
            try:
                if not c.may_end(healing + t):
                    return False
            except Exception:
                log.warning("constraint %s failed judging an end; no opinion", c.name, exc_info=True)
        return True

    while text and not ok(text):
        nl = text.rfind("\n")
        text = text[:nl].rstrip() if nl >= 0 else ""
    return text


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
    #: texts of other open documents, most relevant first: the prompt-lookup drafter searches them
    related: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError("text must be a string")
        if not isinstance(self.related, tuple | list) or not all(isinstance(t, str) for t in self.related):
            raise ValueError("related must be a list of document texts (strings)")
        object.__setattr__(self, "related", tuple(self.related))
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
    path: str  # the model file configured (a code-vocabulary model is derived from it)
    head: dict[str, Any] = field(default_factory=dict)  # which output head, and why


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
        # the analysis worker, shared by the suites of every monitor setting (a request that
        # names other monitors must not restart it: a new worker meets every analysis cold)
        self._runner: AnalysisRunner | None = None
        self.cache = SuggestionCache()
        self._background: _Continuation | None = None
        self._last_shown: tuple | None = None
        self._recycled: RecycledDrafter | None = None
        self._draft_policy = DraftPolicy()
        self._stream_indexes: OrderedDict[tuple[int, int, int], NgramIndex] = OrderedDict()  # text key -> index
        self._context_index: NgramIndex | None = None  # the prompt's n-grams, kept across requests
        self.root: str | None = None  # project root for static analysis (the LSP workspace)
        #: team mode with ``model_fallback``: the local model, loaded when the server first fails
        self._fallback: _Model | None = None

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
            if self._fallback is not None:
                self._fallback.backend.close()
                self._fallback = None
            # drafters' indexes hold the old model's token ids
            self._stream_indexes.clear()
            self._context_index = None
            self._recycled = None
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

    def _load(self, progress: ProgressFn, local: bool = False) -> _Model:
        """The model the settings name (``local``: the local one even when a server is set)."""
        s = self.settings
        t0 = time.perf_counter()
        progress("locating model", 5)
        path = resolve_model_path(s.model_path)
        t1 = time.perf_counter()
        backend, head = self._load_backend(path, progress, local)
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
        if not backend.batch_invariant and not getattr(backend, "remote", False):
            log.warning(
                "this llama.cpp build uses llamafile GEMM, whose batched logits differ from single-token "
                "ones: drafting is off (install llama-cpp-python with CMAKE_ARGS=-DGGML_LLAMAFILE=OFF)"
            )
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
        return _Model(backend, vocab, template, builder, decoder, tuple(m for m in markers if m), str(path), head)

    def _load_backend(self, path, progress: ProgressFn, local: bool = False) -> tuple[Any, dict[str, Any]]:
        """The backend for ``path`` with the output head the settings ask for: ``code`` loads
        the derived code-vocabulary model (built at first use), or the full model when this
        one cannot have it (the reason is kept for describe/doctor)."""
        s = self.settings
        if s.model_url and not local:
            progress(f"connecting to {s.model_url}", 30)
            remote = RemoteBackend(RemoteConfig(
                url=s.model_url, vocab_path=str(path), api_key=s.api_key,
                connect_timeout_s=s.server_connect_timeout_ms / 1000, read_timeout_s=s.server_timeout_ms / 1000,
                stream_tokens=s.max_tokens), n_ctx=s.context_size)
            return remote, {"vocabulary": "full", "note": f"the model server's ({s.model_url}); {path.name} gives the vocabulary",
                            "server": s.model_url}

        def config(model: str, tokenizer: str | None = None) -> BackendConfig:
            return BackendConfig(model_path=model, n_ctx=s.context_size, n_threads=s.threads,
                                 n_threads_batch=s.threads_batch, tokenizer_path=tokenizer)

        note = ""
        if s.vocabulary == "code":
            progress("preparing the code vocabulary", 15)
            try:
                code = code_model_path(path, tokenizer=lambda p: VocabTokenizer(p).tokenize,
                                       progress=lambda msg: progress(msg, 20))
                progress(f"loading {path.name} (code vocabulary)", 30)
                backend = LlamaBackend(config(str(code.path), str(path)))
                return backend, {"vocabulary": "code", "file": str(code.path), "n_original": code.n_original,
                                 "keep_origin": code.keep_origin, "built": code.built}
            except (VocabHeadUnavailable, ModelLoadError, OSError, ValueError) as exc:
                note = f"the code vocabulary is unavailable ({exc})"
                log.warning("%s: %s; using the full vocabulary", path.name, note)
        progress(f"loading {path.name}", 30)
        return LlamaBackend(config(str(path))), {"vocabulary": "full", "note": note}

    def update_settings(self, settings: Settings) -> bool:
        """Adopt new settings; True when the model must be reloaded for them to apply."""
        with self._lock:
            old = self.settings
            self.settings = settings
            if any(getattr(old, k) != getattr(settings, k) for k in Settings.MODEL_KEYS):
                return True
            if self._model is not None:
                self._model.builder.heal = settings.token_healing
            return False

    def describe(self) -> dict[str, Any]:
        m = self._model
        if m is None:
            return {"ready": False, "error": self._load_error}
        d = m.backend.describe()
        d.update(model_file=d["path"], path=m.path, head=dict(m.head), ready=True,
                 template=m.template.name if m.template else "prefix-only", load=self.load_stats)
        return d

    def close(self) -> None:
        with self._lock:
            if self._model is not None:
                self._model.backend.close()
                self._model = None
            if self._fallback is not None:
                self._fallback.backend.close()
                self._fallback = None
            if self._suite is not None:
                self._suite.close()
                self._suite = None
            if self._runner is not None:
                self._runner.shutdown()
                self._runner = None

    # ---- monitors --------------------------------------------------------------------------
    def monitor_suite(self, settings: Settings | None = None) -> MonitorSuite | None:
        """The monitors for these settings (rebuilt when the monitor settings change)."""
        s = settings or self.settings
        if not s.monitors:
            return None
        key = self._suite_key_for(s)
        if self._suite is None or self._suite_key != key:
            if self._suite is not None:
                self._suite.close()
            if self._runner is not None and self._runner.root != self.root:
                self._runner.shutdown()  # a new project: a worker for its root
                self._runner = None
            if self._runner is None:
                self._runner = AnalysisRunner(root=self.root)
            self._suite = MonitorSuite(s.monitors, s.monitor_timeout_ms, self.root, runner=self._runner)
            self._suite_key = key
        return self._suite

    def _suite_key_for(self, s: Settings) -> tuple:
        return (s.monitors, s.monitor_timeout_ms, self.root)

    @staticmethod
    def _thread_hint(suite: MonitorSuite | None, backend):
        """While an analysis runs, decode on one thread fewer: on small machines, llama.cpp's
        threads spin-wait on each other when a core is taken, which is far slower."""
        if suite is None or backend.n_threads < 2:
            return None
        reduced = max(1, backend.n_threads - 1)
        return lambda: reduced if suite.runner.busy() else None

    def warm_up_monitors(self) -> None:
        """Start loading the static analysis in the background (does not block). Long-running
        front ends call it once the model is loaded; a one-shot completion does not (the warm-up
        would only compete with it for the cores)."""
        suite = self.monitor_suite()
        if suite is not None:
            suite.warm_up()

    def wait_warm(self, timeout: float = 300.0) -> bool:
        """Start the warm-up (``warm_up_monitors``) and wait for it: for benchmarks, which should
        meet the analysis as a server does a while after start."""
        self.warm_up_monitors()
        deadline = time.monotonic() + timeout
        while self.analysis_state() not in ("warm", "off"):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def analysis_state(self) -> str:
        """"off" (no monitors), "cold", "warming" or "warm" (see ``warm_up_monitors``). Only
        reads: asking builds no monitors and starts no worker."""
        if not self.settings.monitors:
            return "off"
        suite = self._suite
        if suite is None or self._suite_key != self._suite_key_for(self.settings):
            return "cold"  # built for other settings: the next completion builds new monitors
        return suite.warm_state

    # ---- completion ------------------------------------------------------------------------
    def complete(self, req: CompletionRequest, cancel: CancelToken | None = None) -> Completion:
        """One completion. Raises EngineNotReady, Cancelled, or ValueError for bad options.

        Answers from the typed-through cache when it can (no model call). A multi-line answer
        returns as soon as its first line is complete; the rest is generated by
        ``run_background`` (which the front end calls when it is idle) into the cache.
        """
        t_start = time.perf_counter()
        s = self.settings
        if req.options:
            s, problems = s.merge(req.options)
            if problems:
                raise ValueError("; ".join(problems))
            fixed = [k for k in Settings.MODEL_KEYS if getattr(s, k) != getattr(self.settings, k)]
            if fixed:
                raise ValueError(f"{', '.join(fixed)} cannot change in a request (the model would have to be "
                                 "reloaded): set it when steercode starts (--model, --set)")
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
        if s.cache:
            hit = self.cache.lookup(req.text, req.offset, _cache_config(s, req))
            if hit is not None and req.trigger == "invoked" and (not hit.complete or (mode.multiline and not hit.multiline)):
                # an explicit request gets the whole suggestion: not what an as-you-type request
                # left (cut by its time budget, or one line under `automatic: single`)
                hit = None
            if hit is not None:
                text = hit.suggestion if mode.multiline else hit.suggestion.split("\n", 1)[0].rstrip("\r")
                if text.strip():
                    self._last_shown = (req, s, text)
                    return Completion(text, req.offset, req.offset, "\n" in text, {
                        "cache_hit": True, "cache_complete": hit.complete, "generated_tokens": 0, "prompt_eval_tokens": 0,
                        "reused_tokens": 0, "prompt_tokens": 0, "stop_reason": "cache", "template": None,
                        "line_mode": "multi" if mode.multiline else "single", "line_mode_reason": mode.reason,
                        "total_ms": round((time.perf_counter() - t_start) * 1000, 3), "monitors": {},
                    })
        with self._lock:
            self._background = None  # a new request makes any pending background work stale
            try:
                comp = self._complete_locked(req, s, mode, cancel, t_start)
            except ModelServerError as exc:
                if not s.model_fallback:
                    raise
                log.warning("%s; completing with the local model", exc)
                if self._fallback is None:
                    self._fallback = self._load(lambda msg, pct: None, local=True)
                comp = self._complete_locked(req, s, mode, cancel, t_start, self._fallback)
                comp.stats["fallback"] = str(exc)
                self._background = None  # continuations belong to the model that began them
        return comp

    def _complete_locked(self, req: CompletionRequest, s: Settings, mode, cancel, t_start: float,
                         model: _Model | None = None) -> Completion:
        m = model or self._model
        if m is None:
            raise EngineNotReady(self._load_error or "the model is not loaded yet")
        if hasattr(m.backend, "session"):
            m.backend.session = req.path or ""  # one server slot per document
        if cancel:
            cancel.check()
        t_wait = time.perf_counter()
        prompt = m.builder.build(
            req.text,
            req.offset,
            budget=_prompt_budget(s, m.backend.n_ctx),
            suffix_budget=s.suffix_tokens if m.template else 0,
            path=req.path,
            language=req.language,
        )
        t_prompt = time.perf_counter()
        rules = StopRules(req.text, req.offset, mode, req.language)
        healing = prompt.healing
        markers = m.marker_texts
        constraints: list[Constraint] = []
        sessions: list = []
        t_mon = time.perf_counter()
        suite = self.monitor_suite(s)
        lang = canonical_language(req.language) or req.language
        if suite is not None:
            mctx = MonitorContext(
                text=req.text, offset=prompt.decode_start, cursor=req.offset, language=lang,
                path=req.path, vocab=m.vocab, root=self.root, multiline=mode.multiline,
            )
            sessions = suite.sessions(mctx)
            constraints.extend(sessions)
        t_setup = time.perf_counter()
        if healing:
            constraints.append(HealingConstraint(healing, m.vocab))
        first_line = mode.multiline and s.first_line_fast
        first_cut: list[int] = []
        # as-you-type only: an explicit request waits for the whole suggestion
        budget = s.time_budget_ms / 1000 if s.first_line_fast and s.time_budget_ms and req.trigger == "automatic" else None
        budget_cut: list[int] = []

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

        def pause(gen: str) -> int | None:
            if len(gen) < len(healing):
                return None
            if first_line:
                f = _first_line_end(gen[len(healing) :])
                if f is not None:
                    first_cut.append(f)
                    return f + len(healing)
            if budget is not None and time.perf_counter() >= m.decoder.decode_started + budget:
                b = _last_word_boundary(gen[len(healing) :])
                if b is not None:
                    budget_cut.append(b)
                    return len(healing) + b
            return None

        drafter = self._drafter(req, m, prompt) if s.drafting and m.backend.batch_invariant else None
        result = m.decoder.generate(
            prompt.tokens,
            max_tokens=s.max_tokens,
            constraints=constraints,
            stop=stop,
            pause=pause if first_line or budget is not None else None,
            cancel=cancel,
            sampling=Sampling(temperature=s.temperature, top_p=s.top_p, seed=s.seed),
            threads=self._thread_hint(suite, m.backend) if sessions else None,
            drafter=drafter,
            max_draft=s.max_draft,
            draft_policy=self._draft_policy if drafter is not None else None,
            recycle=self._recycled,
            budget_s=budget,
            keep_chars=len(healing),
        )
        gen = result.text
        if result.stats.yielded:  # off for the rest of the request: the trim and the continuation too
            constraints = [c for c in constraints if c.name not in result.stats.yielded]
        after = gen[len(healing) :] if gen.startswith(healing) else ""
        for mk in markers:
            k = after.find(mk)
            if k >= 0:
                after = after[:k]
        stopped_at_first_line = bool(first_cut) and result.stats.stop_reason == "stop rule" and not rules.reason
        stopped_on_budget = (bool(budget_cut) and result.stats.stop_reason == "stop rule" and not rules.reason) or (
            result.stats.unverified_dropped > 0)
        unfinished = stopped_at_first_line or stopped_on_budget
        cut_short = result.stats.stop_reason == "max tokens"
        if cut_short and not mode.multiline:
            # the token limit ends a line anywhere (``…, 1508, 150``): at the last word boundary
            b = _last_word_boundary(after)
            if b is not None:
                after = after[:b]
        text = rules.finish(after, cut_short=cut_short)
        if not unfinished:
            text = _well_formed_end(text, healing, constraints)
        text = _document_line_ends(text, req.text)
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
        if stopped_at_first_line:
            stats["stop_reason"] = "first line (the rest continues in the background)"
        elif stopped_on_budget:
            stats["stop_reason"] = "time budget (the rest continues in the background)"
        stats.update(
            cache_hit=False,
            template=prompt.template,
            vocabulary=m.head.get("vocabulary", "full"),
            healing=healing,
            line_mode="multi" if mode.multiline else "single",
            line_mode_reason=mode.reason,
            window_start=prompt.window_start,
            related_documents=min(len(req.related), self.RELATED_DOCS) if drafter is not None else 0,
            queue_ms=round((t_wait - t_start) * 1000, 2),
            prompt_build_ms=round((t_prompt - t_wait) * 1000, 2),
            monitor_setup_ms=round((t_setup - t_mon) * 1000, 2),
            total_ms=round((time.perf_counter() - t_start) * 1000, 2),
        )
        if s.cache and text and range_end == req.offset:
            self.cache.store(req.text, req.offset, text, multiline=mode.multiline, complete=not unfinished,
                             config=_cache_config(s, req))
        if unfinished and text and range_end == req.offset:
            self._background = _Continuation(req, s, mode, prompt, list(result.tokens), result.tokens_text, constraints, rules,
                                             healing, markers, drafter)
        self._last_shown = (req, s, text)
        return Completion(text, req.offset, range_end, mode.multiline, stats)

    # ---- background work -------------------------------------------------------------------
    @property
    def has_background(self) -> bool:
        return self._background is not None or self._last_shown is not None

    def run_background(self, cancel: CancelToken | None = None) -> str | None:
        """Use idle time: finish the last multi-line suggestion, then prefetch the suggestion
        that follows the last one shown (as if accepted). Cancellable between tokens; returns
        what was done (or None)."""
        done = None
        if cancel is not None:
            cancel.abort_evals = True  # a keystroke stops background work mid-evaluation
        try:
            job = self._background
            if job is not None:
                with self._lock:
                    if self._background is job:
                        self._background = None
                        try:
                            self._continue(job, cancel)
                        except Cancelled:
                            # a keystroke came first: resume at the next idle moment (its KV prefix
                            # is still there); a request the cache cannot answer drops the job
                            self._background = job
                            raise
                        except ModelServerError as exc:  # the server went away: the job is dropped
                            log.warning("background work stopped: %s", exc)
                            return None
                        done = "continuation"
            shown = self._last_shown
            if shown is not None and shown[1].prefetch and shown[1].cache:
                self._last_shown = None
                req, s, text = shown
                if text and "\n" not in text:
                    accepted = req.text[: req.offset] + text + req.text[req.offset :]
                    nxt = dataclasses.replace(req, text=accepted, offset=req.offset + len(text), trigger="automatic")
                    if self.cache.lookup(nxt.text, nxt.offset, _cache_config(s, nxt)) is None:
                        try:
                            self.complete(nxt, cancel)
                        except ModelServerError as exc:
                            log.warning("prefetch stopped: %s", exc)
                            return done
                        self._last_shown = None  # do not chain prefetches
                        done = (done + "+prefetch") if done else "prefetch"
        except Cancelled:
            return None
        return done

    def _continue(self, job: _Continuation, cancel: CancelToken | None) -> None:
        m = self._model
        if m is None:
            return
        gen0 = job.gen
        cons = [_Prefixed(c, gen0) for c in job.constraints if not isinstance(c, HealingConstraint)]

        def stop(g: str) -> int | None:
            full = gen0 + g
            for mk in job.markers:
                k = full.find(mk)
                if k >= 0:
                    return max(k - len(gen0), 0)
            c = job.rules.feed(full[len(job.healing) :])
            return None if c is None else max(c + len(job.healing) - len(gen0), 0)

        result = m.decoder.generate(
            job.prompt.tokens + job.tokens,
            max_tokens=max(1, job.settings.max_tokens - len(job.tokens)),
            constraints=cons,
            stop=stop,
            cancel=cancel,
            sampling=Sampling(temperature=job.settings.temperature, top_p=job.settings.top_p, seed=job.settings.seed),
            drafter=job.drafter,
            max_draft=job.settings.max_draft,
            draft_policy=self._draft_policy if job.drafter is not None else None,
            recycle=self._recycled,
            resume=True,
        )
        full = (gen0 + result.text)[len(job.healing) :]
        block = job.rules.finish(full, cut_short=result.stats.stop_reason == "max tokens")
        block = _well_formed_end(block, job.healing, [c for c in job.constraints if c.name not in result.stats.yielded])
        block = _document_line_ends(block, job.req.text)  # as for the first line (it was stored with \n)
        if block:
            self.cache.store(job.req.text, job.req.offset, block, multiline=job.mode.multiline, complete=True,
                             config=_cache_config(job.settings, job.req))
            self._last_shown = None

    def _drafter(self, req: CompletionRequest, m: _Model, prompt) -> CombinedDrafter:
        if self._context_index is None:
            self._context_index = NgramIndex()
        lookup = PromptLookupDrafter(max_draft=8, context=self._context_index)
        tail = req.text[req.offset : req.offset + 4000]
        streams = [self._stream_index(tail, m, 0)] if tail.strip() else []
        names = ["after_cursor"] * len(streams)
        related = [self._stream_index(t, m, self.RELATED_CHARS) for t in req.related[: self.RELATED_DOCS] if t.strip()]
        lookup.set_extra(streams + related, names + ["other_documents"] * len(related))
        if self._recycled is None or len(self._recycled.next) != m.backend.n_vocab:
            self._recycled = RecycledDrafter(m.backend.n_vocab)
        return CombinedDrafter(lookup, self._recycled)

    #: other open documents the drafter searches: at most this many, each cut to this many characters
    RELATED_DOCS = 4
    RELATED_CHARS = 32_000

    def _stream_index(self, text: str, m: _Model, cut: int) -> NgramIndex:
        """The n-gram index of a text the drafter searches (the text after the cursor, another
        document), built once per text and kept in a small LRU: they rarely change while typing."""
        key = (cut, len(text), hash(text))  # (emptied when a model loads: token ids are the model's)
        index = self._stream_indexes.get(key)
        if index is None:
            index = NgramIndex(m.backend.tokenize(text[:cut] if cut else text))
            self._stream_indexes[key] = index
            while len(self._stream_indexes) > 4 * self.RELATED_DOCS:
                self._stream_indexes.popitem(last=False)
        else:
            self._stream_indexes.move_to_end(key)
        return index

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
        # the suggestion supplies the same closers itself, in order, and closes what they close
        # (``print(┃)`` + ``len(items)``: its own ``)`` closes its own ``(``; the line's stays)
        it = iter(text)
        if (all(ch in it for ch in after) and text.rstrip().endswith(after[-1])
                and rules.supplies_own_closers(text, after)):
            _, end = line_bounds(req.text, req.offset)
            return end
        return req.offset
