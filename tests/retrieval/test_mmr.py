"""BLEU-2 redundancy and MMR selection: ours (smoothed) and the release's, pinned on hand-computed values."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from adaragct.retrieval.mmr import bleu2, bleu2_release, mmr_select


def test_bleu2_values() -> None:
    assert bleu2("No pleural effusion.", "no pleural effusion") == pytest.approx(1.0)
    assert bleu2("Hiatal hernia.", "The heart is enlarged.") == 0.0
    # 3 of 4 unigrams, 2 of 3 bigrams (+1 smoothing: 3/4), equal lengths: sqrt(0.75 * 0.75)
    assert bleu2("the heart is enlarged", "the heart is normal") == pytest.approx(0.75)
    # brevity penalty for a short hypothesis
    assert bleu2("heart enlarged", "the heart is enlarged") < bleu2("the heart is enlarged", "heart enlarged")
    assert bleu2("", "anything") == 0.0


@pytest.mark.parametrize(
    ("hypothesis", "reference", "release", "smoothed"),
    [
        # 3/4 unigrams, 2/3 bigrams: release sqrt(3/4 * 2/3); smoothed (2+1)/(3+1) for the bigrams
        ("the heart is enlarged", "the heart is normal", math.sqrt(0.5), 0.75),
        # "effusion." keeps its period in the release's split: 2/3 unigrams, 1/2 bigrams; ours drops it -> 1.0
        ("No pleural effusion.", "no pleural effusion", math.sqrt(2 / 3 * 1 / 2), 1.0),
        # a one-word hypothesis has no bigram: 0 in the release's; ours: p1 1, p2 (0+1)/(0+1), brevity e^(1-3)
        ("Cardiomegaly", "cardiomegaly is present", 0.0, math.exp(-2.0)),
        # a hypothesis longer than its reference: both 3/5 unigrams, 2/4 bigrams (ours: (2+1)/(4+1) = 3/5)
        ("mild cardiomegaly is seen here", "mild cardiomegaly is present", math.sqrt(0.3), 0.6),
        ("", "no pleural effusion", 0.0, 0.0),
        ("no pleural effusion", "", 0.0, 0.0),
        # clipping: "no" twice in the hypothesis, once in the reference -> 2/3 unigrams, 1/2 bigrams
        ("no no effusion", "no effusion", math.sqrt(2 / 3 * 1 / 2), None),
    ],
)
def test_bleu2_release_and_smoothed_on_hand_computed_pairs(hypothesis, reference, release, smoothed) -> None:
    assert bleu2_release(hypothesis, reference) == pytest.approx(release, abs=1e-12)
    if smoothed is not None:
        assert bleu2(hypothesis, reference) == pytest.approx(smoothed, abs=1e-12)


def _release_bleu2(a: str, b: str) -> float:
    """The release's code, transcribed (issue 21)."""

    def _ngram_precision(hyp, ref, n):
        if len(hyp) < n:
            return 0.0
        h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        clipped = sum(min(c, r[g]) for g, c in h.items())
        total = sum(h.values())
        return clipped / total if total > 0 else 0.0

    a, b = a.lower().split(), b.lower().split()
    p1, p2 = _ngram_precision(a, b, 1), _ngram_precision(a, b, 2)
    return (p1 * p2) ** 0.5 if p1 > 0 and p2 > 0 else 0.0


def _release_mmr(
    candidates: list[tuple[str, float]], top_k: int, mmr_lambda: float
) -> list[tuple[str, float]]:
    """The release's MMR, transcribed: candidates (text, cosine) in cosine order."""
    if not candidates or len(candidates) <= top_k:
        return candidates
    selected: list[tuple[str, float]] = []
    remaining = list(candidates)
    for _ in range(top_k):
        best, best_score = None, -float("inf")
        for cand in remaining:
            redundancy = max((_release_bleu2(cand[0], s[0]) for s in selected), default=0.0)
            score = mmr_lambda * cand[1] - (1 - mmr_lambda) * redundancy
            if score > best_score:
                best, best_score = cand, score
        selected.append(best)
        remaining.remove(best)
    return selected


SENTENCES = [
    "No pleural effusion.",
    "No pleural effusion is seen.",
    "There is no pleural effusion.",
    "Mild emphysema in both upper lobes.",
    "Mild emphysema is seen in both upper lobes.",
    "Centrilobular emphysema in the lungs.",
    "Bullae in the apices.",
    "Heart size is normal.",
    "The heart is enlarged.",
    "Cardiomegaly.",
    "Minimal pericardial effusion.",
    "Atelectasis in the left lower lobe.",
]


def test_release_variant_equals_the_release_algorithm_with_ties_and_short_lists() -> None:
    rng = np.random.default_rng(0)
    compared = 0
    for n, k, mmr_lambda in itertools.product((1, 2, 3, 5, 8, 12), (1, 3, 5), (0.0, 0.3, 0.7, 1.0)):
        for trial in range(4):
            texts = [SENTENCES[i] for i in rng.permutation(len(SENTENCES))[:n]]
            # coarse cosines give ties (trial 0: all equal); sorted descending, as the retriever passes them
            cos = np.sort(rng.choice([0.5, 0.6, 0.6, 0.7], size=n) if trial else np.full(n, 0.6))[::-1]
            expected = _release_mmr(list(zip(texts, cos.tolist(), strict=True)), k, mmr_lambda)
            picked = mmr_select(texts, cos, k, mmr_lambda, bleu="release")
            assert [(texts[i], float(cos[i])) for i in picked] == expected, (n, k, mmr_lambda, trial)
            compared += 1
    assert compared == 6 * 3 * 4 * 4


def test_a_short_list_keeps_cosine_order_with_the_release_variant_only() -> None:
    texts = ["No pleural effusion.", "No pleural effusion is seen.", "Bullae in the apices."]
    cos = np.array([0.9, 0.89, 0.8])
    assert mmr_select(texts, cos, 3, 0.7, bleu="release") == [0, 1, 2]  # as it is: len <= top_k
    assert mmr_select(texts, cos, 3, 0.7, bleu="smoothed") == [0, 2, 1]  # ours orders the near-copy last
    assert mmr_select(texts, cos, 2, 0.7, bleu="release") == [0, 2]


def test_mmr_with_lambda_one_is_top_k_and_lower_lambda_skips_paraphrase_copies() -> None:
    texts = [
        "Mild emphysema in both upper lobes.",
        "Mild emphysema is seen in both upper lobes.",
        "Centrilobular emphysema in the lungs.",
        "Bullae in the apices.",
    ]
    relevance = np.array([0.90, 0.86, 0.80, 0.78])
    for bleu in ("release", "smoothed"):
        assert mmr_select(texts, relevance, 3, mmr_lambda=1.0, bleu=bleu) == [0, 1, 2]
        assert mmr_select(texts, relevance, 3, mmr_lambda=0.7, bleu=bleu) == [0, 3, 2]  # the near-copy is out
        assert mmr_select(texts, relevance, 10, mmr_lambda=0.7, bleu=bleu)[:1] == [0]
    assert mmr_select(texts, relevance, 10, bleu="smoothed") == [0, 3, 2, 1]
    assert mmr_select(texts, relevance, 10) == [0, 1, 2, 3]  # release, the default: len <= top_k, as it is
    assert mmr_select([], np.zeros(0), 3) == []
    with pytest.raises(ValueError, match="mmr_bleu must be one of"):
        mmr_select(texts, relevance, 2, bleu="sacre")
