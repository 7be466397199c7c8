"""The paper's headline finding as a measurement: contrastive CT embeddings concentrate their variance in a couple
of directions, so a generator reading them sees little finding signal.

For any (N, d) embedding matrix: variance share of the top-k principal components, effective rank (the
exponential of the entropy of the normalised singular values, Roy & Vetterli 2007) and participation ratio; and,
with labels, a linear-probe AUC per finding (logistic regression fit on train, scored on valid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def _singular_values(x: np.ndarray) -> np.ndarray:
    centered = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    return np.linalg.svd(centered, compute_uv=False)


def variance_shares(x: np.ndarray, ks: Iterable[int] = (1, 2, 5, 10)) -> dict[int, float]:
    """Share of total variance held by the top-k principal components, for each k."""
    var = _singular_values(x) ** 2
    total = var.sum()
    return {int(k): float(var[:k].sum() / total) for k in ks}


def top2_variance_share(x: np.ndarray) -> float:
    """Share of the total variance held by the top-2 principal components (~0.9 for CT-CLIP embeddings)."""
    return variance_shares(x, (2,))[2]


def effective_rank(x: np.ndarray) -> float:
    """exp(entropy) of the singular-value distribution: 1 for a rank-1 matrix, d for an isotropic one."""
    s = _singular_values(x)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(x: np.ndarray) -> float:
    """(sum var)^2 / sum var^2: the number of directions that carry the variance."""
    var = _singular_values(x) ** 2
    return float(var.sum() ** 2 / (var**2).sum())


def spectrum_summary(x: np.ndarray, ks: Iterable[int] = (1, 2, 5, 10)) -> dict[str, float | dict[int, float]]:
    return {
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "variance_share": variance_shares(x, ks),
        "effective_rank": effective_rank(x),
        "participation_ratio": participation_ratio(x),
    }


def cumulative_variance(x: np.ndarray) -> np.ndarray:
    var = _singular_values(x) ** 2
    return np.cumsum(var) / var.sum()


def probe_aucs(
    train_x: np.ndarray,
    train_y: np.ndarray,
    valid_x: np.ndarray,
    valid_y: np.ndarray,
    columns: Sequence[int],
    min_positives: int = 5,
) -> dict[int, float]:
    """Linear-probe AUC per label column: logistic regression fit on train, scored on valid.

    Columns with fewer than ``min_positives`` positives (or negatives) in either split are skipped: their AUC
    would be noise.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    xt, xv = scaler.transform(train_x), scaler.transform(valid_x)
    out = {}
    for j in columns:
        yt, yv = train_y[:, j], valid_y[:, j]
        if min(yt.sum(), (1 - yt).sum(), yv.sum(), (1 - yv).sum()) < min_positives:
            continue
        model = LogisticRegression(C=0.05, max_iter=2000).fit(xt, yt)
        out[j] = float(roc_auc_score(yv, model.decision_function(xv)))
    return out


def probe_table(
    train: Mapping[str, np.ndarray],
    valid: Mapping[str, np.ndarray],
    train_y: np.ndarray,
    valid_y: np.ndarray,
    findings: Sequence[str],
    min_positives: int = 5,
) -> dict[str, dict[str, float]]:
    """``{slot: {finding: AUC}}`` for every slot present in both splits."""
    columns = list(range(len(findings)))
    return {
        slot: {
            findings[j]: round(auc, 4)
            for j, auc in probe_aucs(
                train[slot], train_y, valid[slot], valid_y, columns, min_positives
            ).items()
        }
        for slot in train
        if slot in valid
    }
