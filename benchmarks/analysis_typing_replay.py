"""jedi's time per trigger while a user types, without a model.

For sites sampled from the members eval's files of 2,000+ lines (argparse.py,
logging/__init__.py; attribute accesses ``expr.name``, seed 0), the line is typed again from its
indentation to the dot, one character every ``--interval-ms`` (default 100), into the file with
the rest of that line removed (as the eval cuts it). Every keystroke goes through the monitors
as a completion request would (``MonitorSuite.sessions``: prefetches, the names and calls
monitors' analyses); at the dot the members monitor is asked about a name after it, and the
time until it answers is the trigger's wall time. The worker's own time for the analyses of
those triggers (no queueing) is reported too. Each site's first keystroke is the first request
at that place in the file (a jump there); the triggers come after it, as in an editor.

    python benchmarks/analysis_typing_replay.py [--sites N] [--interval-ms MS] [STDLIB_DIR]

Compare commits in one session (the machine is shared): check one out, run, switch.
"""

from __future__ import annotations

import argparse
import random
import sys
import sysconfig
import time
from pathlib import Path

from benchmarks.analysis import trigger_job_ms
from benchmarks.evaluation import member_sites
from benchmarks.member_analysis_replay import _pct  # the same percentiles as the other replay
from monitors.base import MonitorContext, Pending
from monitors.suite import MonitorSuite
from monitors.vocabulary import Vocabulary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stdlib", nargs="?", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--sites", type=int, default=120)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    std = Path(args.stdlib)
    files = [(str(p), p.read_text(encoding="utf-8")) for p in (std / "argparse.py", std / "logging" / "__init__.py")]
    sites = [s for path, text in files for s in member_sites(path, text)]
    chosen = random.Random(args.seed).sample(sites, min(args.sites, len(sites)))
    chosen.sort(key=lambda s: (s.path, s.offset))
    vocab = Vocabulary([b"<eos>", b"x"], control=[0])
    suite = MonitorSuite(["members", "calls", "imports", "names"])
    r = suite.runner
    walls: list[float] = []
    undecided = 0
    try:
        suite.warm_up()
        while suite.warm_state != "warm":
            time.sleep(0.05)
        for s in chosen:
            doc = s.document
            line_start = doc.rfind("\n", 0, s.offset) + 1
            start = line_start + len(doc[line_start:s.offset]) - len(doc[line_start:s.offset].lstrip(" \t"))
            rest = doc[s.offset :]
            members = None
            for k in range(start, s.offset + 1):
                text = doc[:k] + rest
                ctx = MonitorContext(text=text, offset=k, cursor=k, language="python", path=s.path, vocab=vocab)
                t0 = time.perf_counter()
                sessions = suite.sessions(ctx)
                if k == s.offset:
                    members = next((x for x in sessions if x.name == "members"), None)
                    break
                time.sleep(max(0.0, args.interval_ms / 1000 - (time.perf_counter() - t0)))
            if members is None:
                continue
            verdict = members.check("", 1, "x")
            while isinstance(verdict, Pending):
                verdict.wait()
                verdict = members.check("", 1, "x")
            walls.append((time.perf_counter() - t0) * 1000)
            undecided += members.stats.timeouts > 0
            time.sleep(args.interval_ms / 1000)
        jobs = trigger_job_ms(r, min_lines=2000)
        print(f"{len(walls)} member triggers typed at {args.interval_ms:.0f} ms a key in files of 2,000+ lines: "
              f"wall p50 {_pct(walls, 0.5)} ms, p95 {_pct(walls, 0.95)} ms, max {_pct(walls, 1.0)} ms "
              f"({undecided} past the monitors' budget); worker time of every analysis job there "
              f"({len(jobs)}): p50 {_pct(jobs, 0.5)} ms, p95 {_pct(jobs, 0.95)} ms")
        print("gc:", r.call(("gc-stats",), timeout=30))
    finally:
        suite.close()


if __name__ == "__main__":
    sys.exit(main())
