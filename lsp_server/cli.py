"""``steercode`` command line: serve | complete | stdio | doctor.

Positions on the command line and in JSON lines are 0-based (line, character) with the character
counted in code points, as LSP does with UTF-32.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__

log = logging.getLogger("steercode")


def _setup_logging(level: str, log_file: str | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        try:
            handlers = [logging.FileHandler(log_file, encoding="utf-8")]
        except OSError as exc:
            raise SystemExit(f"steercode: cannot write the log file {log_file}: {exc.strerror or exc}") from None
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("steercode.llama").setLevel(max(logging.WARNING, logging.getLogger().level))


# A one-shot command or a script wants the whole suggestion now: no first-line-then-background
# (nobody would receive the rest) and no prefetch. `complete --repeat` measures KV reuse, not the
# typed-through cache. `--set` overrides these.
_COMPLETE_DEFAULTS = {"first_line_fast": False, "prefetch": False, "cache": False}
_STDIO_DEFAULTS = {"first_line_fast": False, "prefetch": False}


def _settings_from_args(args: argparse.Namespace, defaults: dict[str, Any] | None = None):
    from completion.settings import Settings

    changes: dict[str, Any] = dict(defaults or {})
    if getattr(args, "model", None):
        changes["model_path"] = args.model
    if getattr(args, "vocabulary", None):
        changes["vocabulary"] = args.vocabulary
    if getattr(args, "model_url", None):
        changes["model_url"] = args.model_url
    if getattr(args, "threads", None) is not None:
        changes["threads"] = args.threads
    if getattr(args, "max_tokens", None) is not None:
        changes["max_tokens"] = args.max_tokens
    if getattr(args, "line_mode", None):
        changes["line_mode"] = args.line_mode
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise SystemExit(f"steercode: --set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            changes[key] = json.loads(value)
        except ValueError:
            changes[key] = value
    if os.environ.get("STEERCODE_API_KEY") and "api_key" not in changes and "apiKey" not in changes:
        changes["api_key"] = os.environ["STEERCODE_API_KEY"]  # team mode: not on the command line
    settings, problems = Settings().merge(changes)
    if problems:
        raise SystemExit("steercode: " + "; ".join(problems))
    return settings


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="GGUF model file (default: the embedded Gemma-3-270M)")
    p.add_argument("--vocabulary", choices=["full", "code"],
                   help="output head: the tokens code uses (default, faster) or the model's full vocabulary")
    p.add_argument("--threads", type=int, help="decode threads (default: physical cores)")
    p.add_argument("--max-tokens", type=int, help="most tokens to generate")
    p.add_argument("--line-mode", choices=["auto", "single", "multi"], help="single/multi-line policy")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any setting (repeatable), e.g. --set context_tokens=512")
    p.add_argument("--model-url", help="team mode: run the model on this llama-server (http(s)://host:port)")


# ---------------------------------------------------------------------------------------------
# serve


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level, args.log_file)
    settings = _settings_from_args(args)
    from .server import create_server

    server = create_server(settings)
    if args.tcp:
        host, _, port_s = args.tcp.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port_s)
        except ValueError:
            print(f"steercode: --tcp expects HOST:PORT, got {args.tcp!r}", file=sys.stderr)
            return 2
        if not args.allow_remote:
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                print(
                    f"steercode: refusing to listen on non-loopback address {host!r}; pass --allow-remote to do so",
                    file=sys.stderr,
                )
                return 2
        if not 0 <= port <= 65535:
            print(f"steercode: --tcp port must be between 0 and 65535, got {port}", file=sys.stderr)
            return 2
        log.warning("listening on %s:%d", host, port)
        try:
            server.start_tcp(host, port)
        except OSError as exc:  # the port is taken, the host is not ours ...
            print(f"steercode: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        server.start_io()
    return 0


# ---------------------------------------------------------------------------------------------
# complete


def _read_text(path: str) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); steercode completes text files only"
        ) from None


def _related_texts(value: Any) -> tuple[str, ...]:
    """``related``: other documents for the drafter -- file paths, or objects with "text" or "path"."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("'related' must be a list of file paths or {\"text\": ...} objects")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append(item["text"])
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            out.append(_read_text(item["path"]))
        elif isinstance(item, str):
            out.append(_read_text(item))
        else:
            raise ValueError(f"'related'[{i}] must be a file path or an object with \"text\" or \"path\"")
    return tuple(out)


def _completion_json(text: str, comp) -> dict[str, Any]:
    from completion.document import offset_to_position

    sl, sc = offset_to_position(text, comp.range_start)
    el, ec = offset_to_position(text, comp.range_end)
    return {
        "completion": comp.insert_text,
        "range": {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}},
        "multiline": comp.multiline,
        "stats": comp.stats,
    }


def cmd_complete(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    from completion.document import PositionError, position_to_offset
    from completion.engine import CompletionRequest, Engine, ModelLoadError
    from monitors.syntax import language_for_path

    settings = _settings_from_args(args, _COMPLETE_DEFAULTS)
    try:
        text = _read_text(args.file)
        offset = position_to_offset(text, args.line, args.character, clamp_character=False)
        related = _related_texts(args.related)
    except (OSError, ValueError, PositionError) as exc:
        msg = exc.strerror + f": {exc.filename or args.file}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"steercode: {msg}", file=sys.stderr)
        return 2
    engine = Engine(settings)
    t0 = time.perf_counter()
    try:
        engine.load()
    except ModelLoadError as exc:
        print(f"steercode: {exc}", file=sys.stderr)
        return 3
    load_ms = (time.perf_counter() - t0) * 1000
    req = CompletionRequest(
        text=text, offset=offset, language=args.language or language_for_path(args.file), path=args.file,
        related=related,
    )
    comp = engine.complete(req)
    runs = [comp.stats]
    for _ in range(max(0, args.repeat - 1)):  # warm runs: the KV cache holds the prompt now
        runs.append(engine.complete(req).stats)
    if args.json:
        out = _completion_json(text, comp)
        out["stats"] = dict(out["stats"], model_load_ms=round(load_ms, 1))
        if args.repeat > 1:
            out["runs"] = runs
        print(json.dumps(out, ensure_ascii=False))
    else:
        sys.stdout.write(comp.insert_text + ("\n" if comp.insert_text else ""))
        sys.stdout.flush()
        if args.verbose:
            s = comp.stats
            print(
                f"[steercode] model load {load_ms:.0f} ms; completion {s['total_ms']:.0f} ms: prompt "
                f"{s['prompt_tokens']} tokens ({s['reused_tokens']} reused) in {s['prompt_ms']:.0f} ms, "
                f"{s['generated_tokens']} tokens generated in {s['decode_ms']:.0f} ms; {s['line_mode']}-line "
                f"({s['line_mode_reason']}), stop: {s['stop_reason']}",
                file=sys.stderr,
            )
            for i, r in enumerate(runs[1:], 2):
                if r.get("cache_hit"):
                    print(f"[steercode] run {i} (warm): {r.get('total_ms', 0):.1f} ms from the typed-through cache", file=sys.stderr)
                    continue
                print(
                    f"[steercode] run {i} (warm): {r['total_ms']:.0f} ms: prompt {r['prompt_eval_tokens']} new tokens "
                    f"({r['reused_tokens']} reused) in {r['prompt_ms']:.0f} ms, {r['generated_tokens']} generated "
                    f"in {r['decode_ms']:.0f} ms",
                    file=sys.stderr,
                )
    engine.close()
    return 0


# ---------------------------------------------------------------------------------------------
# stdio (JSON lines)

_REQUEST_FIELDS = {"id", "path", "text", "line", "character", "language", "trigger", "options", "related"}
_FIELD_TYPES = (
    ("path", str, "a string (a file path)"),
    ("text", str, "a string"),
    ("language", str, "a string (a language id such as \"python\")"),
    ("trigger", str, "\"invoked\" or \"automatic\""),
    ("options", dict, "an object of settings"),
)


def _stdio_error(rid: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "error": {"code": code, "message": message}}


def handle_stdio_line(engine, line: bytes) -> dict[str, Any] | None:
    """One JSON-lines request -> one response object (None for a blank line)."""
    from completion.decoding import Cancelled
    from completion.document import PositionError, position_to_offset
    from completion.engine import CompletionRequest, EngineNotReady, ModelLoadError, ModelServerError
    from monitors.syntax import language_for_path

    if not line.strip():
        return None
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _stdio_error(None, "parse_error", f"the line is not UTF-8 ({exc.reason} at byte {exc.start})")
    except ValueError as exc:
        return _stdio_error(None, "parse_error", f"the line is not valid JSON: {exc}")
    except RecursionError:
        return _stdio_error(None, "parse_error", "the line is not valid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return _stdio_error(None, "invalid_request", "a request must be a JSON object")
    rid = obj.get("id")
    if isinstance(rid, float) and not math.isfinite(rid):  # 1e999, NaN: no valid JSON to echo back
        return _stdio_error(None, "invalid_request", f"'id' must be a finite number, a string or null, got {rid!r}")
    try:
        text = obj.get("text")
        path = obj.get("path")
        for key, kinds, what in _FIELD_TYPES:
            if obj.get(key) is not None and not isinstance(obj[key], kinds):
                return _stdio_error(rid, "invalid_request", f"{key!r} must be {what}, got {type(obj[key]).__name__}")
        if text is None:
            if not path:
                return _stdio_error(rid, "invalid_request", "give 'text' (the document) or 'path' (a file to read)")
            text = _read_text(path)
        for key in ("line", "character"):
            if key not in obj:
                return _stdio_error(rid, "invalid_request", f"missing {key!r}")
        offset = position_to_offset(text, obj["line"], obj["character"], clamp_character=False)
        options = dict(obj.get("options") or {})
        options.update({k: v for k, v in obj.items() if k not in _REQUEST_FIELDS})
        req = CompletionRequest(
            text=text,
            offset=offset,
            language=obj.get("language") or language_for_path(path),
            path=path,
            trigger=obj.get("trigger", "invoked"),
            options=options,
            related=_related_texts(obj.get("related")),
        )
        if not engine.ready:
            if engine.load_error:
                return _stdio_error(rid, "model_error", engine.load_error)
            engine.load()
        comp = engine.complete(req)
        # a script sends more: warm the analysis up now (once; after the first answer, so that
        # it does not compete with it)
        engine.warm_up_monitors()
    except PositionError as exc:
        return _stdio_error(rid, "invalid_position", str(exc))
    except OSError as exc:
        return _stdio_error(rid, "io_error", f"{exc.strerror or exc}: {exc.filename or path}")
    except ModelLoadError as exc:
        return _stdio_error(rid, "model_error", str(exc))
    except (EngineNotReady, Cancelled) as exc:
        return _stdio_error(rid, "not_ready", str(exc))
    except ModelServerError as exc:  # team mode: the model server is down or refused
        return _stdio_error(rid, "server_error", str(exc))
    except ValueError as exc:
        return _stdio_error(rid, "invalid_request", str(exc))
    except Exception as exc:  # a bug: report it, keep serving
        log.exception("request %r failed", rid)
        return _stdio_error(rid, "internal_error", f"{type(exc).__name__}: {exc}")
    out = _completion_json(text, comp)
    return {"id": rid, **out}


def cmd_stdio(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    from completion.engine import Engine

    engine = Engine(_settings_from_args(args, _STDIO_DEFAULTS))
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    for line in stdin:
        resp = handle_stdio_line(engine, line)
        if resp is None:
            continue
        stdout.write(json.dumps(resp, ensure_ascii=False) + "\n")
        stdout.flush()
    engine.close()
    return 0


# ---------------------------------------------------------------------------------------------
# eval


def _eval_infill(args: argparse.Namespace) -> int:
    from benchmarks.infill import dump, format_table, run_infill
    from completion.engine import Engine, ModelLoadError

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"steercode: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    engine = Engine(_settings_from_args(args))
    try:
        engine.load()
    except ModelLoadError as exc:
        print(f"steercode: {exc}", file=sys.stderr)
        return 3
    try:
        report = run_infill(
            engine, single=args.single, multi=args.multi, seed=args.seed,
            modes=args.modes.split(",") if args.modes else None, corpus=args.paths, corpus_sites_n=args.sites,
            progress=lambda m: print(f"[eval] {m}", file=sys.stderr, flush=True),
        )
    except (RuntimeError, ValueError) as exc:
        print(f"steercode: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    print(format_table(report))
    if args.json:
        dump(report, args.json)
    if args.details:
        Path(args.details).write_text(json.dumps(report["_records"], indent=1))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    if args.task == "infill":
        return _eval_infill(args)
    if not args.paths:
        print(f"steercode: eval {args.task} needs Python files or directories", file=sys.stderr)
        return 2
    from completion.engine import Engine, ModelLoadError

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"steercode: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    engine = Engine(_settings_from_args(args))
    try:
        engine.load()
    except ModelLoadError as exc:
        print(f"steercode: {exc}", file=sys.stderr)
        return 3
    from benchmarks.evaluation import dump, format_table, run_eval

    report = run_eval(
        args.task, args.paths, sites=args.sites, seed=args.seed, engine=engine,
        progress=lambda m: print(f"[eval] {m}", file=sys.stderr, flush=True),
    )
    print(format_table(report))
    if args.json:
        dump(report, args.json)
    if args.details:  # every site: context, truth, each mode's completion and verdicts
        Path(args.details).write_text(json.dumps(report["_records"], indent=1))
    engine.close()
    return 0


# ---------------------------------------------------------------------------------------------
# bench


def cmd_bench(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    from benchmarks.bench import TYPING_MODES, bench_decode, bench_typing

    settings = _settings_from_args(args)
    say = lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.task == "typing":
            if len(args.files) != 1:
                print("steercode: bench typing takes one FILE", file=sys.stderr)
                return 2
            modes = [m.strip() for m in args.modes.split(",")] if args.modes else list(TYPING_MODES)
            unknown = [m for m in modes if m not in TYPING_MODES]
            if unknown:
                print(f"steercode: unknown modes {unknown} (known: {', '.join(TYPING_MODES)})", file=sys.stderr)
                return 2
            if settings.model_url:  # team mode: N editors at once against the model server
                from benchmarks.bench import bench_typing_clients

                report = bench_typing_clients(args.files[0], settings.model_url, clients=args.clients, region=args.region,
                                              settings=settings, max_tokens=args.max_tokens or 24,
                                              interval_ms=args.interval_ms, progress=say)
                print(f"typing {report['file']}: {report['clients']} clients x {report['keystrokes']} keystrokes "
                      f"against {report['model_url']}")
                for r in report["per_client"]:
                    print(f"  client {r['client']}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
                          f"identical to local {r.get('identical_to_local', '-')}")
                print(f"all: p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms, identical to local "
                      f"{report.get('identical_to_local', '-')}, errors {len(report['errors'])}")
                if args.json:
                    Path(args.json).write_text(json.dumps(report, indent=2))
                return 0
            if "llama-server" in modes and not args.llama_server:
                modes.remove("llama-server")
            report = bench_typing(
                args.files[0], region=args.region, modes=modes, llama_server=args.llama_server, settings=settings,
                max_tokens=args.max_tokens or 24, interval_ms=args.interval_ms, progress=say,
            )
            print(f"typing {report['file']}: {report['keystrokes']} keystrokes every {report['interval_ms']:.0f} ms")
            print(f"{'mode':<18}{'p50 ms':>9}{'p95 ms':>9}{'mean':>9}{'prompt tok':>11}{'hits':>6}{'match':>7}"
                  f"{'partial':>8}{'x p50':>9}")
            for mode, r in report["modes"].items():
                ratio = report.get("ratios_vs_steercode", {}).get(mode, "")
                print(f"{mode:<18}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['mean_ms']:>9}{r['prompt_tokens_per_request']:>11}"
                      f"{r['cache_hits']:>6}{r['match_rate']:>7}{r['partial_match_rate']:>8}{ratio!s:>9}")
        else:
            report = bench_decode(args.files, sites=args.sites, seed=args.seed, settings=settings,
                                  related=_related_texts(args.related), progress=say)
            for mode, r in report["modes"].items():
                by = ", ".join(f"{k} {v}" for k, v in r["accepted_by_source"].items())
                print(f"drafting {mode:<4} {r['tokens_per_s']:>8} tok/s  acceptance {r['draft_acceptance']}"
                      + (f"  (accepted: {by})" if by else ""))
            print(f"speedup {report['speedup']}x, identical outputs: {str(report['identical_outputs']).lower()}, "
                  f"decode-loop overhead over raw eval: {report['loop_overhead']}")
    except (OSError, ValueError) as exc:
        print(f"steercode: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=2))
        if report.get("_trace"):
            Path(args.json).with_suffix(".trace.json").write_text(json.dumps(report["_trace"], indent=1))
    return 0


# ---------------------------------------------------------------------------------------------
# install-servers


def cmd_install_servers(args: argparse.Namespace) -> int:
    """Install the language servers the LSP-backed monitors use (TypeScript/JavaScript) with npm."""
    import shutil
    import subprocess

    from monitors.languages import TS_PACKAGES, server_status, ts_install_dir

    npm = shutil.which("npm")
    if not npm:
        print("steercode: npm is not installed; TypeScript/JavaScript monitors stay off", file=sys.stderr)
        return 1
    target = ts_install_dir()
    target.mkdir(parents=True, exist_ok=True)
    if server_status().get("typescript") == "ok" and not args.force:
        print(f"typescript-language-server already installed in {target}")
        return 0
    cmd = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", *TS_PACKAGES]
    print(" ".join(cmd))
    p = subprocess.run(cmd, check=False)
    if p.returncode != 0:
        print("steercode: npm install failed", file=sys.stderr)
        return p.returncode
    print(f"installed {', '.join(TS_PACKAGES)} into {target}")
    return 0


# ---------------------------------------------------------------------------------------------
# doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    import platform

    problems: list[str] = []

    def row(name: str, value: Any) -> None:
        print(f"  {name:<22} {value}")

    print(f"steercode {__version__}")
    row("python", f"{platform.python_version()} ({sys.executable})")
    from importlib import metadata

    for dist in ("llama-cpp-python", "pygls", "lsprotocol", "jedi", "multilspy", "tree-sitter", "numpy"):
        try:
            row(dist, metadata.version(dist))
        except metadata.PackageNotFoundError:
            row(dist, "MISSING")
            problems.append(f"{dist} is not installed")
    try:
        from completion.backend import llama_build_info, physical_cores

        info = llama_build_info()
        row("llama.cpp build", info["system_info"][:160])
        row("cores", f"{physical_cores()} physical, {os.cpu_count()} logical")
    except Exception as exc:
        problems.append(f"llama-cpp-python does not load: {exc}")
    from monitors.syntax import available_grammars

    for key, state in available_grammars().items():
        row(f"tree-sitter {key}", state)
        if state != "ok":
            problems.append(f"tree-sitter grammar {key}: {state}")
    from completion.models import cache_dir
    from monitors.languages import server_status

    row("cache dir", cache_dir())
    for lang, state in server_status().items():
        if lang in ("typescript", "javascript"):
            row(f"monitor server {lang}", state)
    settings = _settings_from_args(args)
    from completion.engine import CompletionRequest, Engine, ModelLoadError, ModelServerError

    if settings.model_url:
        _doctor_server(settings, row, problems)
    engine = Engine(settings)
    try:
        t0 = time.perf_counter()
        engine.load()
        d = engine.describe()
        row("model", d["path"])
        row("model size", f"{d['size_bytes'] / 1e6:.1f} MB, {d['n_params'] / 1e6:.0f}M params, {d['description']}")
        row("vocabulary", f"{d['n_vocab']} tokens, FIM template: {d['template']}")
        head = d.get("head", {})
        if head.get("vocabulary") == "code":
            row("output head", f"code: {d['n_vocab']} of {head['n_original']} tokens ({head['keep_origin']}), {head['file']}")
        else:
            row("output head", f"full{': ' + head['note'] if head.get('note') else ''}")
        row("context", f"{d['n_ctx']} tokens (trained {d['n_ctx_train']}), sliding window {d['n_swa']}")
        if not settings.model_url:
            row("threads", f"{d['threads']} decode / {d['threads_batch']} prompt")
            row("batch invariant", "yes (exact drafting)" if d["batch_invariant"] else "NO: llamafile build, drafting off")
        if not d["batch_invariant"] and not settings.model_url:
            problems.append("llama-cpp-python was built with llamafile: reinstall with CMAKE_ARGS=-DGGML_LLAMAFILE=OFF (make setup does)")
        row("load time", f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        if not args.no_complete:
            text = "def add(a, b):\n    return "
            comp = engine.complete(CompletionRequest(text=text, offset=len(text), language="python"))
            row("test completion", f"{comp.insert_text!r} in {comp.stats['total_ms']:.0f} ms")
            if not comp.insert_text:
                problems.append("the test completion came back empty")
    except (ModelLoadError, ModelServerError) as exc:
        row("model", f"FAILED: {exc}")
        problems.append(str(exc))
    finally:
        engine.close()
    if problems:
        print("problems:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("no problems found")
    return 0


def _doctor_server(settings, row, problems: list[str]) -> None:
    """Team mode: is the model server reachable, what does it run, with what context and FIM tokens."""
    from completion.backend import ModelLoadError
    from completion.models import resolve_model_path
    from completion.remote_backend import ModelServerError, server_report

    row("model server", settings.model_url)
    try:
        vocab = resolve_model_path(settings.model_path)
        info = server_report(settings.model_url, settings.api_key, str(vocab), settings.server_connect_timeout_ms / 1000)
    except (ModelServerError, ModelLoadError) as exc:
        row("server", f"FAILED: {exc}")
        problems.append(str(exc))
        return
    row("server reachable", f"yes ({info.get('build') or 'llama-server'})")
    row("server model", f"{info.get('model_path')} ({(info.get('n_params') or 0) / 1e6:.0f}M params)")
    row("server context", f"{info.get('n_ctx_slot')} tokens per slot, {info.get('slots')} slots (trained {info.get('n_ctx_train')})")
    row("server vocabulary", f"{info.get('n_vocab')} tokens, the same as {vocab.name}")
    fim = info.get("fim") or {}
    row("server FIM tokens", ", ".join(f"{k}={v}" for k, v in fim.items() if v) or "none (prefix-only prompts)")


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steercode", description="Local AI code completion steered by static analysis.")
    p.add_argument("--version", action="version", version=f"steercode {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the LSP server (stdio by default)")
    s.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (loopback only unless --allow-remote)")
    s.add_argument("--allow-remote", action="store_true", help="allow --tcp on a non-loopback address")
    s.add_argument("--log-file", help="write the server log here instead of stderr")
    s.add_argument("--log-level", default="info", help="debug, info, warning, error (default: info)")
    _add_model_args(s)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("complete", help="one completion at a cursor in a file")
    c.add_argument("file")
    c.add_argument("--line", type=int, required=True, help="0-based line")
    c.add_argument("--character", type=int, required=True, help="0-based column in code points")
    c.add_argument("--language", help="language id (default: from the file name)")
    c.add_argument("--json", action="store_true", help="print JSON with the range and timings")
    c.add_argument("-v", "--verbose", action="store_true", help="print timings to stderr")
    c.add_argument("--repeat", type=int, default=1, help="run the same completion N times (later runs are warm)")
    c.add_argument("--related", nargs="+", metavar="FILE", default=None,
                   help="other files as if open in the editor (the drafter copies from them)")
    c.add_argument("--log-level", default="warning")
    _add_model_args(c)
    c.set_defaults(func=cmd_complete)

    j = sub.add_parser("stdio", help="JSON-lines requests on stdin, responses on stdout")
    j.add_argument("--log-level", default="warning")
    _add_model_args(j)
    j.set_defaults(func=cmd_stdio)

    e = sub.add_parser("eval", help="measure steered decoding: members / calls / names on real code, "
                                     "infill on HumanEval")
    e.add_argument("task", choices=["members", "calls", "names", "infill"])
    e.add_argument("paths", nargs="*", help="Python files or directories (infill: the corpus for the "
                                               "repetition rate at blank lines of real files; optional)")
    e.add_argument("--sites", type=int, default=200, help="sites to sample (infill: corpus sites)")
    e.add_argument("--single", type=int, default=300, help="infill: single-line tasks")
    e.add_argument("--multi", type=int, default=150, help="infill: multi-line tasks")
    e.add_argument("--modes", help="infill: comma-separated modes (default: all of plain, monitors, syntax, "
                                   "repetition, all)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--details", metavar="OUT", help="write every site's completions and verdicts (JSON)")
    e.add_argument("--json", metavar="OUT", help="write the report here")
    e.add_argument("--log-level", default="warning")
    _add_model_args(e)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="measure keystroke latency against peers, or decoding speed with drafts")
    b.add_argument("task", choices=["typing", "decode"])
    b.add_argument("files", nargs="+")
    b.add_argument("--region", help="typing: A:B, 1-based lines to type back (default: ~80 characters mid-file)")
    b.add_argument("--modes", help="typing: comma-separated modes (default: all)")
    b.add_argument("--llama-server", help="typing: a llama-server binary to compare against")
    b.add_argument("--interval-ms", type=float, default=150.0, help="typing: time between keystrokes")
    b.add_argument("--clients", type=int, default=4, help="typing with --model-url: concurrent editors")
    b.add_argument("--sites", type=int, default=20, help="decode: sites to sample")
    b.add_argument("--related", nargs="+", metavar="FILE", default=None,
                   help="decode: other files as if open in the editor (the drafter copies from them)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", metavar="OUT")
    b.add_argument("--log-level", default="warning")
    _add_model_args(b)
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("install-servers", help="install the language servers used by the TypeScript/JavaScript monitors")
    i.add_argument("--force", action="store_true")
    i.set_defaults(func=cmd_install_servers)

    d = sub.add_parser("doctor", help="check the installation and the model")
    d.add_argument("--no-complete", action="store_true", help="do not run a test completion")
    d.add_argument("--log-level", default="error")
    _add_model_args(d)
    d.set_defaults(func=cmd_doctor)
    return p


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _handle_termination() -> None:
    """SIGTERM (an editor stopping its server) and SIGHUP (the terminal closed) end the process
    through the normal shutdown, as the end of input does: killed by the default action, it
    left the analysis worker and its language servers running."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:  # an ignored one stays ignored (`nohup`)
                signal.signal(sig, _exit_on_signal)
        except ValueError:  # not the main thread (main() called from a test's thread)
            return


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _handle_termination()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
