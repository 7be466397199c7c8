"""BLEU-2 redundancy and MMR selection."""

from __future__ import annotations

import numpy as np
import pytest

from adaragct.retrieval.mmr import bleu2, mmr_select


def test_bleu2_values() -> None:
    assert bleu2("No pleural effusion.", "no pleural effusion") == pytest.approx(1.0)
    assert bleu2("Hiatal hernia.", "The heart is enlarged.") == 0.0
    # 3 of 4 unigrams, 2 of 3 bigrams (+1 smoothing: 3/4), equal lengths: sqrt(0.75 * 0.75)
    assert bleu2("the heart is enlarged", "the heart is normal") == pytest.approx(0.75)
    # brevity penalty for a short hypothesis
    assert bleu2("heart enlarged", "the heart is enlarged") < bleu2("the heart is enlarged", "heart enlarged")
    assert bleu2("", "anything") == 0.0


def test_mmr_with_lambda_one_is_top_k_and_lower_lambda_skips_paraphrase_copies() -> None:
    texts = [
        "Mild emphysema in both upper lobes.",
        "Mild emphysema is seen in both upper lobes.",
        "Centrilobular emphysema in the lungs.",
        "Bullae in the apices.",
    ]
    relevance = np.array([0.90, 0.86, 0.80, 0.78])
    assert mmr_select(texts, relevance, 3, mmr_lambda=1.0) == [0, 1, 2]
    assert mmr_select(texts, relevance, 3, mmr_lambda=0.7) == [0, 3, 2]  # the near-copy (1) is left out
    assert mmr_select(texts, relevance, 10, mmr_lambda=0.7)[:1] == [0]
    assert len(mmr_select(texts, relevance, 10)) == 4 and mmr_select([], np.zeros(0), 3) == []
