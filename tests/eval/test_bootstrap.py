"""Bootstrap from sufficient statistics equals recomputing each resample; paired test; duplicate rate."""

from __future__ import annotations

import numpy as np
import pytest

from adaragct.eval.bootstrap import (
    bootstrap_intervals,
    duplicate_rate,
    paired_bootstrap,
    resample_weights,
    resampled_metrics,
)
from adaragct.eval.clinical import Confusion, compute_clinical_metrics
from adaragct.eval.text_metrics import (
    bleu_stats,
    cider_d_scores,
    corpus_bleu,
    normalize_text,
    rouge_l_scores,
)

WORDS = [
    "the",
    "heart",
    "lung",
    "pleural",
    "effusion",
    "nodule",
    "normal",
    "no",
    "is",
    "are",
    "in",
    "of",
    "both",
    "lobe",
    "right",
    "left",
]


def _corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    refs = [" ".join(rng.choice(WORDS, rng.integers(5, 25))) for _ in range(n)]
    preds = [" ".join(rng.choice(WORDS, rng.integers(3, 25))) for _ in range(n)]
    return [normalize_text(p) for p in preds], [normalize_text(r) for r in refs]


def test_weighted_resamples_equal_recomputation() -> None:
    preds, refs = _corpus(60, 1)
    rng = np.random.default_rng(2)
    truth = (rng.random((60, 18)) < 0.3).astype(int)
    predicted = (rng.random((60, 18)) < 0.3).astype(int)
    stats, rouge = bleu_stats(preds, refs), rouge_l_scores(preds, refs)
    conf = Confusion.from_labels(predicted, truth)
    weights = resample_weights(60, 5, seed=42)
    fast = resampled_metrics(stats, rouge, conf, weights)
    for b, row in enumerate(weights):
        idx = np.repeat(np.arange(60), row.astype(int))  # the resample written out explicitly
        bleu = corpus_bleu(bleu_stats([preds[i] for i in idx], [refs[i] for i in idx]))
        clin = compute_clinical_metrics(predicted[idx], truth[idx])
        assert fast["bleu_1"][b] == pytest.approx(bleu[0], rel=1e-9)
        assert fast["bleu_4"][b] == pytest.approx(bleu[3], rel=1e-9)
        assert fast["rouge_l"][b] == pytest.approx(rouge[idx].mean(), rel=1e-12)
        assert fast["clinical_f1"][b] == pytest.approx(clin.weighted["f1"], rel=1e-12)
        assert fast["clinical_precision"][b] == pytest.approx(clin.weighted["p"], rel=1e-12)
        assert fast["clinical_micro_f1"][b] == pytest.approx(clin.micro["f1"], rel=1e-12)
        assert fast["clinical_macro_f1"][b] == pytest.approx(clin.macro["f1"], rel=1e-12)
    assert "cider" not in fast  # only with per-sample scores


def test_cider_interval_resamples_the_per_sample_scores() -> None:
    """CIDEr-D's resamples average the full set's per-sample scores (document frequencies kept fixed)."""
    preds, refs = _corpus(40, 6)
    rng = np.random.default_rng(7)
    truth = (rng.random((40, 18)) < 0.3).astype(int)
    conf = Confusion.from_labels(truth[::-1], truth)
    stats, rouge, cider = bleu_stats(preds, refs), rouge_l_scores(preds, refs), cider_d_scores(preds, refs)
    weights = resample_weights(40, 4, seed=42)
    fast = resampled_metrics(stats, rouge, conf, weights, cider)
    for b, row in enumerate(weights):
        idx = np.repeat(np.arange(40), row.astype(int))
        assert fast["cider"][b] == pytest.approx(cider[idx].mean(), rel=1e-12)
    intervals = bootstrap_intervals(stats, rouge, conf, num_resamples=200, cider=cider)
    assert intervals["cider"].ci_lower < cider.mean() < intervals["cider"].ci_upper


def test_intervals_are_seeded_and_bracket_point_estimates() -> None:
    preds, refs = _corpus(200, 3)
    rng = np.random.default_rng(4)
    truth = (rng.random((200, 18)) < 0.3).astype(int)
    predicted = np.where(rng.random((200, 18)) < 0.8, truth, 1 - truth)
    stats, rouge = bleu_stats(preds, refs), rouge_l_scores(preds, refs)
    conf = Confusion.from_labels(predicted, truth)
    a = bootstrap_intervals(stats, rouge, conf, num_resamples=300)
    b = bootstrap_intervals(stats, rouge, conf, num_resamples=300)
    assert a == b
    assert a["rouge_l"].ci_lower < rouge.mean() < a["rouge_l"].ci_upper
    assert a["bleu_4"].ci_lower < corpus_bleu(stats)[3] < a["bleu_4"].ci_upper
    assert a["clinical_f1"].bootstrap_std > 0


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(5)
    good = rng.random(400) + 0.1
    bad = good - 0.1 + rng.normal(0, 0.01, 400)
    mean = lambda v: lambda w: w @ v / w.sum(1)  # noqa: E731
    res = paired_bootstrap(mean(bad), mean(good), 400, "x")
    assert res.difference == pytest.approx(0.1, abs=0.01) and res.p_value < 0.01
    assert res.ci_lower > 0
    noise = rng.normal(0, 0.01, 400)
    same = paired_bootstrap(mean(good), mean(good + noise - noise.mean()), 400, "x")  # equal means
    assert same.p_value > 0.5 and same.ci_lower < 0 < same.ci_upper


def test_duplicate_rate() -> None:
    assert duplicate_rate(["A report.", "a report. ", "other", "third"]) == 0.5
    assert duplicate_rate(["x", "y"]) == 0.0 and duplicate_rate([]) == 0.0
