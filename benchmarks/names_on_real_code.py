"""The names monitor on real code, without a model: false rejections and misspelt names caught.

For up to 150 indented code lines per module (seed 0) of 12 standard-library modules, the line is
removed from the file, the cursor put at its indentation, and the original text fed to a names
monitor session three characters at a time (then a newline): any rejection is a false one. Then
the same line with one name use misspelt (``zq`` appended) is fed again: a rejection is a catch.

    python benchmarks/names_on_real_code.py
"""

from __future__ import annotations

import importlib
import keyword
import random
import re

from monitors.base import AnalysisRunner, MonitorContext
from monitors.python.names import NamesMonitor
from monitors.vocabulary import Vocabulary

MODULES = ["json.encoder", "argparse", "logging", "collections", "typing", "subprocess", "dataclasses", "pathlib",
           "inspect", "ast", "enum", "functools"]
_USE = re.compile(r"(?<![.\w'\"])[A-Za-z_]\w*")


def feed(session, line: str, size: int = 3) -> bool:
    """Does the session accept ``line`` (then a newline), given ``size`` characters at a time?"""
    gen = ""
    for piece in [line[i : i + size] for i in range(0, len(line), size)] + ["\n"]:
        if not session.check(gen, 1, piece):
            return False
        gen += piece
    return True


def sampled_lines(module: str, per_module: int, rnd: random.Random):
    """(document without the line, cursor, line) for indented code lines of ``module``."""
    text = open(importlib.import_module(module).__file__).read()
    starts, pos = [], 0
    for ln in text.split("\n"):
        ind = len(ln) - len(ln.lstrip(" "))
        if ln.strip() and ind >= 4 and not ln.strip().startswith(("#", '"', "'")):
            starts.append((pos + ind, pos + len(ln)))
        pos += len(ln) + 1
    for a, b in rnd.sample(starts, min(per_module, len(starts))):
        yield text[:a] + text[b:], a, text[a:b]


def misspelt(line: str, rnd: random.Random) -> str | None:
    """``line`` with ``zq`` appended to one name it uses (None: it uses none outside strings)."""
    uses = [u for u in _USE.finditer(line) if u.start() > 0 and not keyword.iskeyword(u.group())
            and not re.match(r"\s*=(?!=)", line[u.end():]) and "#" not in line[: u.start()]
            and line.count('"', 0, u.start()) % 2 == 0 and line.count("'", 0, u.start()) % 2 == 0]
    if not uses:
        return None
    u = rnd.choice(uses)
    return line[: u.end()] + "zq" + line[u.end() :]


def measure(modules=MODULES, per_module: int = 150, seed: int = 0) -> dict:
    """Lines fed, the original lines rejected (false rejections), misspelt lines fed and caught."""
    vocab = Vocabulary([b"<eos>", b"x"], control=[0])
    runner = AnalysisRunner(process=False)
    monitor = NamesMonitor(runner, 20000)
    out = {"lines": 0, "rejected": [], "mutated": 0, "caught": 0}
    try:
        for name in modules:
            rnd = random.Random(seed)
            for doc, cursor, line in sampled_lines(name, per_module, rnd):
                ctx = MonitorContext(text=doc, offset=cursor, cursor=cursor, language="python", path=None, vocab=vocab)
                if monitor.start(ctx) is None:
                    continue  # the monitor declines (inside a string, say)
                out["lines"] += 1
                if not feed(monitor.start(ctx), line):
                    out["rejected"].append(line)
                bad = misspelt(line, rnd)
                if bad is not None:
                    out["mutated"] += 1
                    out["caught"] += not feed(monitor.start(ctx), bad)
    finally:
        runner.shutdown()
    return out


def main() -> None:
    r = measure()
    print(f"original lines: {r['lines']}, rejected: {len(r['rejected'])}")
    print(f"lines with a misspelt name: {r['mutated']}, caught: {r['caught']} ({r['caught'] / max(r['mutated'], 1):.1%})")


if __name__ == "__main__":
    main()
