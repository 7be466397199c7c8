"""Paired comparison of two prediction files over the same volumes (docs/evaluation.md).

Both systems are scored on the same bootstrap resamples, so the volume-to-volume variation that they share
cancels and the CI of the difference is much tighter than comparing two separate CIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adaragct.errors import DataError
from adaragct.eval.bootstrap import BOOTSTRAP_METRICS, paired_bootstrap, resampled_metrics
from adaragct.eval.clinical import Confusion
from adaragct.eval.labelers import Labeler
from adaragct.eval.text_metrics import bleu_stats, cider_d_scores, normalize_text, rouge_l_scores
from adaragct.formats.predictions import read_predictions


def _system(path: str | Path, order: list[str], truth: np.ndarray, labeler: Labeler):
    preds = read_predictions(path)
    if preds.references is None:
        raise DataError(
            path, "field 'reference_text'", "missing", "compare files that carry their references"
        )
    pos = {vid: i for i, vid in enumerate(preds.ids)}
    rows = [pos[v] for v in order]
    hyp = [normalize_text(preds.predictions[i]) for i in rows]
    ref = [normalize_text(preds.references[i]) for i in rows]
    conf = Confusion.from_labels(labeler.labels([preds.predictions[i] for i in rows]), truth)
    stats, rouge, cider = bleu_stats(hyp, ref), rouge_l_scores(hyp, ref), cider_d_scores(hyp, ref)
    return lambda w, name: resampled_metrics(stats, rouge, conf, w, cider)[name]


def compare_predictions(
    path_a: str | Path,
    path_b: str | Path,
    truth_by_id: dict[str, np.ndarray],
    labeler: Labeler,
    *,
    num_resamples: int = 1000,
    seed: int = 42,
) -> dict[str, Any]:
    """Paired bootstrap of B minus A for every metric of ``BOOTSTRAP_METRICS`` (BLEU-1/4, ROUGE-L, CIDEr-D,
    clinical P/R/F1 (weighted), micro and macro F1).

    Args:
        path_a, path_b: prediction files; they must cover the same volumes.
        truth_by_id: ground-truth label row per normalised volume id.
        labeler: labels the generated reports.

    Returns:
        ``{metric: {difference, ci_lower, ci_upper, p_value}}`` plus ``num_samples``.
    """
    ids_a, ids_b = set(read_predictions(path_a).ids), set(read_predictions(path_b).ids)
    if ids_a != ids_b:
        only = sorted(ids_a ^ ids_b)
        raise DataError(
            path_b,
            "volume ids",
            f"{len(only)} volumes are in only one of the two files, first: {only[:5]}",
            "compare predictions of the same volumes",
        )
    order = sorted(ids_a)
    missing = [v for v in order if v not in truth_by_id]
    if missing:
        raise DataError(
            path_a,
            "volume ids",
            f"{len(missing)} volumes have no ground truth, first: {missing[:5]}",
            "pass the labels CSV of the same split",
        )
    truth = np.stack([truth_by_id[v] for v in order])
    metric_a = _system(path_a, order, truth, labeler)
    metric_b = _system(path_b, order, truth, labeler)
    out: dict[str, Any] = {"num_samples": len(order)}
    for name in BOOTSTRAP_METRICS:
        res = paired_bootstrap(
            lambda w, n=name: metric_a(w, n),
            lambda w, n=name: metric_b(w, n),
            len(order),
            name,
            num_resamples=num_resamples,
            seed=seed,
        )
        out[name] = {
            "difference": res.difference,
            "ci_lower": res.ci_lower,
            "ci_upper": res.ci_upper,
            "p_value": res.p_value,
        }
    return out
