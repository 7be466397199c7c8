"""Load one split of a cohort (reports + 5-slot embeddings) from the paths of a ``conf/data`` config.

This is where the data layouts meet: CT-RATE reports CSVs, the bundle's organ-reports JSON, CT-CLIP and
ViSD-Boost NPZs. Every stage (train, infer, index) gets its volumes from :func:`load_split`, so ids, alignment
and the missing-embedding policy are decided once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaragct.constants import ORGAN_SLOTS
from adaragct.errors import DataError
from adaragct.formats.embeddings import align_volumes, read_embeddings_npz
from adaragct.formats.organ_reports import read_organ_reports_json
from adaragct.formats.tables import read_reports_csv
from adaragct.ids import patient_id


@dataclass(frozen=True)
class Volume:
    """One CT volume: id, reference report and its visual slots (``whole_ct`` 512-d, organs 256-d)."""

    volume_id: str
    report: str
    visual: Mapping[str, np.ndarray]


def split_reports(data_cfg: Mapping[str, Any], split: str) -> dict[str, str]:
    """``{volume_id: reference report}`` of ``split``, from its reports CSV, or for the validation split of the
    release bundle (which ships no validation CSV) from ``raw_report`` of the organ-reports JSON."""
    csv_path = data_cfg.get(f"{split}_reports_csv")
    if csv_path:
        return read_reports_csv(csv_path)["report"].to_dict()
    if split != "valid" or not data_cfg.get("valid_organ_reports_json"):
        raise DataError(
            f"conf/data/{data_cfg.get('name')}.yaml",
            f"{split}_reports_csv",
            "not set",
            f"point data.{split}_reports_csv at a CT-RATE reports CSV (docs/formats.md#ct-rate-layout)",
        )
    return {
        vid: entry["raw_report"]
        for vid, entry in read_organ_reports_json(data_cfg["valid_organ_reports_json"]).items()
    }


def load_split(
    data_cfg: Mapping[str, Any], split: str, visual_dims: Mapping[str, int] | None = None
) -> list[Volume]:
    """Volumes of ``split`` ("train" or "valid") in reports order, with embeddings checked and aligned.

    A volume with a report but no embedding follows ``data.missing_embedding`` (error, or skip with a logged
    count); it is never zero-filled.
    """
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    dims = dict(visual_dims or {})
    reports = split_reports(data_cfg, split)
    whole_key = data_cfg["whole_key"]
    whole = read_embeddings_npz(data_cfg["whole_embeddings"][split], [whole_key], dims.get("whole_ct"))
    organ_dim = dims.get("lung")
    organs = read_embeddings_npz(data_cfg["organ_embeddings"][split], ORGAN_SLOTS, organ_dim)
    ids = align_volumes(list(reports), [whole, organs], missing=data_cfg.get("missing_embedding", "error"))
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
