"""Draft proposers for speculative decoding: each is ``__call__(tokens) -> proposed tokens``.

* ``PromptLookupDrafter``: find the most recent earlier occurrence of the last n tokens (n from
  ``max_ngram`` down to ``min_ngram``) in the context -- the prompt and any extra token streams
  (the engine gives it the text after the cursor and the other open documents) -- and propose
  what followed it. Code repeats itself; this is free.
* ``RecycledDrafter``: Token Recycling. The decoder already computes the best next token after
  every token it evaluates; the table keeps each token's latest such successor and a draft
  follows the chain from the last token.
* ``CombinedDrafter``: prompt lookup when it finds something, else the recycled chain.

Drafts only change speed: the decode loop accepts a drafted token only when it is exactly the
token it would have chosen at that position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["CombinedDrafter", "NgramIndex", "PromptLookupDrafter", "RecycledDrafter"]


class NgramIndex:
    """Every n-gram (``min_n``..``max_n`` tokens) of a token stream that has a continuation, with
    the positions where each ends, kept in step with the stream as it grows and shrinks.

    A lookup is a dict access instead of a scan, so searching the prompt and several other
    documents costs the same per decode step as searching nothing; re-syncing after an append
    or a rollback only touches the tokens that changed.
    """

    def __init__(self, tokens: Sequence[int] = (), min_n: int = 2, max_n: int = 4) -> None:
        self.min_n, self.max_n = min_n, max_n
        self.tokens: list[int] = []
        self._ends: dict[tuple[int, ...], list[int]] = {}  # n-gram -> ascending end positions
        self.sync(tokens)

    def sync(self, tokens: Sequence[int]) -> None:
        new = tokens if isinstance(tokens, list) else [int(t) for t in tokens]
        old = self.tokens
        if len(new) >= len(old) and new[: len(old)] == old:
            common = len(old)
        else:
            common = 0
            hi = min(len(old), len(new))
            while common < hi and old[common] == new[common]:
                common += 1
        # n-grams ending at j (tokens [j-n, j)) with a continuation (j < len): still valid up to here
        last = min(common, len(new) - 1, len(old) - 1)
        for j in range(len(old) - 1, last, -1):
            for n in range(self.min_n, min(self.max_n, j) + 1):
                key = tuple(old[j - n : j])
                ends = self._ends[key]
                ends.pop()
                if not ends:
                    del self._ends[key]
        self.tokens = list(new)
        for j in range(max(last + 1, self.min_n), len(new)):
            for n in range(self.min_n, min(self.max_n, j) + 1):
                self._ends.setdefault(tuple(new[j - n : j]), []).append(j)

    def continuation(self, key: tuple[int, ...], limit: int) -> list[int]:
        """What followed the most recent occurrence of ``key`` (empty if none)."""
        ends = self._ends.get(key)
        if not ends:
            return []
        j = ends[-1]
        return self.tokens[j : j + limit]


class PromptLookupDrafter:
    def __init__(self, max_ngram: int = 4, min_ngram: int = 2, max_draft: int = 8,
                 context: NgramIndex | None = None) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"ngram sizes: need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram
        self.max_draft = max_draft
        # the context's index may be shared between requests (the prompt barely changes per keystroke)
        self.context = context if context is not None else NgramIndex(min_n=min_ngram, max_n=max_ngram)
        if (self.context.min_n, self.context.max_n) != (min_ngram, max_ngram):
            raise ValueError("the context index must use the drafter's n-gram sizes")
        self.extra: list[NgramIndex] = []  # other token streams (text after the cursor, other documents)
        self.extra_names: list[str] = []
        self.last_source = ""  # where the last draft came from: "prompt" or the extra stream's name

    def set_extra(self, streams: Sequence[Sequence[int] | NgramIndex], names: Sequence[str] | None = None) -> None:
        """Token streams (or their indexes) to search besides the context, in order."""
        names = list(names) if names is not None else ["extra"] * len(streams)
        if len(names) != len(streams):
            raise ValueError(f"{len(streams)} streams but {len(names)} names")
        idx = [s if isinstance(s, NgramIndex) else NgramIndex(s, self.min_ngram, self.max_ngram) for s in streams]
        kept = [(i, n) for i, n in zip(idx, names, strict=True) if len(i.tokens)]
        self.extra = [i for i, _ in kept]
        self.extra_names = [n for _, n in kept]

    def __call__(self, tokens: Sequence[int]) -> list[int]:
        ctx = tokens if isinstance(tokens, list) else [int(t) for t in tokens]
        self.context.sync(ctx)
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(ctx) <= n:
                continue
            key = tuple(ctx[-n:])
            d = self.context.continuation(key, self.max_draft)
            if d:
                self.last_source = "prompt"
                return d
            for index, name in zip(self.extra, self.extra_names, strict=True):
                d = index.continuation(key, self.max_draft)
                if d:
                    self.last_source = name
                    return d
        self.last_source = ""
        return []


class RecycledDrafter:
    """Token Recycling with a top-1 successor table (linear drafts need no more)."""

    def __init__(self, n_vocab: int, max_draft: int = 8) -> None:
        self.next = np.full(n_vocab, -1, dtype=np.int32)
        self.max_draft = max_draft

    def observe(self, token: int, successor: int) -> None:
        """The decoder's best next token after ``token`` (from logits it computed anyway)."""
        self.next[token] = successor

    def __call__(self, tokens: Sequence[int]) -> list[int]:
        if not len(tokens):
            return []
        out: list[int] = []
        t = int(tokens[-1])
        seen = set()
        while len(out) < self.max_draft:
            nxt = int(self.next[t])
            if nxt < 0 or (t, nxt) in seen:
                break
            seen.add((t, nxt))
            out.append(nxt)
            t = nxt
        return out


class CombinedDrafter:
    def __init__(self, lookup: PromptLookupDrafter, recycled: RecycledDrafter | None) -> None:
        self.lookup = lookup
        self.recycled = recycled
        self.last_source = ""  # "prompt", an extra stream's name, "recycled": acceptance is measured per source

    def __call__(self, tokens: Sequence[int]) -> list[int]:
        d = self.lookup(tokens)
        if d:
            self.last_source = self.lookup.last_source
            return d
        if self.recycled is not None:
            d = self.recycled(tokens)
            self.last_source = "recycled" if d else ""
            return d
        self.last_source = ""
        return []


class DraftPolicy:
    """How many drafted tokens to verify: the length that maximizes expected tokens per ms.

    Acceptance is modelled per draft source as a geometric process (each next drafted token is
    accepted with probability ``p``, an exponential average of what verification found), and
    the cost of verifying ``k`` drafts as the measured time of an evaluation with ``k+1`` logits
    rows (exponential averages per row count; llama.cpp's cost per row is far from linear).
    """

    #: before anything is measured: an n-gram found in the prompt, the text after the cursor or
    #: another document is usually copied verbatim (``prior_accept``); a recycled chain less so
    PRIORS = {"recycled": 0.3}

    def __init__(self, max_draft: int = 6, prior_accept: float = 0.9) -> None:
        self.max_draft = max_draft
        self.accept: dict[str, float] = {}
        self.prior = prior_accept
        self.cost: dict[int, float] = {}  # rows -> ms
        self._skips: dict[str, int] = {}

    def observe_cost(self, rows: int, ms: float) -> None:
        old = self.cost.get(rows)
        self.cost[rows] = ms if old is None else 0.8 * old + 0.2 * ms

    def observe_accept(self, source: str, drafted: int, accepted: int) -> None:
        if drafted <= 0:
            return
        # MLE of a geometric acceptance from one trial: accepted successes before the failure
        trials = accepted + (1 if accepted < drafted else 0)
        p_obs = accepted / trials if trials else 0.0
        old = self.accept.get(source, self.PRIORS.get(source, self.prior))
        self.accept[source] = 0.7 * old + 0.3 * p_obs

    def _cost(self, rows: int) -> float:
        if rows in self.cost:
            return self.cost[rows]
        known = sorted(self.cost.items())
        if not known:
            return 13.0 + 6.0 * (rows - 1)  # a cold guess: ~13 ms for one row here
        # nearest measured row counts, else linear in rows from the closest one
        below = [(r, c) for r, c in known if r < rows]
        above = [(r, c) for r, c in known if r > rows]
        if below and above:
            (r0, c0), (r1, c1) = below[-1], above[0]
            return c0 + (c1 - c0) * (rows - r0) / (r1 - r0)
        r0, c0 = (below or above)[-1 if below else 0]
        base = self.cost.get(1, c0 / max(r0, 1))
        return c0 + (rows - r0) * max(base * 0.5, 1.0)

    def length(self, source: str, available: int) -> int:
        """Best number of drafted tokens to verify (0: do not draft now)."""
        p = self.accept.get(source, self.PRIORS.get(source, self.prior))
        if p < self.PRIORS.get(source, self.prior):
            # drift back towards the prior while not drafting: acceptance is re-measured by
            # occasional probes instead of written off forever
            self.accept[source] = p = p + 0.01 * (self.PRIORS.get(source, self.prior) - p)
        best_k, best_rate = 0, 1.0 / self._cost(1)
        expected = 1.0
        for k in range(1, min(available, self.max_draft) + 1):
            expected += p**k
            rate = expected / self._cost(k + 1)
            if rate > best_rate * 1.02:
                best_k, best_rate = k, rate
        if best_k == 0:
            self._skips[source] = self._skips.get(source, 0) + 1
            if self._skips[source] % 32 == 0:
                return min(2, available)  # a cheap probe
        return best_k
