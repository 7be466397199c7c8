"""Text metrics: identical to pycocoevalcap on real reports; sacreBLEU; METEOR present or honestly absent."""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from adaragct.eval.meteor import MeteorUnavailable, compute_meteor
from adaragct.eval.text_metrics import (
    bleu_stats,
    cider_d_scores,
    compute_text_metrics,
    corpus_bleu,
    lcs_length,
    normalize_text,
    rouge_l_scores,
)


def _coco(preds: list[str], refs: list[str]) -> tuple[list[float], float, float]:
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap's Bleu prints its totals
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return bleu, rouge, cider


def test_normalize_text_protocol() -> None:
    assert normalize_text("  Normal CT.\n") == "normal ct."
    assert normalize_text("") == " " and normalize_text(None) == " " and normalize_text("   ") == " "


def test_lcs_matches_pycocoevalcap_dp() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(1, 30))]
        expected = my_lcs(a, b) if a else 0
        assert lcs_length(a, b) == expected


def test_identical_to_pycocoevalcap_on_800_reports(manual_labels) -> None:
    refs = [normalize_text(t) for t in manual_labels["report_text"]]
    preds = [refs[(i + 7) % len(refs)] for i in range(len(refs))]  # each paired with another real report
    preds[0] = normalize_text("")  # an empty prediction is scored as " "
    preds[1] = refs[1]  # and one perfect prediction
    bleu = corpus_bleu(bleu_stats(preds, refs))
    rouge = rouge_l_scores(preds, refs).mean()
    cider = cider_d_scores(preds, refs).mean()
    coco_bleu, coco_rouge, coco_cider = _coco(preds, refs)
    print(f"\nours  BLEU-1..4 {bleu} ROUGE-L {rouge} CIDEr-D {cider}")
    print(f"coco  BLEU-1..4 {coco_bleu} ROUGE-L {coco_rouge} CIDEr-D {coco_cider}")
    np.testing.assert_allclose(bleu, coco_bleu, rtol=0, atol=1e-9)
    assert abs(rouge - coco_rouge) <= 1e-9
    assert abs(cider - coco_cider) <= 1e-9
    assert 0.05 < bleu[3] < 0.5 and 0 < cider < 1  # real, non-degenerate values


def test_per_sample_rouge_and_cider_match_on_short_texts() -> None:
    refs = ["the heart is normal .", "no pleural effusion", "a b c d e f", "x"]
    preds = ["the heart size is normal .", "no effusion", "  ", "x"]
    preds = [normalize_text(p) for p in preds]
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    _, rouge = Rouge().compute_score(gts, res)
    _, cider = Cider().compute_score(gts, res)
    np.testing.assert_allclose(rouge_l_scores(preds, refs), rouge, atol=1e-12)
    np.testing.assert_allclose(cider_d_scores(preds, refs), cider, atol=1e-12)


def test_compute_text_metrics_sacrebleu_and_perfect_match() -> None:
    refs = ["no pleural effusion was detected in either hemithorax .", "the heart size is normal ."]
    out = compute_text_metrics(refs, refs, with_meteor=False)
    assert out.bleu == pytest.approx([1.0] * 4, abs=1e-6)
    assert out.rouge_l == pytest.approx(1.0) and out.bleu_sacre == pytest.approx(1.0)
    assert out.meteor is None and out.meteor_unavailable.startswith("not requested")  # absent, not invented
    worse = compute_text_metrics(["the lungs are clear .", "heart ."], refs, with_meteor=False)
    assert 0 <= worse.bleu_sacre < 0.5


def test_meteor_absent_without_java(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no java on it
    with pytest.raises(MeteorUnavailable, match="no java on PATH"):
        compute_meteor(["a b"], ["a b"])
    out = compute_text_metrics(["a b"], ["a b"])
    assert out.meteor is None and "no java on PATH" in out.meteor_unavailable
