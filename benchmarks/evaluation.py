"""``steercode eval``: the paper's next-identifier experiment (members) and a calls variant.

members: sites are attribute accesses ``expr.name`` in the given Python files (tree-sitter; not
in comments, strings or import lines), sampled deterministically with the seed. For each site the
document is the file with the rest of that line removed and the cursor right after the dot; the
completion is the rest of the line, once plain (no monitors) and once monitored, same model,
greedy, single-line. The truth set is what jedi reports at that point in the *original* file;
sites where jedi reports nothing are skipped and counted, and so are sites where the truth does
not admit the original code (``truth_misses_original``: it is right by definition, so jedi's
truth is wrong there, e.g. an attribute set on the class from outside it).

names: sites are names passed as arguments (``f(a, key=b)``); the document keeps the line up to
the name; the truth is the names jedi finds in scope there in the original file. A completion is
valid when the name it starts with is one of them; one that starts with no name (a string, a
``)``, a keyword argument's ``key=``) uses none and is valid too.

calls: sites are calls ``f(args)`` on one line; the document keeps the line up to ``(``; the
truth is jedi's signatures there; a completion is valid when the arguments it generates (up to the
matching ``)``) fit one of them.

Timing follows the editor: the dot is the keystroke being answered. Before each timed request
the same mode answers the three keystrokes before it (untimed, one token each), as an editor
would have asked. The first of them only moves the KV cache to this site's document (seconds:
much of the prompt changes); the other two are as quick as typing, with no pause between
keystrokes. So both modes start from a warm KV cache, and the monitored mode from whatever it
could prepare during those two short requests (it predicts the member analysis for the name
before the cursor, also while it is half-typed) -- less head start than a typist's pauses give.
Calls: the keystroke right before is the document without the "(".
"""

from __future__ import annotations

import json
import logging
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from completion.engine import CompletionRequest, Engine
from monitors.syntax import parse

from .analysis import TruthWorker, trigger_job_ms

log = logging.getLogger(__name__)

__all__ = ["Site", "call_sites", "member_sites", "name_sites", "run_eval"]

_WS = re.compile(r"\s+")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Site:
    path: str
    text: str  # the original file
    offset: int  # where the completion starts (after the dot / the open paren)
    line_end: int
    truth_name: str  # the original identifier (members) or argument text (calls)

    @property
    def rest_of_line(self) -> str:
        return self.text[self.offset : self.line_end]

    @property
    def document(self) -> str:
        return self.text[: self.offset] + self.text[self.line_end :]

    def line_col(self) -> tuple[int, int]:
        line = self.text.count("\n", 0, self.offset)
        return line, self.offset - (self.text.rfind("\n", 0, self.offset) + 1)


def _inside(node, types: set[str]) -> bool:
    n = node.parent
    while n is not None:
        if n.type in types:
            return True
        n = n.parent
    return False


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _byte_to_char(text: str, data: bytes) -> Callable[[int], int]:
    if len(data) == len(text):
        return lambda b: b
    cache: dict[int, int] = {}

    def conv(b: int) -> int:
        if b not in cache:
            cache[b] = len(data[:b].decode("utf-8", "ignore"))
        return cache[b]

    return conv


def _nodes(text: str, node_type: str):
    """The tree-sitter nodes of ``node_type`` in Python ``text``, with a byte -> code point
    converter for their offsets (no nodes when the text does not parse)."""
    parsed = parse(text, "python", incremental=False)
    if parsed is None:
        return [], None
    tree, data = parsed
    return [n for n in _walk(tree.root_node) if n.type == node_type], _byte_to_char(text, data)


def member_sites(path: str, text: str) -> list[Site]:
    nodes, conv = _nodes(text, "attribute")
    sites = []
    for n in nodes:
        attr = n.child_by_field_name("attribute")
        if attr is None or attr.type != "identifier":
            continue
        if _inside(n, {"import_statement", "import_from_statement", "string", "comment", "future_import_statement"}):
            continue
        start = conv(attr.start_byte)
        if start == 0 or text[start - 1] != ".":
            continue  # "obj . name" with spaces: not what the monitors handle
        nl = text.find("\n", start)
        line_end = len(text) if nl < 0 else nl
        sites.append(Site(path, text, start, line_end, text[start : conv(attr.end_byte)]))
    return sites


def name_sites(path: str, text: str) -> list[Site]:
    """Names passed as arguments (``f(a, key=b)``: ``a`` and ``b``), the cursor at the name."""
    nodes, conv = _nodes(text, "identifier")
    sites = []
    for n in nodes:
        parent = n.parent
        if parent is None:
            continue
        if parent.type == "keyword_argument":
            if parent.child_by_field_name("value") != n or parent.parent is None or parent.parent.type != "argument_list":
                continue
        elif parent.type != "argument_list":
            continue
        if _inside(n, {"string", "comment", "decorator"}):
            continue
        start = conv(n.start_byte)
        nl = text.find("\n", start)
        line_end = len(text) if nl < 0 else nl
        sites.append(Site(path, text, start, line_end, text[start : conv(n.end_byte)]))
    return sites


def call_sites(path: str, text: str) -> list[Site]:
    nodes, conv = _nodes(text, "call")
    sites = []
    for n in nodes:
        args = n.child_by_field_name("arguments")
        if args is None or args.type != "argument_list" or args.start_point[0] != args.end_point[0]:
            continue
        if len(args.children) <= 2 or _inside(n, {"string", "comment", "decorator"}):
            continue
        open_paren = conv(args.start_byte) + 1
        nl = text.find("\n", open_paren)
        line_end = len(text) if nl < 0 else nl
        sites.append(Site(path, text, open_paren, line_end, text[open_paren : conv(args.end_byte) - 1]))
    return sites


#: task -> where its sites are (its truth: ``TruthWorker.truth`` for the task)
_TASKS: dict[str, Callable[[str, str], list[Site]]] = {
    "members": member_sites,
    "calls": call_sites,
    "names": name_sites,
}


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _errors(text: str) -> int:
    parsed = parse(text, "python", incremental=False)  # the verdict must not depend on what was parsed before
    if parsed is None:
        return 0
    tree, _ = parsed
    return sum(1 for n in _walk(tree.root_node) if n.type == "ERROR" or n.is_missing)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))
    return round(v[k], 2)


def _call_args_of(completion: str) -> tuple[str, bool]:
    """The argument text a completion gives a call opened just before it, and whether it closes."""
    depth = 0
    quote = None
    i = 0
    while i < len(completion):
        ch = completion[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return completion[:i], True
            depth -= 1
        i += 1
    return completion, False


def _call_fits(truth, args_text: str, closed: bool) -> bool:
    """Do the arguments ``args_text`` (the whole call if ``closed``) fit one of the signatures?"""
    from monitors.python.calls import call_ok, parse_args

    args = parse_args(args_text)
    return any(call_ok(args, closed, sig) for sig in truth)


def _truth_admits_original(task: str, truth, site: Site) -> bool:
    """Does jedi's truth admit the code the site was cut from?"""
    return _call_fits(truth, site.truth_name, True) if task == "calls" else site.truth_name in truth


def run_eval(
    task: str,
    paths: Sequence[str],
    *,
    sites: int = 200,
    seed: int = 0,
    engine: Engine,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the experiment; returns the JSON-able report."""
    progress = progress or (lambda msg: None)
    files: list[tuple[str, str]] = []
    for p in paths:
        pp = Path(p)
        candidates = sorted(pp.rglob("*.py")) if pp.is_dir() else [pp]
        for f in candidates:
            try:
                files.append((str(f), f.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("skipping %s: %s", f, exc)
    finder = _TASKS[task]
    all_sites = [s for path, text in files for s in finder(path, text)]
    rnd = random.Random(seed)
    chosen = rnd.sample(all_sites, min(sites, len(all_sites)))
    chosen.sort(key=lambda s: (s.path, s.offset))
    engine.wait_warm()  # as a server is a while after start
    suite = engine.monitor_suite()
    runner = suite.runner if suite is not None else None  # the monitors' worker, measured below
    # the truth comes from a process of the eval's own, never the monitors' worker: jedi with
    # call-site inference builds far more than the monitors' analyses do, and there its garbage
    # and caches would slow the analyses being measured (an editor's worker never runs it)
    truth_worker = TruthWorker(root=engine.root)
    if runner is not None:
        runner.call(("ping",), timeout=120)  # the worker is up
    truth_worker.ping(timeout=120)

    modes = {"plain": [], "monitored": []}
    overheads: list[float] = []
    analysis_ms: list[float] = []
    skipped = 0
    misses_original = 0
    base_opts = {"line_mode": "single", "max_tokens": 32, "time_budget_ms": 0}  # whole lines, however long they take
    errors_cache: dict[str, int] = {}
    try:
        for k, site in enumerate(chosen):
            # truth: jedi, with its default settings, at the site in the *original* file
            truth = truth_worker.truth(task, site.text[: site.offset], site.text[site.offset :], site.path, timeout=300)
            if not truth:
                skipped += 1
                continue
            if not _truth_admits_original(task, truth, site):
                # jedi's truth is wrong here (the original code is right by definition): a verdict
                # against it would mean nothing
                skipped += 1
                misses_original += 1
                continue
            doc = site.document
            base_req = dict(text=doc, offset=site.offset, language="python", path=site.path)
            # the three keystrokes before the site's: the first only moves the model's context to
            # this document (a new site re-evaluates much of the prompt: seconds, nothing like
            # typing); the other two are as quick as typing, and their requests start the analyses
            # an editor would have started then (``se┃``, ``sel┃``, ``self┃``: monitors prefetch
            # ``self.``), with no pause between keystrokes
            prevs = [
                dict(text=doc[: site.offset - k] + doc[site.offset :], offset=site.offset - k, language="python", path=site.path)
                for k in (3, 2, 1)
            ]
            if site.path not in errors_cache:
                errors_cache[site.path] = _errors(site.text)
            for mode in ("plain", "monitored"):
                opts = dict(base_opts)
                if mode == "plain":
                    opts["monitors"] = []
                for prev in prevs:
                    engine.complete(CompletionRequest(**prev, options={**opts, "max_tokens": 1}))
                t0 = time.perf_counter()
                comp = engine.complete(CompletionRequest(**base_req, options=opts))
                ms = (time.perf_counter() - t0) * 1000
                text = comp.insert_text
                if task == "members":
                    m = _IDENT.match(text)
                    ident = m.group(0) if m else ""
                    valid = ident in truth
                    exact = ident == site.truth_name
                elif task == "names":
                    m = _IDENT.match(text.lstrip())
                    ident = m.group(0) if m else ""
                    kwarg = bool(m) and re.match(r"\s*=(?!=)", text.lstrip()[m.end() :]) is not None
                    valid = not ident or kwarg or ident in truth  # a string, a ")" or `key=`: no name used
                    exact = ident == site.truth_name
                else:
                    args_text, closed = _call_args_of(text)
                    valid = _call_fits(truth, args_text, closed)
                    exact = _norm(args_text) == _norm(site.truth_name) and closed
                completed = doc[: site.offset] + text + doc[site.offset :]
                rec = {
                    "valid": valid,
                    "exact": exact,
                    "line_exact": _norm(text) == _norm(site.rest_of_line),
                    "parse": _errors(completed) <= errors_cache[site.path],
                    "ms": ms,
                    "completion": text,
                    "context": doc[max(0, site.offset - 60) : site.offset],
                    "truth": site.truth_name,
                    "stop": comp.stats.get("stop_reason"),
                    "timing": {k: comp.stats.get(k) for k in ("prompt_ms", "decode_ms", "constraint_ms", "generated_tokens",
                                                            "prompt_eval_tokens", "eval_calls", "pending_wait_ms")},
                }
                modes[mode].append(rec)
                if mode == "monitored":
                    st = comp.stats
                    if st.get("constrained_tokens"):
                        overheads.append(st["monitor_overhead_ms"] / st["constrained_tokens"])
                    for mon in st.get("monitors", {}).values():
                        analysis_ms.extend(mon.get("analysis_ms", []))
                    rec["timeouts"] = {n: m["timeouts"] for n, m in st.get("monitors", {}).items() if m.get("timeouts")}
            if (k + 1) % 10 == 0:
                progress(f"{k + 1}/{len(chosen)} sites")
    finally:
        truth_worker.close()
    report: dict[str, Any] = {
        "task": task,
        "model": engine.describe().get("description"),
        "sites": len(chosen) - skipped,
        "skipped": skipped,
        "truth_misses_original": misses_original,
        "modes": {},
    }
    for mode, recs in modes.items():
        n = max(len(recs), 1)
        d = {
            "valid_rate": round(sum(r["valid"] for r in recs) / n, 4),
            "exact_rate": round(sum(r["exact"] for r in recs) / n, 4),
            "line_exact_rate": round(sum(r["line_exact"] for r in recs) / n, 4),
            "parse_rate": round(sum(r["parse"] for r in recs) / n, 4),
            "p50_ms": _pct([r["ms"] for r in recs], 0.5),
            "p95_ms": _pct([r["ms"] for r in recs], 0.95),
        }
        if mode == "monitored":
            d["monitor_overhead_ms"] = round(statistics.median(overheads), 4) if overheads else 0.0
        report["modes"][mode] = d
    # the analyses themselves, timed in the worker (no queueing), in files of 2,000+ lines
    jobs = trigger_job_ms(runner, min_lines=2000) if runner is not None else []
    report["analysis"] = {
        "triggers": len(analysis_ms),
        "p50_ms": _pct(analysis_ms, 0.5),
        "p95_ms": _pct(analysis_ms, 0.95),
        "jobs_2000_lines": len(jobs),
        "job_p50_ms": _pct(jobs, 0.5),
        "job_p95_ms": _pct(jobs, 0.95),
    }
    report["_records"] = modes  # not in --json; written by --details
    return report


def format_table(report: dict[str, Any]) -> str:
    names = ["valid_rate", "exact_rate", "line_exact_rate", "parse_rate", "p50_ms", "p95_ms", "monitor_overhead_ms"]
    lines = [f"task {report['task']}: {report['sites']} sites ({report['skipped']} skipped, "
             f"{report.get('truth_misses_original', 0)} of them where jedi's truth rejects the original code), "
             f"model {report['model']}"]
    lines.append(f"{'metric':<22}{'plain':>12}{'monitored':>12}")
    for n in names:
        p = report["modes"]["plain"].get(n, "")
        m = report["modes"]["monitored"].get(n, "")
        lines.append(f"{n:<22}{p!s:>12}{m!s:>12}")
    a = report.get("analysis", {})
    lines.append(f"analysis per trigger: p50 {a.get('p50_ms')} ms, p95 {a.get('p95_ms')} ms over {a.get('triggers')} triggers")
    lines.append(f"analysis jobs in files of 2,000+ lines (worker time): p50 {a.get('job_p50_ms')} ms, "
                 f"p95 {a.get('job_p95_ms')} ms over {a.get('jobs_2000_lines')} jobs")
    return "\n".join(lines)


def dump(report: dict[str, Any], path: str) -> None:
    out = {k: v for k, v in report.items() if not k.startswith("_")}
    Path(path).write_text(json.dumps(out, indent=2))
