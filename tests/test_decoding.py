"""The decode loop on a fake backend: constraints checked first, drafts lossless, rollback, cancel."""

import numpy as np
import pytest
from fakes import FakeBackend

from completion.constraints import HealingConstraint
from completion.decoding import Cancelled, CancelToken, Decoder, Sampling
from monitors.vocabulary import Vocabulary

N = 64
PIECES = [b"<eos>"] + [bytes([97 + (i % 26)]) * (1 + i // 26) for i in range(N - 1)]  # a..z, aa..zz, ...
EOS = 0


def make(script=None):
    vocab = Vocabulary(PIECES, control=[EOS])
    return FakeBackend(N, script=script), vocab


class CountingConstraint:
    """Allows only tokens whose text is made of letters in ``letters``."""

    name = "letters"

    def __init__(self, letters, vocab):
        self.letters = set(letters)
        self.vocab = vocab
        self.checks = 0
        self.allowed_calls = 0

    def check(self, generated, token, text):
        self.checks += 1
        return text is not None and set(text) <= self.letters

    def allowed(self, generated):
        self.allowed_calls += 1
        return np.array([i for i in range(N) if (t := self.vocab.text(i)) and set(t) <= self.letters], dtype=np.int32)


def test_greedy_is_deterministic_and_kv_holds_prompt_plus_accepted():
    be, vocab = make()
    dec = Decoder(be, vocab, {EOS})
    r1 = dec.generate([1, 2, 3], max_tokens=12)
    assert len(r1.tokens) == 12
    # KV = prompt + every accepted token but the last (pending) one
    assert be.kv == [1, 2, 3] + r1.tokens[:-1]
    r2 = Decoder(FakeBackend(N), vocab, {EOS}).generate([1, 2, 3], max_tokens=12)
    assert r1.tokens == r2.tokens


def test_constraint_checked_first_and_mask_only_on_rejection():
    be, vocab = make()
    c = CountingConstraint("ab", vocab)
    r = Decoder(be, vocab, {EOS}).generate([5], max_tokens=10, constraints=[c])
    assert set(r.text) <= {"a", "b"}
    # the allowed set is only computed when the ~13 best candidates were all rejected
    assert c.allowed_calls <= len(r.tokens)
    assert r.stats.interventions.get("letters", 0) >= 1


def test_constraint_never_consulted_when_preferred_token_passes():
    be, vocab = make()
    c = CountingConstraint("abcdefghijklmnopqrstuvwxyz", vocab)
    Decoder(be, vocab, {EOS}).generate([5], max_tokens=8, constraints=[c])
    assert c.allowed_calls == 0


def test_failing_constraint_means_no_opinion():
    class Broken:
        name = "broken"

        def check(self, generated, token, text):
            raise RuntimeError("boom")

        def allowed(self, generated):
            raise RuntimeError("boom")

    be, vocab = make()
    plain = Decoder(FakeBackend(N), vocab, {EOS}).generate([7, 8], max_tokens=6)
    r = Decoder(be, vocab, {EOS}).generate([7, 8], max_tokens=6, constraints=[Broken()])
    assert r.tokens == plain.tokens
    assert r.stats.constraint_errors and "broken" in r.stats.constraint_errors[0]


def test_nothing_allowed_stops_cleanly():
    class Nothing:
        name = "nothing"

        def check(self, generated, token, text):
            return False

        def allowed(self, generated):
            return np.zeros(0, dtype=np.int32)

    be, vocab = make()
    r = Decoder(be, vocab, {EOS}).generate([1], max_tokens=5, constraints=[Nothing()])
    assert r.tokens == [] and "nothing allowed" in r.stats.stop_reason


def test_end_token_stops():
    be, vocab = make(script={(9,): EOS})
    r = Decoder(be, vocab, {EOS}).generate([9], max_tokens=5)
    assert r.tokens == [] and r.stats.stop_reason == "end token"


def test_stop_rule_cuts_text():
    be, vocab = make()
    r = Decoder(be, vocab, {EOS}).generate([3], max_tokens=20, stop=lambda text: 2 if len(text) >= 4 else None)
    assert len(r.text) == 2


def test_healing_constraint_forces_prefix():
    be, vocab = make()
    # "cc" is a token; healing "c" must be reproduced by a token starting with "c"
    r = Decoder(be, vocab, {EOS}).generate([4], max_tokens=3, constraints=[HealingConstraint("c", vocab)])
    assert r.text.startswith("c")


class ScriptedDrafter:
    """Proposes a mix of right and wrong continuations."""

    def __init__(self, truth, wrong_every=3):
        self.truth = truth
        self.calls = 0
        self.wrong_every = wrong_every

    def __call__(self, tokens):
        self.calls += 1
        n = len(tokens) - self.prompt_len
        draft = list(self.truth[n : n + 4])
        if self.calls % self.wrong_every == 0 and draft:
            draft[len(draft) // 2] = (draft[len(draft) // 2] + 1) % N or 1
        return draft


@pytest.mark.parametrize("seed", range(8))
def test_drafting_is_lossless_under_constraints(seed):
    vocab = Vocabulary(PIECES, control=[EOS])
    prompt = [int(x) for x in np.random.default_rng(seed).integers(1, N, 6)]
    letters = "abcdefghijklm"
    plain_be = FakeBackend(N)
    plain = Decoder(plain_be, vocab, {EOS}).generate(prompt, max_tokens=20, constraints=[CountingConstraint(letters, vocab)])
    drafter = ScriptedDrafter(plain.tokens)
    drafter.prompt_len = len(prompt)
    be = FakeBackend(N)
    drafted = Decoder(be, vocab, {EOS}).generate(
        prompt, max_tokens=20, constraints=[CountingConstraint(letters, vocab)], drafter=drafter
    )
    assert drafted.tokens == plain.tokens
    assert drafted.stats.accepted_draft_tokens > 0
    assert be.eval_calls < plain_be.eval_calls  # fewer model calls
    assert be.kv == prompt + drafted.tokens[:-1]  # rejected draft tails were rolled back


def test_sampling_is_reproducible_with_a_seed():
    vocab = Vocabulary(PIECES, control=[EOS])
    s = Sampling(temperature=0.8, top_p=0.9, seed=42)
    a = Decoder(FakeBackend(N), vocab, {EOS}).generate([1, 2], max_tokens=10, sampling=s)
    b = Decoder(FakeBackend(N), vocab, {EOS}).generate([1, 2], max_tokens=10, sampling=s)
    g = Decoder(FakeBackend(N), vocab, {EOS}).generate([1, 2], max_tokens=10)
    assert a.tokens == b.tokens
    assert a.tokens != g.tokens


def test_sampling_validation():
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)


def test_cancel_between_tokens_leaves_kv_consistent():
    be, vocab = make()
    token = CancelToken()

    def stop(text):
        if len(text) > 6:
            token.cancel("client")
        return None

    with pytest.raises(Cancelled) as info:
        Decoder(be, vocab, {EOS}).generate([1, 2], max_tokens=50, stop=stop, cancel=token)
    assert info.value.reason == "client"
    assert 0 < info.value.generated_tokens < 50
    assert be.kv[:2] == [1, 2]
    # the next generation from the same state equals a fresh one
    fresh = Decoder(FakeBackend(N), vocab, {EOS}).generate([1, 2, 3], max_tokens=5)
    again = Decoder(be, vocab, {EOS}).generate([1, 2, 3], max_tokens=5)
    assert fresh.tokens == again.tokens


def test_cancel_before_start():
    be, vocab = make()
    token = CancelToken()
    token.cancel("superseded")
    with pytest.raises(Cancelled, match="superseded"):
        Decoder(be, vocab, {EOS}).generate([1], max_tokens=5, cancel=token)


def test_incomplete_utf8_waits_for_the_rest():
    pieces = [b"<eos>", b"\xe2\x82", b"\xac", b"x"]
    vocab = Vocabulary(pieces, control=[0])
    be = FakeBackend(4, script={(1,): 1, (1, 1): 2, (1, 1, 2): 3})
    seen = []
    r = Decoder(be, vocab, {0}).generate([1], max_tokens=3, stop=lambda t: seen.append(t))
    assert r.text == "€x"
    assert all("\ufffd" not in t for t in seen)


class LateRejection:
    """Accepts provisionally (analysis pending) at first; once the analysis is in, the first
    token the decoder chose is rejected with a Rewind, as the names monitor may answer."""

    name = "late"

    def __init__(self, bad_text):
        import concurrent.futures

        self.bad = bad_text
        self.future = concurrent.futures.Future()
        self.calls = 0

    def check(self, generated, token, text):
        from monitors.base import Pending, Rewind

        self.calls += 1
        if self.calls == 3:
            self.future.set_result(None)  # the analysis finishes while the loop goes on
        if not self.future.done():
            return Pending(self.future, deadline=float("inf"))
        return Rewind(0) if text == self.bad else True

    def allowed(self, generated):
        return None


def test_a_late_rewind_rolls_back_the_provisional_token():
    be, vocab = make()
    first = Decoder(FakeBackend(N), vocab, {EOS}).generate([5], max_tokens=4).text
    assert first
    late = LateRejection(vocab.text(Decoder(FakeBackend(N), vocab, {EOS}).generate([5], max_tokens=1).tokens[0]))
    r = Decoder(be, vocab, {EOS}).generate([5], max_tokens=4, constraints=[late])
    assert r.stats.provisional >= 1 and r.stats.rollbacks >= 1
    assert not r.text.startswith(late.bad)
    assert be.kv == [5] + r.tokens[:-1]  # the KV cache holds exactly what was kept


class DeadEndAfter:
    """Every continuation of text longer than ``n`` characters is a dead end that started at
    character ``n`` -- no rewind can get out of it."""

    name = "dead-end"

    def __init__(self, n):
        self.n = n

    def check(self, generated, token, text):
        from monitors.base import Rewind

        return Rewind(self.n) if len(generated) > self.n else True

    def allowed(self, generated):
        return None


def test_out_of_rewinds_the_suggestion_ends_before_the_dead_end():
    be, vocab = make()
    plain = Decoder(FakeBackend(N), vocab, {EOS}).generate([5], max_tokens=12)
    assert len(plain.text) > 4
    r = Decoder(be, vocab, {EOS}).generate([5], max_tokens=12, constraints=[DeadEndAfter(2)])
    assert r.stats.rewinds == 4  # every rewind was tried
    assert r.stats.stop_reason == "constraints: dead end"
    assert len(r.text) <= 2 and plain.text.startswith(r.text)


class PendingFrom:
    """Has an opinion at once on the first ``n`` tokens; from then on its analysis never lands."""

    name = "slow"

    def __init__(self, n):
        import concurrent.futures

        self.n = n
        self.future = concurrent.futures.Future()

    def check(self, generated, token, text):
        import time

        from monitors.base import Pending

        return True if len(generated) < self.n else Pending(self.future, deadline=time.monotonic() + 10)

    def allowed(self, generated):
        return None


def test_past_the_deadline_only_verified_tokens_are_returned():
    be, vocab = make()
    plain = Decoder(FakeBackend(N), vocab, {EOS}).generate([5], max_tokens=6)
    assert len(plain.tokens) == 6
    verified = len(vocab.text(plain.tokens[0]) + vocab.text(plain.tokens[1]))
    r = Decoder(be, vocab, {EOS}).generate([5], max_tokens=6, constraints=[PendingFrom(verified)], budget_s=0.0)
    assert r.tokens == plain.tokens[:2] and r.text == plain.text[:verified]
    assert r.stats.unverified_dropped == 4 and r.stats.pending_wait_ms == 0
    assert be.kv == [5] + r.tokens[:-1]  # the KV cache holds exactly what was kept
    # not enough verified text to show: it waits (here the analysis lands while it waits)
    slow = PendingFrom(verified)
    import threading

    threading.Timer(0.05, lambda: slow.future.set_result(None)).start()
    r = Decoder(FakeBackend(N), vocab, {EOS}).generate([5], max_tokens=6, constraints=[slow], budget_s=0.0,
                                                       keep_chars=verified)
    assert r.tokens == plain.tokens and r.stats.unverified_dropped == 0 and r.stats.pending_wait_ms > 0
