"""Clinical efficacy metrics over the 18 CT-RATE findings (docs/evaluation.md).

The paper's headline "Clin-F1" is the support-weighted F1 (sklearn ``average="weighted"``, zero division -> 0):
each finding's F1 weighted by its number of ground-truth positives. We also report micro and macro averages,
per-finding P/R/F1/support and the VLM3D challenge's CRG score, all computed from per-sample confusion indicators so
the bootstrap can resample them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaragct.constants import FINDINGS


@dataclass(frozen=True)
class Confusion:
    """Per-sample confusion indicators, (n, 18) each, int8: summable over any subset of samples."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def from_labels(cls, predicted: np.ndarray, truth: np.ndarray) -> Confusion:
        """Build from 0/1 label matrices of the same shape (n, 18)."""
        predicted = np.asarray(predicted, dtype=bool)
        truth = np.asarray(truth, dtype=bool)
        if predicted.shape != truth.shape:
            raise ValueError(f"label shapes differ: predicted {predicted.shape}, truth {truth.shape}")
        return cls(
            (predicted & truth).astype(np.int8),
            (predicted & ~truth).astype(np.int8),
            (~predicted & truth).astype(np.int8),
        )


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def prf_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Per-finding and averaged P/R/F1 from summed counts; leading axes (e.g. bootstrap resamples) broadcast.

    Args:
        tp, fp, fn: counts of shape (..., 18).

    Returns:
        ``precision``/``recall``/``f1``/``support`` per finding (..., 18) and ``{weighted,micro,macro}_{p,r,f1}``
        of shape (...). Zero division gives 0, as sklearn's ``zero_division=0``.
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    support = tp + fn
    total = support.sum(-1)
    out: dict[str, np.ndarray] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    for name, values in (("p", precision), ("r", recall), ("f1", f1)):
        out[f"weighted_{name}"] = _safe_div((values * support).sum(-1), total)
        out[f"macro_{name}"] = values.mean(-1)
    stp, sfp, sfn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    out["micro_p"] = _safe_div(stp, stp + sfp)
    out["micro_r"] = _safe_div(stp, stp + sfn)
    out["micro_f1"] = _safe_div(2 * stp, 2 * stp + sfp + sfn)
    return out


def crg_score(tp: float, fp: float, fn: float, num_samples: int, num_findings: int = len(FINDINGS)) -> float:
    """CRG of the VLM3D challenge: rewards true positives of rare findings over the all-negative baseline.

    X = findings x samples, A = ground-truth positives, r = (X - A) / (2A), U = (X - A) / 2,
    s = r*TP - r*FN - FP, CRG = U / (2U - s). Undefined (NaN) when there are no positives or only positives.
    """
    x = float(num_findings * num_samples)
    a = float(tp + fn)
    if a <= 0 or x - a <= 0:
        return float("nan")
    r = (x - a) / (2 * a)
    u = (x - a) / 2
    s = r * tp - r * fn - fp
    return u / (2 * u - s)


@dataclass
class ClinicalMetrics:
    """Clinical metrics of one prediction set."""

    weighted: dict[str, float]
    micro: dict[str, float]
    macro: dict[str, float]
    per_finding: dict[str, dict[str, float]]
    crg: float
    confusion: Confusion
    truth: np.ndarray


def compute_clinical_metrics(predicted: np.ndarray, truth: np.ndarray) -> ClinicalMetrics:
    """All clinical metrics from 0/1 matrices (n, 18) in FINDINGS order."""
    conf = Confusion.from_labels(predicted, truth)
    tp, fp, fn = conf.tp.sum(0), conf.fp.sum(0), conf.fn.sum(0)
    res = prf_from_counts(tp, fp, fn)
    per_finding = {
        finding: {
            "precision": float(res["precision"][j]),
            "recall": float(res["recall"][j]),
            "f1": float(res["f1"][j]),
            "support": int(res["support"][j]),
        }
        for j, finding in enumerate(FINDINGS)
    }
    return ClinicalMetrics(
        weighted={k: float(res[f"weighted_{k}"]) for k in ("p", "r", "f1")},
        micro={k: float(res[f"micro_{k}"]) for k in ("p", "r", "f1")},
        macro={k: float(res[f"macro_{k}"]) for k in ("p", "r", "f1")},
        per_finding=per_finding,
        crg=crg_score(float(tp.sum()), float(fp.sum()), float(fn.sum()), len(conf.tp)),
        confusion=conf,
        truth=np.asarray(truth, dtype=np.int8),
    )
