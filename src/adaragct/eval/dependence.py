"""What a set of predictions owes to the volumes it was written for: distinct reports and "F1 owed".

A model that ignores its image input can still score a respectable clinical F1 by writing one well-chosen
template for every volume (the findings a template asserts match some volumes' labels by chance). Two numbers tell
such a model from one that reads its input, from a predictions file alone:

- **distinct reports**: how many different reports were written for how many volumes (a template model writes a
  handful).
- **F1 owed** (clinical F1 owed to the volume): weighted clinical F1 against each volume's own labels minus the
  same F1 against the labels of another patient's volume (a patient-level derangement, averaged over
  ``num_derangements`` seeded draws). A prediction that does not depend on its volume scores the same against any
  patient's labels, so its F1 owed is ~0 however high its F1; copying the training report whose image is nearest
  keeps a clearly positive one. The bootstrap interval resamples volumes, each resample scoring the own and the
  deranged labels on the same draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaragct.eval.bootstrap import Interval, clinical_from_weighted, resample_weights, summarise
from adaragct.eval.clinical import Confusion
from adaragct.ids import patient_derangement


@dataclass(frozen=True)
class Dependence:
    """Distinct reports and clinical F1 owed to the volume (None where the volumes span too few patients)."""

    distinct_reports: int
    f1_owed: float | None
    f1_owed_interval: Interval | None
    f1_deranged: float | None


def distinct_reports(predictions: Sequence[str]) -> int:
    """Number of different reports (after strip + lower-case, as :func:`duplicate_rate` compares them)."""
    return len({p.strip().lower() for p in predictions})


def _weighted_f1(conf: Confusion, weights: np.ndarray) -> np.ndarray:
    return clinical_from_weighted(conf, weights)["clinical_f1"]


def clinical_dependence(
    volume_ids: Sequence[str],
    predictions: Sequence[str],
    predicted: np.ndarray,
    truth: np.ndarray,
    *,
    num_derangements: int = 5,
    num_resamples: int = 0,
    seed: int = 42,
) -> Dependence:
    """Distinct reports and F1 owed (with a bootstrap interval when ``num_resamples`` > 0).

    Args:
        volume_ids: the predictions' volume ids (patients are read from them, :func:`adaragct.ids.patient_id`).
        predictions: the generated texts.
        predicted: (n, 18) labels of the generated texts.
        truth: (n, 18) ground-truth labels of the same volumes.
        num_derangements: patient-level derangements of the labels averaged for the "another patient" score.
        num_resamples: bootstrap resamples of the volumes (0: no interval).
        seed: seeds the derangements (``seed + k``) and the resamples.
    """
    n = len(volume_ids)
    perms = [patient_derangement(list(volume_ids), seed + k) for k in range(num_derangements)]
    if n == 0 or any(p is None for p in perms):
        return Dependence(distinct_reports(predictions), None, None, None)
    own = Confusion.from_labels(predicted, truth)
    others = [Confusion.from_labels(predicted, truth[np.asarray(p)]) for p in perms]

    def owed(weights: np.ndarray) -> np.ndarray:
        deranged = np.mean([_weighted_f1(c, weights) for c in others], axis=0)
        return _weighted_f1(own, weights) - deranged

    ones = np.ones((1, n))
    deranged_f1 = float(np.mean([_weighted_f1(c, ones)[0] for c in others]))
    interval = summarise(owed(resample_weights(n, num_resamples, seed))) if num_resamples > 0 else None
    return Dependence(distinct_reports(predictions), float(owed(ones)[0]), interval, deranged_f1)
