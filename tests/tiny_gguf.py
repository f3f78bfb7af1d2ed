"""Build tiny random-weight llama-architecture GGUF models with chosen special tokens.

Used to exercise the FIM template path with a real llama.cpp model: the weights are random (the
output is noise), but tokenization, special-token ids, prompt layout and the decode loop are all
real. A byte-level BPE (GPT-2 style) vocabulary: the 256 byte tokens, a few merges, then the
special tokens given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=False))


MERGES = [("d", "e"), ("de", "f"), ("Ġ", "f"), ("r", "e"), ("re", "t"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ")]


#: with ``pair_merges``: every pair of lowercase letters is a merge (and a token), so the
#: vocabulary is large enough to trim (tests/test_vocab_head.py)
PAIR_MERGES = [(a, b) for a in "abcdefghijklmnopqrstuvwxyz" for b in "abcdefghijklmnopqrstuvwxyz"]


def build_tiny_gguf(path: str | Path, special: list[str], *, seed: int = 0, n_embd: int = 64, n_layer: int = 2,
                    pair_merges: bool = False) -> dict[str, int]:
    """Write the model; returns special token text -> id."""
    import gguf

    b2u = _bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    merges = MERGES + ([m for m in PAIR_MERGES if m not in MERGES and "".join(m) not in {"".join(x) for x in MERGES}]
                       if pair_merges else [])
    for a, b in merges:
        tokens.append(a + b)
        types.append(gguf.TokenType.NORMAL)
    ids = {}
    for s in ["<|endoftext|>", *special]:
        if s in ids:
            continue
        ids[s] = len(tokens)
        tokens.append(s)
        types.append(gguf.TokenType.CONTROL)
    n_vocab = len(tokens)
    n_head = 4
    n_ff = 2 * n_embd
    rng = np.random.default_rng(seed)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-fim-test")
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)

    def t(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    t("token_embd.weight", n_vocab, n_embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    t("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        t(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_k.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_v.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return ids
