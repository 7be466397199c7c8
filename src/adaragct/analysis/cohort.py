"""Checks that a cohort looks like CT-RATE where it matters: text variety, the embedding bottleneck, organ signal.

These work on any reports, labels and embeddings (demo cohort, CT-RATE, the release bundle, a user's own data), so
the same numbers are printed by the prepare stage for every dataset and can be compared side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adaragct.analysis.bottleneck import probe_aucs
from adaragct.constants import FINDING_TO_ORGAN, FINDINGS, ORGAN_SLOTS
from adaragct.data.sentences import Tagged


def text_stats(reports: Sequence[str], tagged: Tagged) -> dict[str, float | int]:
    """Unique reports, unique sentences (as split by :func:`split_sentences`) and mean words per report."""
    unique = set(reports)
    sentences = {s for report in unique for s, _ in tagged[report]}
    words = np.array([len(r.split()) for r in reports]) if reports else np.zeros(1)
    return {
        "reports": len(reports),
        "unique_reports": len(unique),
        "unique_sentences": len(sentences),
        "words_per_report": round(float(words.mean()), 1),
    }


def organ_probe_table(
    train_whole: np.ndarray,
    train_organs: Mapping[str, np.ndarray],
    train_labels: np.ndarray,
    valid_whole: np.ndarray,
    valid_organs: Mapping[str, np.ndarray],
    valid_labels: np.ndarray,
    min_positives: int = 5,
) -> dict[str, dict[str, float | int]]:
    """Per organ: mean probe AUC over its findings from the organ embedding vs from the whole-volume embedding.

    The organ embedding should win: that is the organ-level signal the paper's slots add over CT-CLIP alone.
    """
    table: dict[str, dict[str, float | int]] = {}
    for organ in ORGAN_SLOTS:
        columns = [j for j, f in enumerate(FINDINGS) if FINDING_TO_ORGAN[f] == organ]
        organ_auc = probe_aucs(
            train_organs[organ], train_labels, valid_organs[organ], valid_labels, columns, min_positives
        )
        whole_auc = probe_aucs(
            train_whole, train_labels, valid_whole, valid_labels, list(organ_auc), min_positives
        )
        if organ_auc:
            table[organ] = {
                "organ_auc": round(float(np.mean(list(organ_auc.values()))), 3),
                "whole_auc": round(float(np.mean(list(whole_auc.values()))), 3),
                "findings": len(organ_auc),
            }
    return table
