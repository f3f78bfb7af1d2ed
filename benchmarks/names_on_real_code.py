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
    gen = ""
    for piece in [line[i : i + size] for i in range(0, len(line), size)] + ["\n"]:
        if not session.check(gen, 1, piece):
            return False
        gen += piece
    return True


def main() -> None:
    vocab = Vocabulary([b"<eos>", b"x"], control=[0])
    runner = AnalysisRunner(process=False)
    monitor = NamesMonitor(runner, 20000)
    lines = rejected = mutated = caught = 0
    try:
        for name in MODULES:
            text = open(importlib.import_module(name).__file__).read()
            starts, pos = [], 0
            for ln in text.split("\n"):
                ind = len(ln) - len(ln.lstrip(" "))
                if ln.strip() and ind >= 4 and not ln.strip().startswith(("#", '"', "'")):
                    starts.append((pos + ind, pos + len(ln)))
                pos += len(ln) + 1
            rnd = random.Random(0)
            for a, b in rnd.sample(starts, min(150, len(starts))):
                line, doc = text[a:b], text[:a] + text[b:]
                ctx = MonitorContext(text=doc, offset=a, cursor=a, language="python", path=None, vocab=vocab)
                if monitor.start(ctx) is None:
                    continue
                lines += 1
                rejected += not feed(monitor.start(ctx), line)
                uses = [u for u in _USE.finditer(line) if u.start() > 0 and not keyword.iskeyword(u.group())
                        and not re.match(r"\s*=(?!=)", line[u.end():]) and "#" not in line[: u.start()]
                        and line.count('"', 0, u.start()) % 2 == 0 and line.count("'", 0, u.start()) % 2 == 0]
                if uses:
                    u = rnd.choice(uses)
                    mutated += 1
                    caught += not feed(monitor.start(ctx), line[: u.end()] + "zq" + line[u.end() :])
    finally:
        runner.shutdown()
    print(f"original lines: {lines}, rejected: {rejected}")
    print(f"lines with a misspelt name: {mutated}, caught: {caught} ({caught / max(mutated, 1):.1%})")


if __name__ == "__main__":
    main()
