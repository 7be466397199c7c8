"""Patients, volumes and findings of the demo cohort (docs/formats.md#demo-cohort).

Findings are drawn from a small latent-factor model so that they co-occur the way they do in CT-RATE: one
"atherosclerosis" factor drives coronary and aortic wall calcification together (and cardiomegaly a little),
a "fluid" factor drives pleural/pericardial effusion, atelectasis and consolidation, an "airway" factor drives
bronchiectasis, peribronchial thickening and mosaic attenuation, and age raises calcification, emphysema, nodules
and fibrotic sequelae. Each finding's intercept is calibrated (bisection on a fixed sample) so its marginal
prevalence matches CT-RATE's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaragct.constants import FINDINGS

# Approximate CT-RATE training-set prevalence of each finding (share of volumes labelled 1).
PREVALENCE: dict[str, float] = {
    "Medical material": 0.11,
    "Arterial wall calcification": 0.28,
    "Cardiomegaly": 0.11,
    "Pericardial effusion": 0.07,
    "Coronary artery wall calcification": 0.25,
    "Hiatal hernia": 0.14,
    "Lymphadenopathy": 0.26,
    "Emphysema": 0.20,
    "Atelectasis": 0.26,
    "Lung nodule": 0.45,
    "Lung opacity": 0.37,
    "Pulmonary fibrotic sequela": 0.27,
    "Pleural effusion": 0.12,
    "Mosaic attenuation pattern": 0.08,
    "Peribronchial thickening": 0.11,
    "Consolidation": 0.17,
    "Bronchiectasis": 0.10,
    "Interlobular septal thickening": 0.08,
}

LATENTS: tuple[str, ...] = ("age", "athero", "fluid", "airway", "infection")
# Loading of each finding on each latent (logit scale); a finding absent here depends on its intercept only.
LOADINGS: dict[str, dict[str, float]] = {
    "Arterial wall calcification": {"age": 1.6, "athero": 2.0},
    "Coronary artery wall calcification": {"age": 1.4, "athero": 2.0},
    "Cardiomegaly": {"age": 0.6, "athero": 0.6, "fluid": 1.0},
    "Pericardial effusion": {"fluid": 1.6},
    "Hiatal hernia": {"age": 0.9},
    "Lymphadenopathy": {"infection": 0.8, "fluid": 0.5},
    "Emphysema": {"age": 1.2, "airway": 0.6},
    "Atelectasis": {"fluid": 1.5, "infection": 0.6},
    "Lung nodule": {"age": 0.6},
    "Lung opacity": {"infection": 1.6, "fluid": 0.5},
    "Pulmonary fibrotic sequela": {"age": 0.9, "infection": 0.4},
    "Pleural effusion": {"fluid": 2.2},
    "Mosaic attenuation pattern": {"airway": 1.6},
    "Peribronchial thickening": {"airway": 1.6, "infection": 0.6},
    "Consolidation": {"infection": 2.0, "fluid": 0.6},
    "Bronchiectasis": {"airway": 1.6},
    "Interlobular septal thickening": {"fluid": 1.4, "infection": 0.6},
    "Medical material": {"fluid": 0.8, "age": 0.4},
}

AGE_RANGE = (22, 90)


@dataclass(frozen=True)
class Volume:
    """One reconstruction of one patient's scan; reconstructions share the patient's report and labels."""

    volume_id: str  # e.g. train_12_a_1
    patient: int  # index into the cohort's patient arrays
    recon: int  # 1 or 2


@dataclass(frozen=True)
class Cohort:
    """The patients of one split with their findings, and the volumes (1-2 per patient)."""

    split: str
    patient_ids: tuple[str, ...]  # e.g. train_12
    ages: np.ndarray  # (P,) int
    sexes: tuple[str, ...]  # "male" / "female"
    labels: np.ndarray  # (P, 18) int8 in FINDINGS order
    volumes: tuple[Volume, ...]

    def volume_labels(self) -> np.ndarray:
        """Labels per volume (N, 18): a volume carries its patient's labels."""
        return self.labels[[v.patient for v in self.volumes]]


def _loading_matrix() -> np.ndarray:
    return np.array([[LOADINGS.get(f, {}).get(k, 0.0) for k in LATENTS] for f in FINDINGS])


def _latents(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    z = rng.standard_normal((len(ages), len(LATENTS)))
    z[:, 0] = (ages - 55.0) / 15.0
    return z


def calibrate_intercepts(n_samples: int = 20000, seed: int = 0) -> np.ndarray:
    """Intercepts that give each finding its CT-RATE prevalence under the latent model (bisection per finding)."""
    rng = np.random.default_rng(seed)
    ages = rng.integers(*AGE_RANGE, size=n_samples, endpoint=True)
    scores = _latents(rng, ages) @ _loading_matrix().T  # (n, 18)
    intercepts = np.zeros(len(FINDINGS))
    for j, finding in enumerate(FINDINGS):
        lo, hi = -12.0, 12.0
        for _ in range(50):
            mid = (lo + hi) / 2
            prevalence = (1.0 / (1.0 + np.exp(-(mid + scores[:, j])))).mean()
            lo, hi = (mid, hi) if prevalence < PREVALENCE[finding] else (lo, mid)
        intercepts[j] = (lo + hi) / 2
    return intercepts


def sample_cohort(
    split: str, n_patients: int, second_recon_prob: float, rng: np.random.Generator, intercepts: np.ndarray
) -> Cohort:
    """Draw ``n_patients`` patients of ``split`` with their findings and 1-2 reconstructions each.

    Patient numbers start at 1 and are contiguous per split, as in CT-RATE (``train_1``, ``train_2`` ...).
    """
    ages = rng.integers(*AGE_RANGE, size=n_patients, endpoint=True)
    sexes = tuple(str(s) for s in rng.choice(["male", "female"], size=n_patients))
    logits = intercepts + _latents(rng, ages) @ _loading_matrix().T
    labels = (rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int8)
    second = rng.random(n_patients) < second_recon_prob
    volumes: list[Volume] = []
    for p in range(n_patients):
        for recon in (1, 2) if second[p] else (1,):
            volumes.append(Volume(f"{split}_{p + 1}_a_{recon}", p, recon))
    return Cohort(
        split=split,
        patient_ids=tuple(f"{split}_{p + 1}" for p in range(n_patients)),
        ages=ages,
        sexes=sexes,
        labels=labels,
        volumes=tuple(volumes),
    )
