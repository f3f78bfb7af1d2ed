"""Batch completions through `steercode stdio`: one JSON line per cursor position.

    python examples/batch_complete.py FILE LINE:CHARACTER [LINE:CHARACTER ...]

Prints one line per position: the position, the suggestion, and how long it took. The model
loads once; requests stream through a single `steercode stdio` process.
"""

from __future__ import annotations

import json
import subprocess
import sys


def complete_many(path: str, positions: list[tuple[int, int]], steercode: list[str] | None = None) -> list[dict]:
    cmd = steercode or [sys.executable, "-m", "lsp_server", "stdio"]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin and proc.stdout
        for i, (line, character) in enumerate(positions):
            req = {"id": i, "path": path, "line": line, "character": character, "line_mode": "single"}
            proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.close()
        return [json.loads(line) for line in proc.stdout]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, specs = argv[0], argv[1:]
    positions = []
    for spec in specs:
        line, _, character = spec.partition(":")
        positions.append((int(line), int(character or 0)))
    for resp in complete_many(path, positions):
        pos = positions[resp["id"]]
        if "error" in resp:
            print(f"{pos[0]}:{pos[1]}\terror: {resp['error']['message']}")
        else:
            print(f"{pos[0]}:{pos[1]}\t{resp['completion']!r}\t{resp['stats']['total_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
