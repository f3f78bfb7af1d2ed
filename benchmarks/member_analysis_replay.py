"""The members eval's analyses without a model: jedi's time per member analysis in the worker.

The same 262 sites (seed 0) as ``steercode eval members`` over json/, argparse.py and
logging/__init__.py. Per site, in order, as the eval does: the truth analysis (in a worker of its
own, as the eval runs it), a pause (the plain completion), the member analysis of the site's
document (timed), a pause (the monitored one).
Prints the worker's own time (no queueing) and the wall time per member analysis in the files of
2,000+ lines. Compare commits in one session (the machine is shared): check one out, run, switch.

    python benchmarks/member_analysis_replay.py [STDLIB_DIR]
"""

from __future__ import annotations

import random
import sys
import sysconfig
import time
from pathlib import Path

from benchmarks.analysis import TruthWorker, trigger_job_ms
from benchmarks.evaluation import member_sites
from monitors.suite import MonitorSuite


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 1) if v else 0.0


def main() -> None:
    std = Path(sys.argv[1] if len(sys.argv) > 1 else sysconfig.get_paths()["stdlib"])
    files = []
    for p in (std / "json", std / "argparse.py", std / "logging" / "__init__.py"):
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            files.append((str(f), f.read_text(encoding="utf-8")))
    sites = [s for path, text in files for s in member_sites(path, text)]
    chosen = random.Random(0).sample(sites, min(262, len(sites)))
    chosen.sort(key=lambda s: (s.path, s.offset))
    suite = MonitorSuite(["members"])  # its worker, warmed up as the engine does after loading
    r = suite.runner
    truth = TruthWorker()
    try:
        suite.warm_up()
        while getattr(suite, "warm_state", "warm") != "warm":
            time.sleep(0.05)
        r.submit(("warm-up",), ("warm-up",)).result(timeout=300)  # commits before warm_state: one job
        walls: list[float] = []
        for i, s in enumerate(chosen):
            truth.truth("members", s.text[: s.offset], s.text[s.offset :], s.path, timeout=300)
            time.sleep(0.3)
            doc = s.document
            nl = doc.find("\n", s.offset)
            after = "\n" + (doc[nl + 1 :] if nl >= 0 else "")
            t0 = time.perf_counter()
            r.submit(("replay", i), ("py-members", doc[: s.offset], after, s.path)).result(timeout=300)
            if doc.count("\n") >= 2000:
                walls.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
        jobs = trigger_job_ms(r, min_lines=2000)
        print(f"member analyses in files of 2,000+ lines: {len(jobs)}; worker time p50 {_pct(jobs, 0.5)} ms, "
              f"p95 {_pct(jobs, 0.95)} ms; wall p50 {_pct(walls, 0.5)} ms, p95 {_pct(walls, 0.95)} ms")
    finally:
        suite.close()
        truth.close()


if __name__ == "__main__":
    main()
