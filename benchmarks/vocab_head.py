"""The code-vocabulary head (completion/vocab_head.py): its keep-list, coverage, exactness, speed.

    python -m benchmarks.vocab_head keep-list [--size N] [--write]
        tokenize the local code corpus with the embedded model's vocabulary (once: the counts
        are cached in the cache directory), print the coverage of each keep-set size (in sample,
        and held out: chosen from half the files, measured on the other half), and with
        --write store the keep-list that every machine builds the derived model from
        (completion/data/<vocabulary fingerprint>.keep.gz).
    python -m benchmarks.vocab_head exactness [--sites N] [--tokens T]
        greedy runs of the full model at N places in standard-library files, and how much of
        them the derived model reproduces (``vocab_head.exactness``).
    python -m benchmarks.vocab_head speed [--tokens T] [--repeats R]
        decode tokens/s and prompt tokens/s of the full and the code head, bare backend calls.

Model runs are short on purpose (a few completions); nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

SIZES = (16384, 24576, 32768, 40960, 49152, 65536)


def _source():
    from completion.gguf_file import read_gguf
    from completion.models import embedded_model_path

    path = embedded_model_path()
    return path, read_gguf(path)


def corpus_counts(path: Path, g) -> tuple[np.ndarray, np.ndarray, dict]:
    """(counts of the choosing half, counts of the held-out half, corpus facts), cached."""
    from completion import vocab_head as vh
    from completion.backend import VocabTokenizer
    from completion.models import cache_dir

    fp = vh.vocab_fingerprint(g)
    cache = cache_dir() / "models" / "vocab" / f"{fp[:16]}.counts.npz"
    files = vh.corpus_files()
    facts = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        cached = json.loads(str(z["facts"]))
        if cached == facts:
            return z["a"], z["b"], facts
    tok = VocabTokenizer(path)
    t0 = time.perf_counter()

    def progress(k: int, n: int) -> None:
        print(f"  {k}/{n} files, {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    a, b = vh.count_corpus(tok.tokenize, files, tok.n_vocab, split=vh.held_out, progress=progress)
    tok.close()
    facts["tokenize_s"] = round(time.perf_counter() - t0, 1)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, a=a, b=b, facts=json.dumps({k: facts[k] for k in ("files", "bytes")}))
    return a, b, facts


def cmd_keep_list(args) -> int:
    from completion import vocab_head as vh

    path, g = _source()
    args.size = args.size or vh.DEFAULT_KEEP
    a, b, facts = corpus_counts(path, g)
    req = vh.required_ids(g)
    total = a + b
    print(f"corpus: {facts['files']} files, {facts['bytes'] / 1e6:.1f} MB, {int(total.sum())} tokens, "
          f"{int((total > 0).sum())} distinct; {len(req)} ids always kept")
    print(f"{'size':>7} {'kept':>7} {'coverage':>10} {'held out':>10} {'held out, per 10k outside':>26}")
    for size in sorted({*SIZES, args.size}):
        keep_all = vh.choose_keep(total, req, size)
        keep_a = vh.choose_keep(a, req, size)
        cov = vh.coverage(total, keep_all)
        held = vh.coverage(b, keep_a)
        print(f"{size:>7} {len(keep_all):>7} {cov:>10.4%} {held:>10.4%} {(1 - held) * 1e4:>26.1f}")
    if args.write:
        fp = vh.vocab_fingerprint(g)
        keep = vh.choose_keep(total, req, args.size)
        out = vh.DATA_DIR / f"{fp[:16]}.keep.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        vh.save_keep_list(out, keep, len(total), fp, {
            "size": args.size, "coverage": round(vh.coverage(total, keep), 6),
            "held_out_coverage": round(vh.coverage(b, vh.choose_keep(a, req, args.size)), 6),
            "corpus": "Python stdlib + site-packages .py + TypeScript lib*.d.ts (benchmarks/vocab_head.py)",
            "corpus_files": facts["files"], "model": path.name,
        })
        print(f"wrote {out} ({out.stat().st_size} bytes, {len(keep)} ids)")
    return 0


def _sites(n: int, seed: int, chars: int = 600) -> list[str]:
    """Prompts: the ``chars`` characters before a line start in a random standard-library file."""
    from completion import vocab_head as vh

    files = [p for p in vh.corpus_files() if "/site-packages/" not in str(p) and p.suffix == ".py"]
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        text = rng.choice(files).read_text(encoding="utf-8", errors="replace")
        starts = [i + 1 for i, ch in enumerate(text) if ch == "\n" and chars + 200 < i < len(text) - 200]
        if not starts:
            continue
        cut = rng.choice(starts)
        cut += len(text[cut:]) - len(text[cut:].lstrip(" "))  # after the indentation
        out.append(text[max(0, cut - chars) : cut])
    return out


def _greedy(be, prompt: list[int], n: int) -> tuple[list[int], float]:
    be.reset()
    be.eval_prompt(prompt)
    tok = int(np.argmax(be.tail_logits()))
    out = [tok]
    t0 = time.perf_counter()
    for _ in range(n - 1):
        be.eval([tok])
        tok = int(np.argmax(be.logits(-1)))
        out.append(tok)
    return out, time.perf_counter() - t0


def cmd_exactness(args) -> int:
    from completion import vocab_head as vh
    from completion.backend import BackendConfig, LlamaBackend

    path, _g = _source()
    code = vh.code_model_path(path)
    kept = vh.read_kept_ids(code.path)
    be = LlamaBackend(BackendConfig(str(path), n_ctx=2048))
    runs = []
    for text in _sites(args.sites, args.seed):
        prompt = [be.bos_id, *be.tokenize(text)]
        gen, _ = _greedy(be, prompt, args.tokens)
        runs.append((prompt, gen))
    be.close()
    rep = vh.exactness(runs, kept)
    if args.sizes:  # the same runs against the keep-sets of other sizes (from the cached counts)
        a, b, _ = corpus_counts(path, _g)
        req = vh.required_ids(_g)
        rep["by_size"] = {}
        for size in (int(x) for x in args.sizes.split(",")):
            r = vh.exactness(runs, vh.choose_keep(a + b, req, size))
            rep["by_size"][size] = {k: round(r[k], 4) for k in ("run_rate", "token_rate", "step_rate")}
    if args.check:  # the derived model's own greedy output, compared
        cb = LlamaBackend(BackendConfig(str(code.path), n_ctx=2048, tokenizer_path=str(path)))
        agree = 0
        for (prompt, gen), k in zip(runs, _first_miss(runs, set(kept.tolist())), strict=True):
            if k is None:
                continue
            out, _ = _greedy(cb, cb.token_map.map(prompt), len(gen))
            agree += cb.token_map.to_original(out)[:k] == list(gen[:k])
        cb.close()
        rep["checked_prefixes_equal"] = agree
    print(json.dumps(rep, indent=1))
    return 0


def _first_miss(runs, keep: set[int]):
    for prompt, gen in runs:
        if not all(t in keep for t in prompt):
            yield None
            continue
        yield next((i for i, t in enumerate(gen) if t not in keep), len(gen))


def cmd_speed(args) -> int:
    from completion import vocab_head as vh
    from completion.backend import BackendConfig, LlamaBackend

    path, g = _source()
    args.size = args.size or vh.DEFAULT_KEEP
    if args.size == vh.DEFAULT_KEEP:
        code_path = vh.code_model_path(path).path
    else:  # another size, from the cached corpus counts, into a scratch file
        a, b, _ = corpus_counts(path, g)
        code_path = Path(args.scratch) / f"code-{args.size}.gguf"
        vh.derive_gguf(g, vh.choose_keep(a + b, vh.required_ids(g), args.size), code_path)
    text = _sites(1, args.seed + 1, chars=1200)[0]
    report = {}
    for name, cfg in (("full", BackendConfig(str(path), n_ctx=2048)),
                      ("code", BackendConfig(str(code_path), n_ctx=2048, tokenizer_path=str(path)))):
        be = LlamaBackend(cfg)
        be.warm_up()
        prompt = [be.bos_id, *be.tokenize(text)][:200]
        decode, pre = [], []
        for _ in range(args.repeats):
            be.reset()
            t0 = time.perf_counter()
            be.eval_prompt(prompt)
            pre.append(len(prompt) / (time.perf_counter() - t0))
            _, dt = _greedy(be, prompt, args.tokens)
            decode.append((args.tokens - 1) / dt)
        # one verification batch of 7 rows (a 6-token draft), the cost drafting pays per check
        be.reset()
        be.eval_prompt(prompt)
        t0 = time.perf_counter()
        for _ in range(5):
            be.eval(prompt[1:8], rows="all")
            be.truncate(len(prompt))
        batch_ms = (time.perf_counter() - t0) / 5 * 1000
        report[name] = {"n_vocab": be.n_vocab, "prompt_tokens": len(prompt),
                        "decode_tok_s": round(statistics.median(decode), 1),
                        "prompt_tok_s": round(statistics.median(pre), 1),
                        "batch7_all_rows_ms": round(batch_ms, 2),
                        "threads": be.n_threads}
        be.close()
    report["decode_speedup"] = round(report["code"]["decode_tok_s"] / report["full"]["decode_tok_s"], 3)
    print(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.vocab_head")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep-list")
    k.add_argument("--size", type=int, help="keep-set size (default: vocab_head.DEFAULT_KEEP)")
    k.add_argument("--write", action="store_true")
    k.set_defaults(func=cmd_keep_list)
    e = sub.add_parser("exactness")
    e.add_argument("--sites", type=int, default=8)
    e.add_argument("--tokens", type=int, default=48)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--check", action="store_true", help="also decode with the derived model and compare")
    e.add_argument("--sizes", help="comma-separated keep-set sizes to report too (e.g. 16384,49152)")
    e.set_defaults(func=cmd_exactness)
    s = sub.add_parser("speed")
    s.add_argument("--tokens", type=int, default=64)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, help="keep-set size (default: vocab_head.DEFAULT_KEEP; another one is "
                                               "built into --scratch)")
    s.add_argument("--scratch", default="/tmp")
    s.set_defaults(func=cmd_speed)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
