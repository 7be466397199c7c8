"""Synthetic CT embeddings for the demo cohort, with the bottleneck the paper measured (docs/method.md, docs/formats.md#demo-cohort).

Whole-volume (CT-CLIP-like, 512-d): two nuisance directions (think scanner and reconstruction kernel) carry
``nuisance_share`` of the variance, the 18 findings add a weak signal along fixed random directions, the rest is
isotropic noise. Organ embeddings (ViSD-Boost-like, 256-d): each organ's findings add a strong signal, the other
findings a faint one. Noise is split into a patient part and a reconstruction part, so the two reconstructions of
one scan get different but correlated embeddings. Units: the noise has unit variance per dimension, so a signal
strength ``s`` is the separation of positives from negatives in noise standard deviations along its direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaragct.constants import FINDING_TO_ORGAN, FINDINGS, ORGAN_SLOTS
from adaragct.synthetic.cohort import Cohort

PATIENT_NOISE_SHARE = 0.7  # share of the noise variance shared by the reconstructions of one scan
NUISANCE_SPLIT = (0.6, 0.4)  # variance of the first and second nuisance direction, relative
CROSS_ORGAN_SIGNAL = 0.15  # signal of another organ's finding in an organ embedding, relative to organ_signal


@dataclass(frozen=True)
class SyntheticEncoder:
    """The fixed "encoder" shared by all splits: finding directions, nuisance directions and offsets."""

    whole_dirs: np.ndarray  # (18, whole_dim) unit rows
    nuisance_dirs: np.ndarray  # (2, whole_dim) orthonormal
    nuisance_std: np.ndarray  # (2,)
    whole_mean: np.ndarray  # (whole_dim,)
    organ_dirs: dict[str, np.ndarray]  # organ -> (18, organ_dim) unit rows
    organ_mean: dict[str, np.ndarray]
    whole_signal: float
    organ_signal: float


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_encoder(
    rng: np.random.Generator,
    whole_dim: int,
    organ_dim: int,
    nuisance_share: float,
    whole_signal: float,
    organ_signal: float,
    prevalence: np.ndarray,
) -> SyntheticEncoder:
    """Draw the encoder; the nuisance scale is set so that two directions hold ``nuisance_share`` of the variance.

    The non-nuisance variance is the noise (``whole_dim``, unit per dimension) plus the finding signal
    (``whole_signal**2 * sum p(1-p)``); the nuisance variance is ``share / (1 - share)`` times that.
    """
    q, _ = np.linalg.qr(rng.standard_normal((whole_dim, 2)))
    rest = whole_dim + whole_signal**2 * float((prevalence * (1 - prevalence)).sum())
    nuisance_var = nuisance_share / (1.0 - nuisance_share) * rest
    return SyntheticEncoder(
        whole_dirs=_unit_rows(rng, len(FINDINGS), whole_dim),
        nuisance_dirs=q.T,
        nuisance_std=np.sqrt(nuisance_var * np.asarray(NUISANCE_SPLIT)),
        whole_mean=rng.standard_normal(whole_dim) * 2.0,
        organ_dirs={o: _unit_rows(rng, len(FINDINGS), organ_dim) for o in ORGAN_SLOTS},
        organ_mean={o: rng.standard_normal(organ_dim) * 2.0 for o in ORGAN_SLOTS},
        whole_signal=whole_signal,
        organ_signal=organ_signal,
    )


def _noise(rng: np.random.Generator, patients: np.ndarray, n_patients: int, dim: int) -> np.ndarray:
    """Unit-variance noise per volume: a patient part shared by reconstructions plus a reconstruction part."""
    shared = rng.standard_normal((n_patients, dim)) * np.sqrt(PATIENT_NOISE_SHARE)
    own = rng.standard_normal((len(patients), dim)) * np.sqrt(1.0 - PATIENT_NOISE_SHARE)
    return shared[patients] + own


def whole_embeddings(
    encoder: SyntheticEncoder, cohort: Cohort, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``ct_clip_max``, ``ct_clip_avg``, ``ct_clip_avgmax`` (N, whole_dim) float32 for every volume.

    The two poolings share nuisance and signal and differ in noise (as two poolings of one volume would);
    ``avgmax`` is their mean.
    """
    patients = np.array([v.patient for v in cohort.volumes])
    labels = cohort.volume_labels().astype(np.float64)
    dim = encoder.whole_dirs.shape[1]
    nuisance_coef = _noise(rng, patients, len(cohort.patient_ids), 2) * encoder.nuisance_std
    base = encoder.whole_mean + nuisance_coef @ encoder.nuisance_dirs
    base = base + encoder.whole_signal * labels @ encoder.whole_dirs
    pooled = {}
    for key in ("ct_clip_max", "ct_clip_avg"):
        pooled[key] = base + _noise(rng, patients, len(cohort.patient_ids), dim)
    pooled["ct_clip_avgmax"] = (pooled["ct_clip_max"] + pooled["ct_clip_avg"]) / 2.0
    return {k: v.astype(np.float32) for k, v in pooled.items()}


def organ_embeddings(
    encoder: SyntheticEncoder, cohort: Cohort, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``lung``, ``heart``, ``esophagus``, ``aorta`` (N, organ_dim) float32: strong signal of the organ's findings."""
    patients = np.array([v.patient for v in cohort.volumes])
    labels = cohort.volume_labels().astype(np.float64)
    out = {}
    for organ in ORGAN_SLOTS:
        weight = np.array([1.0 if FINDING_TO_ORGAN[f] == organ else CROSS_ORGAN_SIGNAL for f in FINDINGS])
        dirs = encoder.organ_dirs[organ]
        signal = encoder.organ_signal * (labels * weight) @ dirs
        noise = _noise(rng, patients, len(cohort.patient_ids), dirs.shape[1])
        out[organ] = (encoder.organ_mean[organ] + signal + noise).astype(np.float32)
    return out
