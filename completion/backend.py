"""The llama.cpp backend: the only module in steercode that imports ``llama_cpp``.

A thin wrapper over llama.cpp's C API (through llama-cpp-python's ctypes bindings) that gives the
decode loop exactly what it needs and nothing it does not:

* ``tokenize`` / token pieces / special-token facts for the vocabulary index and FIM detection;
* ``eval_prompt(tokens)``: evaluate only the tokens after the longest common prefix with what is
  already in the KV cache (prefix reuse across requests);
* ``eval(tokens, rows)``: append tokens, computing logits only for the requested positions (the
  output head of a 262k-token vocabulary costs ~10 ms per row on 2 cores, so rows are precious);
* ``logits(i)``: a numpy view of row ``i`` of the last evaluation (valid until the next eval);
* ``truncate(n)``: KV rollback to the first ``n`` tokens (needs ``swa_full`` on sliding-window
  models such as Gemma-3, which is always set).

A derived code-vocabulary model (``completion.vocab_head``) is loaded with ``tokenizer_path``
naming its source: text is tokenized with the source's full vocabulary (a ``vocab_only`` load,
``VocabTokenizer``) and the ids mapped to the derived model's (``TokenMap``); everything else --
pieces, special ids, logits -- is the derived model's own.

Not thread-safe: one engine thread owns a backend. llama.cpp's own logging is routed to the
``steercode.llama`` logger (never to stdout, which may be the LSP channel).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from .vocab_head import TokenMap, read_kept_ids

log = logging.getLogger("steercode.backend")
_llama_log = logging.getLogger("steercode.llama")

__all__ = [
    "PROMPT_BATCH",
    "SMALL_BATCH",
    "BackendConfig",
    "LlamaBackend",
    "ModelLoadError",
    "VocabTokenizer",
    "llama_build_info",
    "physical_cores",
]


#: batch sizes whose per-token results equal a single-token evaluation (drafts stay below it)
SMALL_BATCH = 7
#: prompt positions are always evaluated in batches at least this large
PROMPT_BATCH = 8


class ModelLoadError(RuntimeError):
    """The model file could not be used; the message is meant for the user."""


# ---------------------------------------------------------------------------------------------
# logging and one-time initialisation

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continuation)
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR, 5: logging.DEBUG}
# warnings llama.cpp prints for models and settings that are fine
_BENIGN = ("control-looking token", "full-size SWA cache", "n_ctx_seq", "n_ctx_per_seq")
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)
# what llama.cpp reports, as errors, when an abort callback stops an evaluation
_ABORT_NOISE = ("graph_compute", "failed to compute graph", "removing memory module entries", "failed to decode, ret = 2")
_aborting = False  # an abort callback said stop, and the evaluation it stopped has not returned yet
_init_lock = threading.Lock()
_initialised = False


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:  # pragma: no cover - C callback
    try:
        msg = text.decode("utf-8", "replace").rstrip()
        if msg:
            lvl = _LEVELS.get(level, logging.DEBUG)
            if lvl == logging.WARNING and any(b in msg for b in _BENIGN):
                lvl = logging.DEBUG
            if _aborting and any(a in msg for a in _ABORT_NOISE):
                lvl = logging.DEBUG  # we stopped it on purpose (a keystroke cancelled the work)
            if lvl >= logging.ERROR:
                _recent_errors.append(msg)
            _llama_log.log(lvl, "%s", msg)
    except Exception:
        pass


def _ensure_init() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True


def llama_build_info() -> dict[str, str]:
    """Version and build facts for ``steercode doctor``."""
    _ensure_init()
    return {
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
        "supports_mmap": str(bool(llama_cpp.llama_supports_mmap())),
        "gpu_offload": str(bool(llama_cpp.llama_supports_gpu_offload())),
    }


def physical_cores() -> int:
    """Physical CPU cores available to this process (decode threads default)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        phys = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":", 1)[1].strip()
                    cores.add((phys, core))
    except OSError:
        pass
    n = len(cores) if cores else available
    return max(1, min(n, available))


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendConfig:
    """How to load a model. Threads of 0 mean "choose": physical cores to decode, all to prefill."""

    model_path: str
    n_ctx: int = 4096
    n_batch: int = 256
    n_threads: int = 0
    n_threads_batch: int = 0
    #: the original model when ``model_path`` is a derived code-vocabulary model: prompts are
    #: tokenized with its vocabulary and mapped (see the module docstring)
    tokenizer_path: str | None = None

    def __post_init__(self) -> None:
        if self.n_ctx < 64:
            raise ValueError(f"n_ctx: {self.n_ctx} is too small (at least 64)")
        if self.n_batch < 1:
            raise ValueError(f"n_batch: {self.n_batch} must be positive")
        if self.n_threads < 0 or self.n_threads_batch < 0:
            raise ValueError("n_threads / n_threads_batch must be >= 0")


def check_gguf_file(path: str | os.PathLike[str]) -> Path:
    """Validate that ``path`` looks like a GGUF file before llama.cpp touches it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelLoadError(f"model path is not a file: {p}")
    try:
        with p.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {p}: {exc.strerror or exc}") from exc
    if len(head) < 24 or head[:4] != b"GGUF":
        raise ModelLoadError(f"not a GGUF model file (bad magic bytes): {p}")
    version = int.from_bytes(head[4:8], "little")
    if version not in (2, 3):
        raise ModelLoadError(f"unsupported GGUF version {version} in {p} (llama.cpp reads versions 2 and 3)")
    n_tensors = int.from_bytes(head[8:16], "little")
    if n_tensors == 0 or n_tensors > 1_000_000:
        raise ModelLoadError(f"corrupt GGUF header ({n_tensors} tensors) in {p}")
    return p


def _tokenize(vocab, text: str, add_bos: bool, special: bool) -> list[int]:
    data = text.encode("utf-8", "surrogatepass")
    cap = len(data) + 8
    arr = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), arr, cap, add_bos, special)
    if n < 0:
        cap = -n
        arr = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), arr, cap, add_bos, special)
        if n < 0:
            raise RuntimeError(f"tokenization failed ({n})")
    return list(arr[:n])


def _piece(vocab, tid: int, buf) -> bytes:
    n = llama_cpp.llama_token_to_piece(vocab, tid, buf, len(buf), 0, True)
    return buf.raw[: max(n, 0)]


class VocabTokenizer:
    """A model's tokenizer alone: a ``vocab_only`` load (no weights, no context, ~0.5 s)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        _ensure_init()
        p = check_gguf_file(path)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        _recent_errors.clear()
        model = llama_cpp.llama_model_load_from_file(str(p).encode("utf-8"), params)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load the vocabulary of {p}")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._buf = ctypes.create_string_buffer(512)
        self._closed = False

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return _tokenize(self._vocab, text, add_bos, special)

    def piece(self, tid: int) -> bytes:
        return _piece(self._vocab, tid, self._buf)

    # the vocabulary facts a backend gives the engine (a remote backend has no weights here:
    # ``completion.remote_backend`` reads them from this load of the model's GGUF)
    @property
    def bos_id(self) -> int:
        return llama_cpp.llama_vocab_bos(self._vocab)

    @property
    def eos_id(self) -> int:
        return llama_cpp.llama_vocab_eos(self._vocab)

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def pieces(self) -> list[bytes]:
        return [self.piece(t) for t in range(self.n_vocab)]

    def token_text(self, tid: int) -> str:
        return (llama_cpp.llama_vocab_get_text(self._vocab, tid) or b"").decode("utf-8", "replace")

    def is_eog(self, tid: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, tid))

    def is_control(self, tid: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_control(self._vocab, tid))

    def special_ids(self) -> list[int]:
        mask = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        return [t for t in range(self.n_vocab) if llama_cpp.llama_vocab_get_attr(self._vocab, t) & mask or self.is_eog(t)]

    def llama_fim_ids(self) -> dict[str, int]:
        v = self._vocab
        return {"pre": llama_cpp.llama_vocab_fim_pre(v), "suf": llama_cpp.llama_vocab_fim_suf(v),
                "mid": llama_cpp.llama_vocab_fim_mid(v)}

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1024)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode("utf-8"), buf, 1024)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self._model, buf, 256)
        return buf.value.decode("utf-8", "replace")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            llama_cpp.llama_model_free(self._model)

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


class LlamaBackend:
    """One loaded model and one context (KV cache) for it."""

    def __init__(self, config: BackendConfig) -> None:
        _ensure_init()
        self.config = config
        path = check_gguf_file(config.model_path)
        self.model_path = str(path)
        self.n_threads = config.n_threads or physical_cores()
        self.n_threads_batch = config.n_threads_batch or max(self.n_threads, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1)

        t0 = time.perf_counter()
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_mmap = True
        # repacked weights use one kernel for a single token and another for batches: their
        # logits differ. Plain weights (and a build without llamafile's GEMM, see
        # ``batch_invariant``) give the same logits for a token whether it is evaluated alone
        # or in a batch -- which makes draft verification and KV reuse exact.
        mparams.use_extra_bufts = False
        _recent_errors.clear()
        model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
        if not model:
            detail = next((m.split(": ", 1)[-1] for m in _recent_errors if "error loading model" in m), "")
            detail = detail.split("error loading model: ", 1)[-1]
            raise ModelLoadError(
                f"llama.cpp could not load {path}: "
                + (detail or "the file is truncated, corrupt, or uses an architecture this llama.cpp build does not know")
            )
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        cparams = llama_cpp.llama_context_default_params()
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        self.n_ctx = min(config.n_ctx, n_ctx_train) if n_ctx_train > 0 else config.n_ctx
        cparams.n_ctx = self.n_ctx
        cparams.n_batch = min(config.n_batch, self.n_ctx)
        cparams.n_ubatch = cparams.n_batch
        cparams.n_seq_max = 1
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads_batch
        cparams.swa_full = True  # sliding-window models need the full cache for KV truncation
        cparams.no_perf = True
        cparams.embeddings = False
        # flash attention splits the KV range across threads, so its results depend on the
        # thread count; without it, llama.cpp's logits are the same on 1 or 2 threads (and
        # prefill is ~10% faster here). Measured on Gemma-3-270M, 900-token context.
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelLoadError(f"llama.cpp could not create a context for {path} (n_ctx={self.n_ctx}); out of memory?")
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self.n_batch = cparams.n_batch
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.load_ms = (time.perf_counter() - t0) * 1000

        # KV bookkeeping: the tokens whose keys/values are in the cache, in order
        self._tokens: list[int] = []
        self._last_rows: list[int] = []  # positions (within the last batch) that have logits
        self._tail_logits: np.ndarray | None = None  # copy of the logits after the last token
        self._clean = 0  # the first _clean cached tokens were evaluated as prompt (reusable)
        self._closed = False

        self.system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
        #: logits independent of how tokens are batched (needs llama.cpp built without llamafile)
        self.batch_invariant = "LLAMAFILE = 1" not in self.system_info
        self.bos_id = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos_id = llama_cpp.llama_vocab_eos(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._pieces: list[bytes] | None = None
        #: original ids -> this model's ids, for a derived code-vocabulary model (else None)
        self.token_map: TokenMap | None = None
        self._tokenizer: VocabTokenizer | None = None
        if config.tokenizer_path:
            try:
                self._use_tokenizer_of(config.tokenizer_path)
            except Exception:
                self.close()
                raise
        self.eval_calls = 0
        self._threads_now = (self.n_threads, self.n_threads_batch)
        log.info(
            "loaded %s in %.0f ms (n_ctx=%d, threads=%d/%d, vocab=%d)",
            path.name, self.load_ms, self.n_ctx, self.n_threads, self.n_threads_batch, self.n_vocab,
        )

    def _use_tokenizer_of(self, source: str) -> None:
        kept = read_kept_ids(self.model_path)
        if kept is None or len(kept) != self.n_vocab:
            raise ModelLoadError(f"{self.model_path} is not a derived code-vocabulary model of {source}")
        tok = VocabTokenizer(source)
        self._tokenizer = tok
        if int(kept[-1]) >= tok.n_vocab:
            raise ModelLoadError(f"{self.model_path} does not belong to {source} (token ids out of range)")
        pieces = self.pieces()
        attrs = [llama_cpp.llama_vocab_get_attr(self._vocab, t) for t in range(self.n_vocab)]
        no_text = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED
        spellable = [t for t, a in enumerate(attrs) if not a & no_text]
        byte_ids = [t for t, a in enumerate(attrs) if a & llama_cpp.LLAMA_TOKEN_ATTR_BYTE]
        self.token_map = TokenMap(kept, tok.n_vocab, pieces, spellable, tok.piece, byte_ids)

    # ---- facts ---------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self._model, buf, 256)
        return {
            "path": self.model_path,
            "description": buf.value.decode("utf-8", "replace"),
            "size_bytes": os.path.getsize(self.model_path),
            "n_params": int(llama_cpp.llama_model_n_params(self._model)),
            "n_vocab": self.n_vocab,
            "n_ctx": self.n_ctx,
            "n_ctx_train": int(llama_cpp.llama_model_n_ctx_train(self._model)),
            "n_swa": int(llama_cpp.llama_model_n_swa(self._model)),
            "threads": self.n_threads,
            "threads_batch": self.n_threads_batch,
            "batch_invariant": self.batch_invariant,
            "load_ms": round(self.load_ms, 1),
            "vocabulary": "code" if self.token_map is not None else "full",
            "n_vocab_original": self.token_map.n_original if self.token_map is not None else self.n_vocab,
        }

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1024)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode("utf-8"), buf, 1024)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def token_text(self, tid: int) -> str:
        """The vocabulary's raw text for a token (SentencePiece markers included)."""
        return (llama_cpp.llama_vocab_get_text(self._vocab, tid) or b"").decode("utf-8", "replace")

    def is_eog(self, tid: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, tid))

    def is_control(self, tid: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_control(self._vocab, tid))

    def special_ids(self) -> list[int]:
        """Control, unknown and user-defined special tokens: never emitted as text."""
        out = []
        mask = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        for tid in range(self.n_vocab):
            if llama_cpp.llama_vocab_get_attr(self._vocab, tid) & mask or self.is_eog(tid):
                out.append(tid)
        return out

    def llama_fim_ids(self) -> dict[str, int]:
        """llama.cpp's own view of the FIM special tokens (-1 when absent); used to cross-check."""
        v = self._vocab
        return {
            "pre": llama_cpp.llama_vocab_fim_pre(v),
            "suf": llama_cpp.llama_vocab_fim_suf(v),
            "mid": llama_cpp.llama_vocab_fim_mid(v),
        }

    def pieces(self) -> list[bytes]:
        """The bytes each token contributes to the output (control tokens: their text)."""
        if self._pieces is None:
            buf = ctypes.create_string_buffer(512)
            self._pieces = [_piece(self._vocab, tid, buf) for tid in range(self.n_vocab)]
        return self._pieces

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        """This model's ids for ``text`` (a derived model: the source's tokens, mapped)."""
        if self._tokenizer is not None and self.token_map is not None:
            return self.token_map.map(self._tokenizer.tokenize(text, add_bos=add_bos, special=special))
        return _tokenize(self._vocab, text, add_bos, special)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        pieces = self.pieces()
        return b"".join(pieces[t] for t in tokens)

    @contextlib.contextmanager
    def abortable(self, should_stop: Callable[[], bool]):
        """Within this block an evaluation stops between graph nodes once ``should_stop()`` is
        true (it raises EvalAborted; the KV cache keeps only what came before it). For
        background work: llama.cpp calls back into Python for every node, which costs about
        as much as the GIL round trips, so requests the user waits for do not use it."""
        def stop(_data) -> bool:
            global _aborting
            if should_stop():
                _aborting = True
                return True
            return False

        cb = llama_cpp.ggml_abort_callback(stop)
        llama_cpp.llama_set_abort_callback(self._ctx, cb, None)
        try:
            yield
        finally:
            llama_cpp.llama_set_abort_callback(self._ctx, llama_cpp.ggml_abort_callback(0), None)
            del cb

    def set_threads(self, n_threads: int, n_threads_batch: int | None = None) -> None:
        """Change the thread counts for the next evaluations (cheap)."""
        nb = n_threads_batch if n_threads_batch is not None else n_threads
        if (n_threads, nb) != self._threads_now:
            llama_cpp.llama_set_n_threads(self._ctx, n_threads, nb)
            self._threads_now = (n_threads, nb)

    # ---- KV cache ------------------------------------------------------------------------
    @property
    def tokens(self) -> list[int]:
        """The tokens currently in the KV cache (a copy)."""
        return list(self._tokens)

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    def truncate(self, n: int) -> None:
        """Roll the KV cache back to its first ``n`` tokens."""
        if n >= len(self._tokens):
            return
        n = max(n, 0)
        ok = llama_cpp.llama_memory_seq_rm(self._mem, 0, n, -1)
        if not ok:
            log.warning("partial KV removal refused; clearing the cache")
            llama_cpp.llama_memory_clear(self._mem, True)
            n = 0
        del self._tokens[n:]
        self._clean = min(self._clean, n)
        self._tail_logits = None

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
        self._tokens.clear()
        self._clean = 0
        self._tail_logits = None

    def eval(self, tokens: Sequence[int], rows: str | Sequence[int] = "last") -> None:
        """Append ``tokens`` to the context; compute logits for ``rows`` of them.

        ``rows`` is "last", "all", or indices into ``tokens``. Logits are then read with
        ``logits(k)`` where ``k`` indexes the requested rows in order (or -1 for the last one).
        Side effect: the KV cache grows by ``len(tokens)``.
        """
        global _aborting
        n = len(tokens)
        if n == 0:
            return
        if len(self._tokens) + n > self.n_ctx:
            raise ContextFullError(f"context full: {len(self._tokens)} + {n} tokens > n_ctx {self.n_ctx}")
        if rows == "last":
            want = {n - 1}
        elif rows == "all":
            want = set(range(n))
        else:
            want = {int(r) % n for r in rows}
        b = self._batch
        pos0 = len(self._tokens)
        out_rows: list[int] = []
        for start in range(0, n, self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            m = len(chunk)
            b.n_tokens = m
            for j, t in enumerate(chunk):
                b.token[j] = t
                b.pos[j] = pos0 + start + j
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = 0
                b.logits[j] = (start + j) in want
            self.eval_calls += 1
            try:
                rc = llama_cpp.llama_decode(self._ctx, b)
            finally:
                _aborting = False
            if rc != 0:
                # the failed chunk is not in the cache (an abort may leave part of it: remove it);
                # the chunks before it are, and ``_tokens`` already lists them
                llama_cpp.llama_memory_seq_rm(self._mem, 0, pos0 + start, -1)
                self._clean = min(self._clean, pos0 + start)
                self._tail_logits = None
                if rc == 2:
                    raise EvalAborted("evaluation aborted")
                raise RuntimeError(f"llama_decode failed with code {rc}")
            self._tokens.extend(chunk)
            out_rows = [j for j in range(m) if (start + j) in want]
        # logits rows of the last chunk only are retrievable; callers ask for rows inside it
        self._last_rows = out_rows
        self._tail_logits = None
        if (n - 1) in want:
            self._tail_logits = self.logits(-1).copy()

    def logits(self, k: int = -1) -> np.ndarray:
        """Row ``k`` of the logits computed by the last ``eval`` (a view; copy to keep it)."""
        idx = k if k < 0 else self._last_rows[k]
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, idx)
        if not ptr:
            raise RuntimeError(f"no logits for row {k}")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def eval_prompt(self, tokens: Sequence[int]) -> tuple[int, int]:
        """Make the KV cache hold exactly ``tokens``, reusing the longest common prefix.

        Returns (reused, evaluated). Afterwards ``tail_logits()`` are the logits after the last
        prompt token.

        Exactness: llama.cpp's kernels give a token the same numbers whether it is evaluated
        alone or in a batch of up to ``SMALL_BATCH`` tokens, and the same numbers in any batch of
        ``PROMPT_BATCH`` or more -- but the two families differ. So prompt positions are always
        computed in batches of at least ``PROMPT_BATCH`` tokens (backing off into the cached prefix
        when fewer are new), and only positions computed that way are ever reused: the KV cache
        then holds the same numbers whatever the history, exactly as a fresh context would.
        """
        if not tokens:
            raise ValueError("tokens: the prompt is empty")
        cur = self._tokens
        limit = min(len(cur), len(tokens), self._clean)
        lcp = 0
        if limit:
            a = np.asarray(cur[:limit], dtype=np.int64)
            bb = np.asarray(tokens[:limit], dtype=np.int64)
            diff = np.nonzero(a != bb)[0]
            lcp = int(diff[0]) if len(diff) else limit
        if lcp == len(tokens) and len(cur) == len(tokens) and self._tail_logits is not None and self._clean >= len(tokens):
            return lcp, 0
        lcp = max(0, min(lcp, len(tokens) - PROMPT_BATCH))
        self.truncate(lcp)
        rest = list(tokens[lcp:])
        # chunks of at most n_batch, none smaller than PROMPT_BATCH (unless the whole prompt is)
        sizes = []
        left = len(rest)
        while left > 0:
            sizes.append(min(self.n_batch, left))
            left -= sizes[-1]
        if len(sizes) > 1 and sizes[-1] < PROMPT_BATCH:
            move = PROMPT_BATCH - sizes[-1]
            sizes[-2] -= move
            sizes[-1] += move
        pos = 0
        for _k, n in enumerate(sizes):
            self.eval(rest[pos : pos + n], rows="last")
            pos += n
        self._clean = len(tokens)
        return lcp, len(tokens) - lcp

    def tail_logits(self) -> np.ndarray:
        """Logits after the last token in the cache (valid after eval_prompt / eval with last row)."""
        if self._tail_logits is None:
            raise RuntimeError("no logits for the end of the cache")
        return self._tail_logits

    def warm_up(self) -> None:
        """Run one tiny evaluation so the first real request does not pay for set-up."""
        first = self.bos_id if self.bos_id >= 0 else 0
        self.eval([first, first], rows="last")
        self.reset()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._tokenizer is not None:
                self._tokenizer.close()
            if getattr(self, "_batch", None) is not None:
                llama_cpp.llama_batch_free(self._batch)
                llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)
        except Exception:  # pragma: no cover
            log.debug("error while freeing the model", exc_info=True)

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


class EvalAborted(RuntimeError):
    """An evaluation stopped by ``LlamaBackend.abortable``'s check."""

    aborted = True


class ContextFullError(RuntimeError):
    """The KV cache cannot hold more tokens."""


# ---------------------------------------------------------------------------------------------
# Peers for `steercode bench`: the same model run the way other tools run it. They live here
# because this is the one module allowed to import llama_cpp.


class LlamaCppPythonPeer:
    """One persistent ``llama_cpp.Llama`` answering with ``create_completion`` (its own
    longest-prefix KV reuse), optionally with its prompt-lookup draft model, or with a fresh
    context per request (``fresh=True``: a server without KV reuse)."""

    def __init__(self, model_path: str, *, n_ctx: int = 4096, threads: int = 0, lookup: bool = False, fresh: bool = False) -> None:
        from llama_cpp import Llama

        _ensure_init()
        draft = None
        if lookup:
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            draft = LlamaPromptLookupDecoding(num_pred_tokens=8)
        n = threads or physical_cores()
        self.llm = Llama(
            model_path=model_path, n_ctx=n_ctx, n_threads=n, n_threads_batch=n, swa_full=True,
            verbose=False, draft_model=draft, logits_all=lookup,  # its lookup decoding needs every row
        )
        _ensure_init()  # Llama() installs its own log callback: route llama.cpp's logs back to ours
        self.fresh = fresh

    def complete(self, prompt: str, max_tokens: int) -> tuple[str, int]:
        """(completion text up to the end of the line, prompt tokens evaluated)."""
        toks = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True)
        if self.fresh:
            self.llm.reset()
        cached = list(self.llm.input_ids[: self.llm.n_tokens])
        lcp = 0
        for a, b in zip(cached, toks, strict=False):
            if a != b:
                break
            lcp += 1
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
        return out["choices"][0]["text"], max(len(toks) - lcp, 1)

    def close(self) -> None:
        try:
            self.llm.close()
        except Exception:
            pass
