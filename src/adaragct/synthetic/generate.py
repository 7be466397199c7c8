"""Draw the whole demo cohort in memory from the generator config: patients, reports, embeddings (docs/formats.md#demo-cohort).

Every random stream is keyed by ``(seed, stream)``, so the same seed gives the same cohort, and changing, say,
the validation size leaves the training patients as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaragct.constants import FINDINGS
from adaragct.synthetic.cohort import PREVALENCE, Cohort, calibrate_intercepts, sample_cohort
from adaragct.synthetic.embeddings import make_encoder, organ_embeddings, whole_embeddings
from adaragct.synthetic.grammar import ReportStyle
from adaragct.synthetic.report import write_report

SPLITS: tuple[str, ...] = ("train", "valid")
_STREAMS = {"encoder": 0, "train": 1, "valid": 2, "extra": 3}

CLINICAL = (
    "Cough.",
    "Shortness of breath.",
    "Chest pain.",
    "Follow-up of a lung nodule.",
    "Fever and cough.",
    "Screening.",
    "Dyspnea on exertion.",
    "Known malignancy, staging.",
)
TECHNIQUE = (
    "Non-contrast thin-section chest CT was acquired in the supine position.",
    "Chest CT without intravenous contrast, 1 mm sections.",
    "Contrast-enhanced chest CT in the venous phase.",
)


@dataclass(frozen=True)
class SplitData:
    """One split of the demo cohort: patients, one report per patient, embeddings per volume."""

    cohort: Cohort
    clinical: tuple[str, ...]  # per patient
    technique: tuple[str, ...]  # per patient
    findings: tuple[str, ...]  # per patient
    impressions: tuple[str, ...]  # per patient
    whole: dict[str, np.ndarray]  # ct_clip_max/avg/avgmax, (N, whole_dim)
    organs: dict[str, np.ndarray]  # lung/heart/esophagus/aorta, (N, organ_dim)

    @property
    def volume_ids(self) -> list[str]:
        return [v.volume_id for v in self.cohort.volumes]

    def volume_reports(self) -> list[str]:
        """The reference report (docs/formats.md#ct-rate-layout: findings + " " + impression) of each volume."""
        return [
            f"{self.findings[v.patient]} {self.impressions[v.patient]}".strip() for v in self.cohort.volumes
        ]


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAMS[stream]])


def _split(
    split: str,
    n_patients: int,
    gen: Mapping[str, Any],
    intercepts: np.ndarray,
    encoder,
    style: ReportStyle,
) -> SplitData:
    rng = _rng(gen["seed"], split)
    cohort = sample_cohort(split, n_patients, float(gen["second_recon_prob"]), rng, intercepts)
    texts = [write_report(cohort.labels[p], int(cohort.ages[p]), rng, style) for p in range(n_patients)]
    clinical = tuple(
        f"{int(a)}-year-old {s}. {CLINICAL[int(rng.integers(len(CLINICAL)))]}"
        for a, s in zip(cohort.ages, cohort.sexes, strict=True)
    )
    technique = tuple(TECHNIQUE[int(rng.integers(len(TECHNIQUE)))] for _ in range(n_patients))
    return SplitData(
        cohort=cohort,
        clinical=clinical,
        technique=technique,
        findings=tuple(f for f, _ in texts),
        impressions=tuple(i for _, i in texts),
        whole=whole_embeddings(encoder, cohort, rng),
        organs=organ_embeddings(encoder, cohort, rng),
    )


def generate_cohort(gen: Mapping[str, Any]) -> dict[str, SplitData]:
    """Draw train and valid splits from the ``data.generator`` config block (see conf/data/demo.yaml)."""
    intercepts = calibrate_intercepts(seed=int(gen["seed"]))
    prevalence = np.array([PREVALENCE[f] for f in FINDINGS])
    encoder = make_encoder(
        _rng(gen["seed"], "encoder"),
        int(gen["whole_dim"]),
        int(gen["organ_dim"]),
        float(gen["nuisance_share"]),
        float(gen["whole_signal"]),
        float(gen["organ_signal"]),
        prevalence,
    )
    # the same radiologists write both splits
    style = ReportStyle(int(gen["seed"]), int(gen["radiologists"]), float(gen["stock_phrasing"]))
    sizes = {"train": int(gen["n_train_patients"]), "valid": int(gen["n_valid_patients"])}
    return {split: _split(split, sizes[split], gen, intercepts, encoder, style) for split in SPLITS}


def extra_reports(gen: Mapping[str, Any], n_patients: int) -> list[tuple[str, list[str]]]:
    """``(report, [finding names])`` of ``n_patients`` patients outside the study (text only, no embeddings):
    the same findings model and radiologists as the cohort, their own random stream, so the train and valid splits
    are the same with or without them. The tiny LM's extra pretraining text (``tiny_lm.extra_reports``)."""
    rng = _rng(gen["seed"], "extra")
    cohort = sample_cohort("extra", n_patients, 0.0, rng, calibrate_intercepts(seed=int(gen["seed"])))
    style = ReportStyle(int(gen["seed"]), int(gen["radiologists"]), float(gen["stock_phrasing"]))
    out = []
    for p in range(n_patients):
        findings, impression = write_report(cohort.labels[p], int(cohort.ages[p]), rng, style)
        names = [f for f, hit in zip(FINDINGS, cohort.labels[p], strict=True) if hit]
        out.append((f"{findings} {impression}".strip(), names))
    return out
