"""Bootstrap confidence intervals and paired comparison from per-sample sufficient statistics (docs/evaluation.md).

Why sufficient statistics: corpus BLEU and support-weighted F1 are not means of per-sample scores, so a naive
bootstrap recomputes the metric on each resample (1000 full metric passes). Both are functions of *sums* of
per-sample statistics (clipped n-gram matches and lengths; per-finding TP/FP/FN), so one resample is a weighted
sum: with W the (B, n) matrix of how often each sample is drawn, every resample's statistics are ``W @ stats``.
One matrix product replaces B metric passes, and the results equal recomputing the metric on each resample.

CIDEr-D is the exception: its document frequencies come from the references of the scored set, so a resample
with repeated volumes would change them. Its interval resamples the per-sample CIDEr-D of the full set (document
frequencies fixed), the usual approximation; every other interval is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adaragct.eval.clinical import Confusion, prf_from_counts
from adaragct.eval.text_metrics import BleuStats

BOOTSTRAP_METRICS = (
    "bleu_1",
    "bleu_4",
    "rouge_l",
    "cider",
    "clinical_precision",
    "clinical_recall",
    "clinical_f1",
    "clinical_micro_f1",
    "clinical_macro_f1",
)
_SMALL = 1e-9
_TINY = 1e-15


def resample_weights(n: int, num_resamples: int, seed: int = 42) -> np.ndarray:
    """(B, n) draw counts of B bootstrap resamples of n samples (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(num_resamples, n))
    weights = np.zeros((num_resamples, n), dtype=np.float64)
    rows = np.repeat(np.arange(num_resamples), n)
    np.add.at(weights, (rows, idx.ravel()), 1.0)
    return weights


def bleu_from_weighted(
    stats: BleuStats, weights: np.ndarray, orders: tuple[int, ...] = (1, 4)
) -> dict[int, np.ndarray]:
    """Corpus BLEU-k of each resample (vectorised pycocoevalcap formula)."""
    correct = weights @ stats.correct.astype(np.float64)
    guess = weights @ stats.guess.astype(np.float64)
    testlen = weights @ stats.testlen.astype(np.float64)
    reflen = weights @ stats.reflen.astype(np.float64)
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / np.maximum(ratio, _TINY)), 1.0)
    log_prod = np.zeros(len(weights))
    out = {}
    for k in range(max(orders)):
        log_prod = log_prod + np.log((correct[:, k] + _TINY) / (guess[:, k] + _SMALL))
        if k + 1 in orders:
            out[k + 1] = np.exp(log_prod / (k + 1)) * penalty
    return out


def clinical_from_weighted(conf: Confusion, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Support-weighted P/R/F1, micro F1 and macro F1 of each resample."""
    res = prf_from_counts(
        weights @ conf.tp.astype(np.float64),
        weights @ conf.fp.astype(np.float64),
        weights @ conf.fn.astype(np.float64),
    )
    return {
        "clinical_precision": res["weighted_p"],
        "clinical_recall": res["weighted_r"],
        "clinical_f1": res["weighted_f1"],
        "clinical_micro_f1": res["micro_f1"],
        "clinical_macro_f1": res["macro_f1"],
    }


def resampled_metrics(
    stats: BleuStats,
    rouge: np.ndarray,
    conf: Confusion | None,
    weights: np.ndarray,
    cider: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every bootstrapped metric for each resample: {metric: (B,)}; ``cider`` only when its per-sample scores
    (CIDEr-D of the full set, see the module docstring) are given, the clinical ones only with ``conf``."""
    bleu = bleu_from_weighted(stats, weights)
    out = {"bleu_1": bleu[1], "bleu_4": bleu[4], "rouge_l": weights @ rouge / weights.sum(1)}
    if cider is not None:
        out["cider"] = weights @ cider / weights.sum(1)
    if conf is not None:
        out.update(clinical_from_weighted(conf, weights))
    return out


@dataclass(frozen=True)
class Interval:
    """A bootstrap summary of one metric."""

    ci_lower: float
    ci_upper: float
    bootstrap_mean: float
    bootstrap_std: float


def summarise(samples: np.ndarray, alpha: float = 0.05) -> Interval:
    """Percentile interval (2.5%, 97.5% for alpha 0.05), mean and std of bootstrap samples."""
    lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(lo), float(hi), float(np.mean(samples)), float(np.std(samples, ddof=1)))


def bootstrap_intervals(
    stats: BleuStats,
    rouge: np.ndarray,
    conf: Confusion | None,
    *,
    num_resamples: int = 1000,
    seed: int = 42,
    alpha: float = 0.05,
    cider: np.ndarray | None = None,
) -> dict[str, Interval]:
    """95% percentile CIs for BLEU-1/4, ROUGE-L, clinical P/R/F1 (weighted), micro and macro F1 and, given its
    per-sample scores, CIDEr-D, over ``num_resamples`` resamples."""
    weights = resample_weights(len(rouge), num_resamples, seed)
    return {
        name: summarise(values, alpha)
        for name, values in resampled_metrics(stats, rouge, conf, weights, cider).items()
    }


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap of metric(B) - metric(A) over the same volumes."""

    metric: str
    difference: float
    ci_lower: float
    ci_upper: float
    p_value: float


def paired_bootstrap(
    metric_a: Callable[[np.ndarray], np.ndarray],
    metric_b: Callable[[np.ndarray], np.ndarray],
    n: int,
    name: str,
    *,
    num_resamples: int = 1000,
    seed: int = 42,
) -> PairedResult:
    """Paired bootstrap: both systems are scored on the *same* resampled volumes.

    Args:
        metric_a, metric_b: map a (B, n) weight matrix to (B,) metric values; a weight row of ones gives the point
            estimate.
        n: number of shared volumes.

    Returns:
        The observed difference (B - A), its 95% percentile CI and a two-sided p-value: twice the share of
        resamples whose difference falls on the other side of zero from the observed one (capped at 1).
    """
    ones = np.ones((1, n))
    observed = float(metric_b(ones)[0] - metric_a(ones)[0])
    weights = resample_weights(n, num_resamples, seed)
    diffs = metric_b(weights) - metric_a(weights)
    tail = np.mean(diffs <= 0) if observed >= 0 else np.mean(diffs >= 0)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return PairedResult(name, observed, float(lo), float(hi), float(min(1.0, 2 * tail)))


def duplicate_rate(predictions: list[str]) -> float:
    """Share of predictions that are an exact copy of another prediction (after strip + lower).

    A model that collapses to one template report scores a plausible BLEU; this number exposes it.
    """
    if not predictions:
        return 0.0
    from collections import Counter

    counts = Counter(p.strip().lower() for p in predictions)
    duplicated = sum(c for c in counts.values() if c > 1)
    return duplicated / len(predictions)
