"""A cohort's volumes: a report joined with its 5-slot embeddings, and the patient-level validation split.

The datasets (:mod:`adaragct.data.datasets`) build their volumes with :func:`embedded_volumes`, so ids,
alignment and the missing-embedding policy are decided once, whatever the layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from adaragct.constants import ORGAN_SLOTS
from adaragct.formats.embeddings import align_volumes, read_embeddings_npz
from adaragct.ids import patient_id


@dataclass(frozen=True)
class Volume:
    """One CT volume: id, reference report and its visual slots (``whole_ct`` 512-d, organs 256-d)."""

    volume_id: str
    report: str
    visual: Mapping[str, np.ndarray]


def embedded_volumes(
    reports: Mapping[str, str],
    whole_npz: str | Path,
    whole_key: str,
    organ_npz: str | Path,
    visual_dims: Mapping[str, int] | None = None,
    missing: Literal["error", "skip"] = "error",
) -> list[Volume]:
    """Volumes of ``reports`` (in their order) joined with their whole-volume and organ embeddings.

    A volume with a report but no embedding follows ``missing`` (error, or skip with a logged count); it is never
    zero-filled.
    """
    dims = dict(visual_dims or {})
    whole = read_embeddings_npz(whole_npz, [whole_key], dims.get("whole_ct"))
    organs = read_embeddings_npz(organ_npz, ORGAN_SLOTS, dims.get("lung"))
    ids = align_volumes(list(reports), [whole, organs], missing=missing)
    whole_rows = whole.rows(whole_key, ids)
    organ_rows = {slot: organs.rows(slot, ids) for slot in ORGAN_SLOTS}
    return [
        Volume(vid, reports[vid], {"whole_ct": whole_rows[i], **{s: organ_rows[s][i] for s in ORGAN_SLOTS}})
        for i, vid in enumerate(ids)
    ]


def patient_split(volume_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (train, val) by patient, so reconstructions of one scan never straddle the split.

    A patient goes to val when the hash of ``seed:patient`` falls below ``val_fraction``: deterministic,
    independent of order, and stable when volumes are added.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"conf/datamodule: val_fraction must be in [0, 1), got {val_fraction}")

    def to_val(pid: str) -> bool:
        digest = hashlib.sha1(f"{seed}:{pid}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction

    train, val = [], []
    for i, vid in enumerate(volume_ids):
        (val if to_val(patient_id(vid)) else train).append(i)
    return train, val
