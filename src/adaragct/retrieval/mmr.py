"""Maximal marginal relevance with BLEU-2 redundancy (docs/method.md#retrieval, adaptive retriever).

Why BLEU-2 and not embedding cosine for redundancy: report sentences that differ in one clinically decisive word
("mild" vs "no") are near-identical in embedding space, and the model gains nothing from three paraphrases of one
sentence. Surface n-gram overlap penalises paraphrase copies while keeping sentences that say different things.

    score(c) = lambda * cos(probe, c) - (1 - lambda) * max_{s in selected} BLEU-2(c, s)

Two BLEU-2 variants (``retrieval.mmr_bleu``):

* ``release`` (the paper's, :func:`bleu2_release`): the release's own -- lower-cased whitespace tokens (punctuation
  stays on its word: "effusion." is not "effusion"), clipped 1- and 2-gram precision, their geometric mean, 0 when
  either is 0, no smoothing, no brevity penalty; and the release's MMR, which returns a shortlist of at most
  ``k`` candidates as it is, in cosine order.
* ``smoothed`` (:func:`bleu2`, this package's before issue 21, which the demo's recorded results used): regex word
  tokens, add-one smoothing of the bigram precision, the brevity penalty; MMR orders even a short shortlist.

Both pick greedily with ties kept by position (the most relevant first), as the release's strict ``>`` does.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np

MmrBleu = Literal["release", "smoothed"]
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")


def tokens(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens (numbers with decimals kept whole)."""
    return tuple(_TOKEN.findall(text.lower()))


@lru_cache(maxsize=200_000)
def _ngrams(text: str) -> tuple[int, Counter, Counter]:
    toks = tokens(text)
    return len(toks), Counter(toks), Counter(itertools.pairwise(toks))


@lru_cache(maxsize=200_000)  # MMR compares the same candidate pairs for probe after probe
def bleu2(hypothesis: str, reference: str) -> float:
    """Sentence BLEU-2 of ``hypothesis`` against one ``reference``, in [0, 1].

    Uniform weights over clipped 1- and 2-gram precision, the standard brevity penalty, and add-one smoothing of
    the bigram precision (Lin & Och 2004) so that short sentences do not collapse to zero.
    """
    h_len, h1, h2 = _ngrams(hypothesis)
    r_len, r1, r2 = _ngrams(reference)
    if h_len == 0 or r_len == 0:
        return 0.0
    p1 = sum((h1 & r1).values()) / h_len
    if p1 == 0.0:
        return 0.0
    p2 = (sum((h2 & r2).values()) + 1.0) / (max(h_len - 1, 0) + 1.0)
    brevity = 1.0 if h_len >= r_len else math.exp(1.0 - r_len / h_len)
    return brevity * math.sqrt(p1 * p2)


def _precision(hyp: list[str], ref: list[str], n: int) -> float:
    if len(hyp) < n:
        return 0.0
    h = Counter(zip(*(hyp[i:] for i in range(n)), strict=False))
    r = Counter(zip(*(ref[i:] for i in range(n)), strict=False))
    total = sum(h.values())
    return sum(min(c, r[g]) for g, c in h.items()) / total if total > 0 else 0.0


@lru_cache(maxsize=200_000)
def bleu2_release(hypothesis: str, reference: str) -> float:
    """The release's MMR BLEU-2: ``sqrt(p1 * p2)`` over lower-cased whitespace tokens, 0 when either is 0.

    ``p_n`` is the clipped n-gram precision of ``hypothesis`` against ``reference`` (0 for a hypothesis shorter
    than n). No smoothing and no brevity penalty, so a one-word sentence scores 0 against anything.
    """
    hyp, ref = hypothesis.lower().split(), reference.lower().split()
    p1, p2 = _precision(hyp, ref, 1), _precision(hyp, ref, 2)
    return math.sqrt(p1 * p2) if p1 > 0 and p2 > 0 else 0.0


BLEU2 = {"release": bleu2_release, "smoothed": bleu2}


def mmr_select(
    texts: Sequence[str],
    relevance: np.ndarray,
    k: int,
    mmr_lambda: float = 0.7,
    bleu: MmrBleu = "release",
) -> list[int]:
    """Greedy MMR: indices of ``k`` texts balancing relevance (cosine to the probe) against BLEU-2 redundancy.

    Ties are broken by position (callers pass candidates sorted by relevance), so the result is deterministic.
    ``mmr_lambda=1`` is plain top-k by relevance. ``bleu`` picks the variant (module docstring); with
    ``release``, ``k`` or fewer texts come back as they are, in the caller's (cosine) order.
    """
    if bleu not in BLEU2:
        raise ValueError(f"retrieval.mmr_bleu must be one of {sorted(BLEU2)}, got {bleu!r}")
    n = len(texts)
    if n == 0 or k <= 0:
        return []
    if bleu == "release" and n <= k:
        return list(range(n))
    redundancy_of = BLEU2[bleu]
    relevance = np.asarray(relevance, dtype=np.float64)
    redundancy = np.zeros(n)
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        score = mmr_lambda * relevance - (1.0 - mmr_lambda) * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))  # first maximum: the most relevant among equals
        chosen.append(best)
        available[best] = False
        if mmr_lambda < 1.0:
            for i in np.flatnonzero(available):
                redundancy[i] = max(redundancy[i], redundancy_of(texts[i], texts[best]))
    return chosen
