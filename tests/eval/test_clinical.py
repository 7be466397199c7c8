"""Clinical metrics: sklearn-equal weighted/micro/macro P/R/F1 and the VLM3D CRG formula."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from adaragct.eval.clinical import compute_clinical_metrics, crg_score


def test_matches_sklearn_averages() -> None:
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 18)) < 0.2).astype(int)
    predicted = np.where(rng.random((300, 18)) < 0.8, truth, 1 - truth)
    predicted[:, 3] = 0  # a finding never predicted: zero division -> 0
    res = compute_clinical_metrics(predicted, truth)
    for avg in ("weighted", "micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(truth, predicted, average=avg, zero_division=0)
        assert getattr(res, avg) == pytest.approx({"p": p, "r": r, "f1": f}, abs=1e-12)
    p, r, f, s = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    first = next(iter(res.per_finding.values()))
    assert first == pytest.approx({"precision": p[0], "recall": r[0], "f1": f[0], "support": s[0]})


def test_crg_formula_worked_example() -> None:
    # N=10 volumes: X=180, A=20 -> r=4, U=80; TP=15, FN=5, FP=10 -> s=60-20-10=30, CRG=80/(160-30)
    assert crg_score(15, 10, 5, 10) == pytest.approx(80 / 130)
    # perfect prediction: s = r*A = U -> CRG = 1; all-negative prediction: s = -r*A = -U -> CRG = 1/3
    assert crg_score(20, 0, 0, 10) == pytest.approx(1.0)
    assert crg_score(0, 0, 20, 10) == pytest.approx(1 / 3)
    assert np.isnan(crg_score(0, 3, 0, 10))
