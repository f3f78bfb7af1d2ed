"""``steercode bench``: keystroke latency against peers, and decoding speed with/without drafts.

typing: a region of a real file is removed and typed back one character at a time; at every
keystroke each mode is asked for a single-line suggestion (up to ``max_tokens`` tokens), as an
editor with no debounce would. Keystrokes come every ``interval_ms`` (a typist); a mode may use the
time between them (steercode finishes and prefetches suggestions then; the peers cannot). The
latency of a keystroke is from the keystroke to the suggestion -- including, for steercode, the
time to stop any background work still running. All modes run the same model, threads and token
budget, one after the other (never two models at once: 2 cores).

decode: multi-line completions at sampled sites, drafting off and on (monitors on); tokens/s,
draft acceptance, and whether every output is identical.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.decoding import CancelToken
from completion.engine import CompletionRequest, Engine
from completion.settings import Settings

from .analysis import trigger_job_ms

log = logging.getLogger(__name__)

__all__ = ["TYPING_MODES", "bench_decode", "bench_typing", "default_region"]

TYPING_MODES = ("steercode", "naive", "llama-cpp-python", "lookup", "llama-server")


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))], 2)


def default_region(text: str, chars: int = 80, language: str = "python") -> tuple[int, int]:
    """A deterministic region of about ``chars`` characters of *code* in the middle of the file:
    consecutive whole statements inside a function body, nearest the file's middle line."""
    from monitors.syntax import cursor_syntax

    lines = text.split("\n")
    starts = [0]
    for ln in lines[:-1]:
        starts.append(starts[-1] + len(ln) + 1)
    mid = len(lines) // 2
    order = sorted(range(len(lines)), key=lambda i: abs(i - mid))
    for i in order:
        s = lines[i].strip()
        if not lines[i].startswith((" ", "\t")) or not s or s[0] in "#\"'@)]}" or s.startswith(("def ", "class ")):
            continue
        a = starts[i] + (len(lines[i]) - len(lines[i].lstrip()))
        syn = cursor_syntax(text, a + 1, language)
        if syn is not None and (syn.in_string or syn.in_comment or syn.open_brackets):
            continue
        b = starts[i] + len(lines[i])
        j = i + 1
        while b - a < chars and j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(("#", "def ", "class ")):
            b = starts[j] + len(lines[j])
            j += 1
        if b - a >= chars:
            return a, a + chars
    return 0, min(len(text), chars)


def parse_region(text: str, spec: str | None) -> tuple[int, int]:
    """``A:B`` are 1-based line numbers (inclusive); the region is those lines' text."""
    if not spec:
        return default_region(text)
    try:
        a_s, b_s = spec.split(":")
        a, b = int(a_s), int(b_s)
    except ValueError:
        raise ValueError(f"--region expects A:B (1-based lines), got {spec!r}") from None
    lines = text.split("\n")
    if not 1 <= a <= b <= len(lines):
        raise ValueError(f"--region {spec}: the file has {len(lines)} lines")
    start = sum(len(x) + 1 for x in lines[: a - 1])
    start += len(lines[a - 1]) - len(lines[a - 1].lstrip())
    end = sum(len(x) + 1 for x in lines[:b]) - 1
    return start, end


_TRACE_STATS = ("stop_reason", "total_ms", "queue_ms", "prompt_build_ms", "prompt_ms", "decode_ms", "pending_wait_ms", "eval_calls", "accepted_draft_tokens", "rewinds", "yielded")


@dataclass
class _Keystroke:
    ms: float
    suggestion: str
    prompt_eval: int
    cache_hit: bool
    match: bool
    partial: bool = False
    generated: int = 0
    detail: dict | None = None  # steercode: where the time went (in the --json trace only)


class _LlamaServer:
    """llama.cpp's llama-server on loopback, queried like llama.vim does."""

    def __init__(self, binary: str, model: str, threads: int, n_ctx: int) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-t", str(threads), "-tb", str(threads),
             "-c", str(n_ctx), "--cache-reuse", "256", "--swa-full", "-np", "1", "--no-webui", "-fa", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("llama-server did not start")

    def complete(self, prompt: str, max_tokens: int) -> tuple[str, int]:
        body = json.dumps({"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "cache_prompt": True,
                           "stop": ["\n"], "samplers": ["top_k"], "top_k": 1}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/completion", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
        return out.get("content", ""), int(out.get("timings", {}).get("prompt_n", 0))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _llama_vim_window(text: str, cursor: int, lines: int = 256) -> str:
    """The last ``lines`` lines before the cursor, as llama.vim sends them (its ring of extra
    chunks is off: one file)."""
    start = cursor
    for _ in range(lines):
        nl = text.rfind("\n", 0, start - 1 if start else 0)
        if nl < 0:
            start = 0
            break
        start = nl + 1
    return text[start:cursor]


def _window_texts(engine: Engine, path: str, base: str, a: int, typed_region: str) -> list[str]:
    """The document text steercode's prompt holds at every keystroke (for the peers): each
    keystroke's document completed once, with the engine's settings (the window's token budget
    depends on them) but no monitors, drafting or cache, and cut where the completion's prompt
    window started (its ``window_start`` stat)."""
    texts = []
    for i in range(len(typed_region) + 1):
        doc = base[:a] + typed_region[:i] + base[a:]
        comp = engine.complete(CompletionRequest(text=doc, offset=a + i, language=_lang(path), path=str(path),
                                                 options={"monitors": [], "drafting": False, "cache": False}))
        texts.append(doc[comp.stats["window_start"] : a + i])
    return texts


def bench_typing(
    path: str,
    *,
    region: str | None = None,
    modes: Sequence[str] = ("steercode", "naive", "llama-cpp-python", "lookup"),
    llama_server: str | None = None,
    settings: Settings | None = None,
    max_tokens: int = 24,
    interval_ms: float = 150.0,
    progress: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    a, b = parse_region(text, region)
    typed_region = text[a:b]
    base = text[:a] + text[b:]
    settings = settings or Settings()
    report: dict[str, Any] = {"task": "typing", "file": str(path), "region": [a, b], "keystrokes": len(typed_region),
                              "interval_ms": interval_ms, "max_tokens": max_tokens, "modes": {}}
    engine = Engine(settings.merge({"line_mode": "single", "max_tokens": max_tokens})[0])
    engine.load()
    prompt_texts: list[str] = []  # the peers' prompts: steercode's at every keystroke (when a peer needs them)
    model_path = engine.describe()["path"]
    threads = engine.describe()["threads"]
    n_ctx = engine.describe()["n_ctx"]
    for mode in modes:
        if mode == "llama-server" and not llama_server:
            continue
        progress(f"mode {mode}")
        runs: list[_Keystroke] = []
        peer: Any = None
        jobs0 = 0
        if mode == "steercode":
            # the KV cache is empty: the engine was loaded (or reloaded after a peer) since its
            # last request
            engine.cache.clear()
            if engine.monitor_suite() is not None:
                engine.wait_warm()
                jobs0 = len(engine.monitor_suite().runner.job_ms)  # type: ignore[union-attr]
        elif mode in ("naive", "llama-cpp-python", "lookup"):
            if not prompt_texts:
                prompt_texts = _window_texts(engine, path, base, a, typed_region)
            engine.close()  # never two models at once
            from completion.backend import LlamaCppPythonPeer

            peer = LlamaCppPythonPeer(model_path, n_ctx=n_ctx, threads=threads, lookup=mode == "lookup", fresh=mode == "naive")
        elif mode == "llama-server":
            engine.close()
            peer = _LlamaServer(llama_server, model_path, threads, n_ctx)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown mode {mode!r} (known: {', '.join(TYPING_MODES)})")
        bg: threading.Thread | None = None
        bg_token: CancelToken | None = None
        try:
            for i in range(len(typed_region) + 1):
                doc = base[:a] + typed_region[:i] + base[a:]
                cur = a + i
                t0 = time.perf_counter()
                if bg is not None:  # a keystroke stops background work first (counted in latency)
                    bg_token.cancel("keystroke")  # type: ignore[union-attr]
                    bg.join()
                    bg = None
                if mode == "steercode":
                    comp = engine.complete(CompletionRequest(text=doc, offset=cur, language=_lang(path), path=str(path),
                                                             trigger="automatic"))  # as you type
                    sugg = comp.insert_text
                    pe = int(comp.stats.get("prompt_eval_tokens", 0))
                    hit = bool(comp.stats.get("cache_hit"))
                elif mode == "llama-server":
                    sugg, pe = peer.complete(_llama_vim_window(doc, cur), max_tokens)
                    hit = False
                else:
                    sugg, pe = peer.complete(prompt_texts[i], max_tokens)
                    hit = False
                ms = (time.perf_counter() - t0) * 1000
                rest = typed_region[i:]
                s = sugg.split("\n", 1)[0].rstrip()
                head = s[: max(4, min(len(s), 8))]
                runs.append(_Keystroke(ms, s, pe, hit, bool(s.strip()) and rest.startswith(s),
                                       bool(s.strip()) and rest.startswith(head),
                                       int(comp.stats.get("generated_tokens", 0)) if mode == "steercode" else 0,
                                       {k: comp.stats.get(k) for k in _TRACE_STATS} if mode == "steercode" else None))
                if mode == "steercode" and settings.prefetch:
                    bg_token = CancelToken()
                    bg = threading.Thread(target=engine.run_background, args=(bg_token,), daemon=True)
                    bg.start()
                time.sleep(max(0.0, interval_ms - ms) / 1000)
        finally:
            if bg is not None:
                bg_token.cancel("done")  # type: ignore[union-attr]
                bg.join()
            if peer is not None:
                peer.close()
                engine.load()
        lat = [r.ms for r in runs]
        report["modes"][mode] = {
            "p50_ms": _pct(lat, 0.5),
            "p95_ms": _pct(lat, 0.95),
            "mean_ms": round(statistics.mean(lat), 2),
            "prompt_tokens_per_request": round(statistics.mean(r.prompt_eval for r in runs), 2),
            "cache_hits": sum(r.cache_hit for r in runs),
            "suggestions": sum(bool(r.suggestion.strip()) for r in runs),
            "match_rate": round(sum(r.match for r in runs) / len(runs), 4),
            "partial_match_rate": round(sum(r.partial for r in runs) / len(runs), 4),
        }
        suite = engine.monitor_suite() if mode == "steercode" else None
        if suite is not None:  # the analyses themselves, timed in the worker (no queueing)
            jobs = trigger_job_ms(suite.runner, since=jobs0)
            report["modes"][mode].update(analysis_jobs=len(jobs), analysis_job_p50_ms=_pct(jobs, 0.5), analysis_job_p95_ms=_pct(jobs, 0.95))
        report.setdefault("_trace", {})[mode] = [(round(r.ms, 1), r.cache_hit, r.prompt_eval, r.generated, r.suggestion[:40], r.detail)
                                                 for r in runs]
        progress(f"  {mode}: {report['modes'][mode]}")
    engine.close()
    base_p50 = report["modes"].get("steercode", {}).get("p50_ms")
    if base_p50:
        report["ratios_vs_steercode"] = {m: round(v["p50_ms"] / base_p50, 2) for m, v in report["modes"].items()}
    return report


def _lang(path: str) -> str:
    from monitors.syntax import language_for_path

    return language_for_path(path)


# ---- decode ---------------------------------------------------------------------------------


def decode_sites(paths: Sequence[str], n: int, seed: int) -> list[tuple[str, str, int]]:
    """Line starts inside function bodies: (path, text, offset)."""
    out = []
    for p in paths:
        text = Path(p).read_text(encoding="utf-8")
        lines = text.split("\n")
        pos = 0
        for i, line in enumerate(lines):
            if i > 0 and line.startswith((" ", "\t")) and line.strip() and not line.strip().startswith(("#", "@", "def ", "class ")):
                prev = lines[i - 1].strip()
                if prev and not prev.startswith("#"):
                    indent = len(line) - len(line.lstrip())
                    out.append((p, text, pos + indent))
            pos += len(line) + 1
    rnd = random.Random(seed)
    return sorted(rnd.sample(out, min(n, len(out))), key=lambda x: (x[0], x[2]))


def _replay_prompt(tokenize: Callable[[str], list[int]], doc: str, offset: int, n: int) -> list[int]:
    """``n`` tokens of the document, those before the cursor last (only the length counts)."""
    pool = tokenize(doc[offset:]) + tokenize(doc[:offset]) or [0]
    while len(pool) < n:
        pool = pool + pool
    return pool[-n:]


def _raw_decode_ms(model_path: str, settings: Settings, runs: Sequence[tuple[str, int, int, int]]) -> list[float]:
    """The baseline for the decode loop's overhead: per run (document, cursor, prompt tokens,
    generated tokens), the time bare backend calls take to decode as many tokens -- one eval and
    one argmax per token after the first, nothing else -- after a prompt as long as the engine's.

    A backend of its own on the same model, context size and threads, loaded once the engine's
    is closed (never two models at once). Its tokens are its own greedy choices, not the
    engine's: what an evaluation costs depends on how many tokens the context holds, not on
    which they are, so the length of the prompt and the number of tokens are what is copied.
    """
    import numpy as np

    from completion.backend import BackendConfig, LlamaBackend

    be = LlamaBackend(BackendConfig(model_path=model_path, n_ctx=settings.context_size, n_threads=settings.threads,
                                    n_threads_batch=settings.threads_batch))
    try:
        be.warm_up()
        out = []
        for doc, offset, n_prompt, n_gen in runs:
            be.eval_prompt(_replay_prompt(lambda t: be.tokenize(t, add_bos=False, special=False), doc, offset, n_prompt))
            tok = int(np.argmax(be.tail_logits()))
            t0 = time.perf_counter()
            for _ in range(n_gen - 1):
                be.eval([tok])
                tok = int(np.argmax(be.logits(-1)))
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        be.close()


def bench_decode(paths: Sequence[str], *, sites: int = 20, seed: int = 0, settings: Settings | None = None,
                 related: Sequence[str] = (), progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Drafting off and on at the same sites; ``related`` are texts of other open documents."""
    settings = settings or Settings()
    opts = {"line_mode": "multi", "max_lines": 8, "max_tokens": 96, "cache": False, "first_line_fast": False,
            "prefetch": False}
    engine = Engine(settings.merge(opts)[0])
    engine.load()
    chosen = decode_sites(paths, sites, seed)
    res: dict[str, list] = {"off": [], "on": []}
    replays: list[tuple[str, int, int, int]] = []  # drafting off: what bare backend calls replay
    for k, (p, text, off) in enumerate(chosen):
        doc = text[:off] + text[text.find("\n", off) if text.find("\n", off) >= 0 else len(text):]
        # an unmeasured pass first: the monitors' analyses are then warm for both measured modes
        # (a cold analysis that misses its deadline has no opinion, which could change the output)
        engine.complete(CompletionRequest(text=doc, offset=off, language=_lang(p), path=p, options={"drafting": False}))
        for mode in ("off", "on"):
            c = engine.complete(CompletionRequest(text=doc, offset=off, language=_lang(p), path=p,
                                                  options={"drafting": mode == "on"}, related=tuple(related)))
            res[mode].append((c.insert_text, c.stats))
            if mode == "off":
                replays.append((doc, off, int(c.stats["prompt_tokens"]), int(c.stats["generated_tokens"])))
        progress(f"{k + 1}/{len(chosen)} sites")
    model_path = str(engine.describe()["path"])
    engine.close()
    raw_ms = _raw_decode_ms(model_path, engine.settings, replays)
    report: dict[str, Any] = {"task": "decode", "files": list(paths), "related_documents": len(related),
                              "sites": len(chosen), "modes": {}}
    for mode, rows in res.items():
        gen = sum(s["generated_tokens"] for _, s in rows)
        ms = sum(s["decode_ms"] for _, s in rows)
        drafted = sum(s["drafted_tokens"] for _, s in rows)
        acc = sum(s["accepted_draft_tokens"] for _, s in rows)
        report["modes"][mode] = {
            "tokens_per_s": round(gen / (ms / 1000), 2) if ms else 0.0,
            "generated_tokens": gen,
            "decode_ms": round(ms, 1),
            "drafted_tokens": drafted,
            "accepted_draft_tokens": acc,
            "draft_acceptance": round(acc / drafted, 4) if drafted else 0.0,
            "monitor_timeouts": sum(m.get("timeouts", 0) for _, s in rows for m in s["monitors"].values()),
            "accepted_by_source": {
                src: sum(s["accepted_by_source"].get(src, 0) for _, s in rows)
                for src in sorted({k for _, s in rows for k in s["accepted_by_source"]})
            },
        }
    report["speedup"] = round(report["modes"]["on"]["tokens_per_s"] / max(report["modes"]["off"]["tokens_per_s"], 1e-9), 3)
    report["identical_outputs"] = all(a[0] == b[0] for a, b in zip(res["off"], res["on"], strict=False))
    ours = sum(s["decode_ms"] for _, s in res["off"])
    raw = sum(raw_ms)
    report["loop_overhead"] = round(ours / raw - 1, 4) if raw else None
    return report


# ---- typing against a shared model server ----------------------------------------------------


def bench_typing_clients(
    path: str,
    model_url: str,
    *,
    clients: int = 4,
    region: str | None = None,
    settings: Settings | None = None,
    max_tokens: int = 24,
    interval_ms: float = 150.0,
    compare_local: bool = True,
    progress: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """``clients`` editors typing the same region at once against one llama-server (each its
    own engine, its own slot), as ``bench typing`` types: p50/p95 per client, and the share of
    suggestions identical to the local backend's on the same documents (the local model on the
    same GGUF, full vocabulary, run after the clients, untimed). Suggestions are made
    deterministic for the comparison: no time budget, no prefetch."""
    text = Path(path).read_text(encoding="utf-8")
    a, b = parse_region(text, region)
    typed = text[a:b]
    base = text[:a] + text[b:]
    settings = settings or Settings()
    fixed = {"line_mode": "single", "max_tokens": max_tokens, "time_budget_ms": 0, "prefetch": False}
    remote_settings, problems = settings.merge({**fixed, "model_url": model_url})
    if problems:
        raise ValueError("; ".join(problems))
    docs = [(base[:a] + typed[:i] + base[a:], a + i) for i in range(len(typed) + 1)]
    lang = _lang(path)
    engines = []
    for _ in range(clients):
        e = Engine(remote_settings)
        e.load()
        if e.monitor_suite() is not None:
            e.wait_warm()
        engines.append(e)
    results: list[list[tuple[float, str]]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients)

    def client(k: int) -> None:
        e = engines[k]
        start.wait()
        for doc, cur in docs:
            t0 = time.perf_counter()
            try:
                comp = e.complete(CompletionRequest(text=doc, offset=cur, language=lang, path=f"{path}#client{k}",
                                                    trigger="automatic"))
                sugg = comp.insert_text
            except Exception as exc:  # recorded: a server error is a result here
                errors.append(f"client {k}: {exc}")
                sugg = ""
            ms = (time.perf_counter() - t0) * 1000
            results[k].append((ms, sugg))
            time.sleep(max(0.0, interval_ms - ms) / 1000)

    progress(f"{clients} clients typing {len(typed)} keystrokes against {model_url}")
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.close()
    report: dict[str, Any] = {"task": "typing-clients", "file": str(path), "model_url": model_url, "clients": clients,
                              "keystrokes": len(docs), "interval_ms": interval_ms, "max_tokens": max_tokens,
                              "per_client": [], "errors": errors[:20]}
    for k in range(clients):
        lat = [ms for ms, _ in results[k]]
        report["per_client"].append({"client": k, "p50_ms": _pct(lat, 0.5), "p95_ms": _pct(lat, 0.95),
                                     "mean_ms": round(statistics.mean(lat), 2) if lat else 0.0})
    all_lat = [ms for r in results for ms, _ in r]
    report["p50_ms"], report["p95_ms"] = _pct(all_lat, 0.5), _pct(all_lat, 0.95)
    if compare_local:
        progress("the local backend on the same documents")
        local_settings, _ = settings.merge({**fixed, "model_url": None, "vocabulary": "full"})
        local = Engine(local_settings)
        local.load()
        try:
            want = [local.complete(CompletionRequest(text=doc, offset=cur, language=lang, path=str(path),
                                                     trigger="automatic")).insert_text for doc, cur in docs]
        finally:
            local.close()
        same = [sum(s == w for (_, s), w in zip(results[k], want, strict=True)) for k in range(clients)]
        report["identical_to_local"] = round(sum(same) / (clients * len(docs)), 4)
        for k in range(clients):
            report["per_client"][k]["identical_to_local"] = round(same[k] / len(docs), 4)
    return report
