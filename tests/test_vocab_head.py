"""The code-vocabulary head (completion/vocab_head.py, completion/gguf_file.py).

Fast tests build a tiny random-weight BPE model (tests/tiny_gguf.py with every letter pair as a
merge: ~950 tokens) and trim it; the ones marked ``model`` use the real embedded model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from completion import vocab_head as vh
from completion.gguf_file import GGML_BLOCKS, read_gguf

SPECIAL = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<file_sep>", "<unused0>", "<unused1>"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from tiny_gguf import build_tiny_gguf

    path = tmp_path_factory.mktemp("vocab") / "tiny.gguf"
    build_tiny_gguf(path, SPECIAL, pair_merges=True)
    return path


@pytest.fixture()
def corpus(tmp_path) -> list[Path]:
    files = []
    for i, text in enumerate(["def ret(): return self.value\n", "for item in items:\n    print(item)\n"]):
        p = tmp_path / f"c{i}.py"
        p.write_text(text * 3)
        files.append(p)
    return files


def _tokenizer(path):
    from completion.backend import VocabTokenizer

    return VocabTokenizer(path).tokenize


# ---- the GGUF reader/writer ------------------------------------------------------------------


def test_block_table_matches_the_gguf_package():
    gguf = pytest.importorskip("gguf")
    sizes = {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()}
    for t, blk in GGML_BLOCKS.items():
        assert sizes[t] == blk, t


def test_reader_agrees_with_the_gguf_package(tiny):
    gguf = pytest.importorskip("gguf")
    ours = read_gguf(tiny)
    theirs = gguf.GGUFReader(str(tiny))
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.data_offset == b.data_offset and a.n_bytes == b.n_bytes and list(a.dims) == [int(x) for x in b.shape]
    toks = theirs.fields["tokenizer.ggml.tokens"]
    assert ours.get("tokenizer.ggml.tokens") == [bytes(toks.parts[i]) for i in toks.data]


def test_writing_back_what_was_read_gives_the_same_file(tiny, tmp_path):
    from completion.gguf_file import write_gguf

    g = read_gguf(tiny)
    raw = tiny.read_bytes()

    def copy(t):
        return lambda out: out.write(raw[t.data_offset : t.data_offset + t.n_bytes])

    out = tmp_path / "copy.gguf"
    with out.open("wb") as f:
        write_gguf(f, version=g.version, kv=g.kv, tensors=[(t, t.n_bytes, copy(t)) for t in g.tensors], alignment=g.alignment)
    assert out.read_bytes().rstrip(b"\0") == raw.rstrip(b"\0")


# ---- the keep-set --------------------------------------------------------------------------


def test_required_ids_hold_specials_bytes_and_ascii(tiny):
    g = read_gguf(tiny)
    toks = g.get("tokenizer.ggml.tokens")
    req = vh.required_ids(g)
    texts = {toks[i] for i in req}
    for s in ("<fim_prefix>", "<fim_middle>", "<|endoftext|>", "<file_sep>"):
        assert s.encode() in texts
    assert b"<unused0>" not in texts  # a placeholder
    assert sum(len(toks[i].decode()) == 1 for i in req) >= 256  # the byte alphabet
    assert b"re" not in texts  # a merge: only if the corpus uses it


def test_choose_keep_by_frequency_then_id():
    counts = np.array([0, 5, 9, 5, 1, 0, 7])
    assert vh.choose_keep(counts, {0}, 4).tolist() == [0, 1, 2, 6]
    assert vh.choose_keep(counts, {0}, 5).tolist() == [0, 1, 2, 3, 6]
    assert vh.choose_keep(counts, {0}, 100).tolist() == [0, 1, 2, 3, 4, 6]  # never-seen ids stay out
    assert vh.coverage(counts, np.array([2, 6])) == pytest.approx(16 / 27)


def test_keep_list_round_trip_is_deterministic(tmp_path):
    keep = np.array([0, 3, 4, 100, 262143])
    a, b = tmp_path / "a.keep.gz", tmp_path / "b.keep.gz"
    vh.save_keep_list(a, keep, 262144, "f" * 64, {"size": 5})
    vh.save_keep_list(b, keep, 262144, "f" * 64, {"size": 5})
    assert a.read_bytes() == b.read_bytes()
    header, back = vh.load_keep_list(a)
    assert back.tolist() == keep.tolist() and header["vocab_sha256"] == "f" * 64 and header["size"] == 5


def test_the_committed_keep_list_is_small_and_valid():
    files = sorted(vh.DATA_DIR.glob("*.keep.gz"))
    assert files, "no committed keep-list"
    for p in files:
        assert p.stat().st_size < 200_000
        header, keep = vh.load_keep_list(p)
        assert p.name.startswith(header["vocab_sha256"][:16])
        assert len(keep) == header["size"] == vh.DEFAULT_KEEP


# ---- ids -----------------------------------------------------------------------------------


def _toy_map():
    # original vocabulary: 256 byte tokens, then texts; kept: bytes + some texts
    texts = [b"a", b"b", b"ab", b"abc", b"c", b" x", b"\xc3\xa9t\xc3\xa9", b"<eos>"]
    orig = [bytes([i]) for i in range(256)] + texts
    kept = list(range(256)) + [256, 257, 258, 260, 263]  # a, b, ab, c, <eos>; not abc, " x", "été"
    pieces = [orig[i] for i in kept]
    spellable = [i for i, o in enumerate(kept) if orig[o] != b"<eos>"]
    return vh.TokenMap(kept, len(orig), pieces, spellable, lambda t: orig[t], byte_ids=range(256)), orig, kept


def test_token_map_maps_kept_ids_and_spells_the_others():
    tm, orig, kept = _toy_map()
    new = {o: i for i, o in enumerate(kept)}
    assert tm.map([256, 258]) == [new[256], new[258]]
    assert tm.map([259]) == [new[258], new[260]]  # "abc" -> "ab" "c": the longest kept piece first
    out = tm.map([261, 262, 263])  # " x", "été", <eos>
    assert b"".join(orig[kept[i]] for i in out) == b" x" + "été".encode() + b"<eos>"
    assert tm.to_original(tm.map([256, 258])) == [256, 258]
    assert tm.spell(b"") == []


def test_token_map_prefers_text_tokens_over_byte_tokens():
    tm, orig, kept = _toy_map()
    # "a" is both the byte token 0x61 and the text token "a" (a higher id): the text token wins
    assert tm.spell(b"aab") == [256, 258]
    assert tm.spell("é".encode()) == [0xC3, 0xA9]  # no text token: byte tokens


def test_exactness_counts_up_to_the_first_miss():
    kept = {1, 2, 3}
    runs = [([1, 2], [3, 3, 3]), ([1], [2, 9, 3]), ([9], [1, 2]), ([1], [])]
    r = vh.exactness(runs, kept)
    assert r["runs"] == 4 and r["prompts_in_set"] == 3
    assert r["runs_identical"] == 2  # the first and the empty one
    assert r["tokens"] == 8 and r["tokens_guaranteed"] == 3 + 1  # the third's prompt is outside
    assert r["token_rate"] == pytest.approx(4 / 8)
    assert r["step_rate"] == pytest.approx(7 / 8)
    assert r["first_miss_steps"] == [1]


# ---- deriving and caching (tiny model) -------------------------------------------------------


def test_derived_tiny_model_is_trimmed_consistently(tiny, tmp_path, corpus):
    cm = vh.code_model_path(tiny, tokenizer=_tokenizer, directory=tmp_path, size=400, corpus=corpus)
    assert cm.built and cm.n_kept <= 400 and cm.n_original > 900
    src, der = read_gguf(tiny), read_gguf(cm.path)
    kept = vh.read_kept_ids(cm.path)
    stoks, dtoks = src.get("tokenizer.ggml.tokens"), der.get("tokenizer.ggml.tokens")
    assert dtoks == [stoks[i] for i in kept]
    assert np.array_equal(der.get("tokenizer.ggml.token_type"), src.get("tokenizer.ggml.token_type")[kept])
    kept_texts = set(dtoks)
    for m in der.get("tokenizer.ggml.merges"):
        a, b = m.split(b" ", 1)
        assert a in kept_texts and b in kept_texts and a + b in kept_texts
    merges = der.get("tokenizer.ggml.merges")
    assert b"e l" in merges and b"q z" not in merges  # "el" (self) is used, "qz" never
    eos = der.get("tokenizer.ggml.eos_token_id")
    assert dtoks[eos] == b"<|endoftext|>"
    raw_s, raw_d = tiny.read_bytes(), cm.path.read_bytes()
    for name in ("token_embd.weight", "output.weight"):  # tied or untied: both trimmed, rows in order
        ts, td = src.tensor(name), der.tensor(name)
        assert td.dims == (ts.dims[0], len(kept))
        rows = np.frombuffer(raw_s[ts.data_offset : ts.data_offset + ts.n_bytes], np.uint8).reshape(-1, ts.row_bytes)
        got = np.frombuffer(raw_d[td.data_offset : td.data_offset + td.n_bytes], np.uint8).reshape(-1, td.row_bytes)
        assert np.array_equal(rows[kept], got)
    ts, td = src.tensor("blk.0.attn_q.weight"), der.tensor("blk.0.attn_q.weight")
    assert raw_s[ts.data_offset : ts.data_offset + ts.n_bytes] == raw_d[td.data_offset : td.data_offset + td.n_bytes]


def test_derived_tiny_model_loads_and_matches_logits(tiny, tmp_path, corpus):
    from completion.backend import BackendConfig, LlamaBackend

    cm = vh.code_model_path(tiny, tokenizer=_tokenizer, directory=tmp_path, size=400, corpus=corpus)
    full = LlamaBackend(BackendConfig(str(tiny), n_ctx=128, n_threads=1, n_threads_batch=1))
    code = LlamaBackend(BackendConfig(str(cm.path), n_ctx=128, n_threads=1, n_threads_batch=1, tokenizer_path=str(tiny)))
    try:
        assert code.n_vocab == cm.n_kept and code.describe()["vocabulary"] == "code"
        text = "for item in items:\n    return self"
        ids = full.tokenize(text)
        assert all(code.token_map.old_to_new[t] >= 0 for t in ids)  # the corpus's own words
        assert code.tokenize(text) == code.token_map.map(ids)
        full.eval_prompt(ids)
        code.eval_prompt(code.tokenize(text))
        assert np.array_equal(full.tail_logits()[code.token_map.new_to_old], code.tail_logits())
        odd = "quiz jazz été 日本 <fim_pad>"  # letter pairs the corpus never used, non-ASCII
        mapped = code.tokenize(odd)
        assert len(mapped) > len(full.tokenize(odd))
        assert code.detokenize(mapped).decode("utf-8") == odd
        assert code.eos_id >= 0 and code.token_text(code.eos_id) == "<|endoftext|>"
    finally:
        full.close()
        code.close()


def test_cache_is_reused_then_rebuilt_when_the_source_changes(tiny, tmp_path, corpus):
    from tiny_gguf import build_tiny_gguf

    src = tmp_path / "src.gguf"
    shutil.copy(tiny, src)
    cache = tmp_path / "cache"
    kw = dict(tokenizer=_tokenizer, directory=cache, size=400, corpus=corpus)
    first = vh.code_model_path(src, **kw)
    assert first.built
    again = vh.code_model_path(src, **kw)
    assert not again.built and again.path == first.path
    # touched, same bytes: the sha says it is the same source, nothing is rebuilt
    os.utime(src, ns=(1, 1))
    assert not vh.code_model_path(src, **kw).built
    # other weights (same vocabulary): rebuilt, from the new bytes
    build_tiny_gguf(src, SPECIAL, seed=7, pair_merges=True)
    before = first.path.read_bytes()
    rebuilt = vh.code_model_path(src, **kw)
    assert rebuilt.built and rebuilt.path.read_bytes() != before
    info = json.loads(rebuilt.path.with_name(rebuilt.path.name + ".json").read_text())
    assert info["source_sha256"] == vh._sha256(src) and read_gguf(rebuilt.path).get(vh.KEY_SOURCE_SHA).decode() == info["source_sha256"]


def test_a_corrupt_derived_file_is_rebuilt(tiny, tmp_path, corpus):
    kw = dict(tokenizer=_tokenizer, directory=tmp_path, size=400, corpus=corpus)
    cm = vh.code_model_path(tiny, **kw)
    good = cm.path.read_bytes()
    with cm.path.open("r+b") as f:  # a flipped byte in the tensor data
        f.seek(len(good) - 100)
        f.write(bytes([good[-100] ^ 0xFF]))
    again = vh.code_model_path(tiny, **kw)
    assert again.built and again.path.read_bytes() == good
    cm.path.write_bytes(good[: len(good) // 2])  # truncated
    assert vh.code_model_path(tiny, **kw).built and cm.path.read_bytes() == good
    cm.path.with_name(cm.path.name + ".json").write_text("{not json")  # a broken sidecar
    assert vh.code_model_path(tiny, **kw).built and cm.path.read_bytes() == good


def test_small_vocabularies_keep_their_head(tiny, tmp_path):
    with pytest.raises(vh.VocabHeadUnavailable, match="small already"):
        vh.code_model_path(tiny, directory=tmp_path)  # 950 tokens, 32k kept: nothing to gain


def test_engine_falls_back_to_the_full_head(tiny_fim_model):
    from completion.engine import Engine
    from completion.settings import Settings

    e = Engine(Settings(model_path=tiny_fim_model[0], monitors=()))
    e.load()
    try:
        d = e.describe()
        assert d["head"]["vocabulary"] == "full" and "small already" in d["head"]["note"]
        assert d["path"] == d["model_file"] == tiny_fim_model[0]
    finally:
        e.close()


def test_vocabulary_setting():
    from completion.settings import Settings

    assert Settings().vocabulary == "code" and "vocabulary" in Settings.MODEL_KEYS
    s, problems = Settings().merge({"vocabulary": "full"})
    assert s.vocabulary == "full" and not problems
    s, problems = Settings().merge({"vocabulary": "small"})
    assert s.vocabulary == "code" and problems and "vocabulary must be one of full, code" in problems[0]


# ---- the real embedded model -------------------------------------------------------------------

PROMPTS = [
    "import os\n\n\ndef list_files(root):\n    out = []\n    for name in sorted(os.listdir(root)):\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
    "function add(a: number, b: number): number {\n  return",
]


@pytest.fixture(scope="module")
def pair(model_path):
    from completion.backend import BackendConfig, LlamaBackend

    cm = vh.code_model_path(model_path)
    full = LlamaBackend(BackendConfig(model_path, n_ctx=1024, n_threads=2, n_threads_batch=2))
    code = LlamaBackend(BackendConfig(str(cm.path), n_ctx=1024, n_threads=2, n_threads_batch=2, tokenizer_path=model_path))
    yield full, code
    full.close()
    code.close()


@pytest.mark.model
def test_real_derived_model_matches_logits_bit_for_bit(pair):
    full, code = pair
    kept = code.token_map.new_to_old
    assert code.n_vocab == vh.DEFAULT_KEEP and full.n_vocab == 262144
    for text in PROMPTS:
        ids = [full.bos_id, *full.tokenize(text)]
        assert all(code.token_map.old_to_new[t] >= 0 for t in ids), text
        full.eval_prompt(ids)
        code.eval_prompt(code.token_map.map(ids))
        assert np.array_equal(full.tail_logits()[kept], code.tail_logits()), text
        for t in (ids[3], ids[5]):  # single-token evals too
            full.eval([t])
            code.eval([int(code.token_map.old_to_new[t])])
            assert np.array_equal(full.logits(-1)[kept], code.logits(-1))


@pytest.mark.model
def test_real_greedy_output_is_the_full_models_until_the_first_miss(pair):
    full, code = pair
    keep = set(code.token_map.new_to_old.tolist())
    for text in PROMPTS[:2]:
        ids = [full.bos_id, *full.tokenize(text)]
        outs = []
        for be, prompt in ((full, ids), (code, code.token_map.map(ids))):
            be.reset()
            be.eval_prompt(prompt)
            tok = int(np.argmax(be.tail_logits()))
            out = [tok]
            for _ in range(15):
                be.eval([tok])
                tok = int(np.argmax(be.logits(-1)))
                out.append(tok)
            outs.append(out)
        gen_full, gen_code = outs[0], code.token_map.to_original(outs[1])
        k = next((i for i, t in enumerate(gen_full) if t not in keep), len(gen_full))
        assert gen_code[:k] == gen_full[:k]
        assert vh.exactness([(ids, gen_full)], keep)["tokens_guaranteed"] == k


@pytest.mark.model
def test_real_mapping_round_trips_text(pair):
    full, code = pair
    texts = [
        "x = 'naïve café' # 日本語のコメント, Ελληνικά, emoji 🎉\n",
        "def f(): return 'Привет, мир'  # ﬁ ligature, \u200b zero width\n",
        "    \t\n\n\n  trailing   \r\n",
        "<start_of_turn>user <eos> is text here\n",
    ]
    spelled = 0
    for text in texts:
        orig = full.tokenize(text)
        spelled += sum(code.token_map.old_to_new[t] < 0 for t in orig)
        mapped = code.tokenize(text)
        assert code.detokenize(mapped).decode("utf-8") == text
        assert full.detokenize(orig).decode("utf-8") == text
    assert spelled > 0  # out-of-set tokens were there, and written as kept pieces


@pytest.mark.model
def test_real_engine_reports_the_code_head(engine):
    d = engine.describe()
    assert d["head"]["vocabulary"] == "code" and d["n_vocab"] == vh.DEFAULT_KEEP
    assert d["path"].endswith("gemma-3-270m-q4_k_m.gguf") and ".code-" in d["model_file"]
    c = engine.complete_text("def add(a, b):\n    return ", options={"monitors": []})
    assert c.stats["vocabulary"] == "code"
