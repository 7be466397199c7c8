"""Validate a dataset before any stage uses it: every file the later stages read, and the ids across files.

The prepare stage calls :func:`check_dataset` for every data source (demo cohort, CT-RATE, the AdaRAG-CT release
bundle), so a user learns about a missing file, a missing array, a wrong dimension or ids that one file has and
another lacks at the first command, as a :class:`~adaragct.errors.DataError` naming the file, the field and the
fix, rather than as a crash in training an hour later.

What is checked, per split (train, valid):
    * references: the reports CSV (docs/formats.md#ct-rate-layout), or for the release bundle's validation split the organ-reports JSON;
    * embeddings: the whole-volume (CT-CLIP) and organ (ViSD-Boost) NPZs, with the dimensions the model expects,
      finite values, one row per report (``data.missing_embedding=skip`` drops volumes without one, counted);
    * labels: the validation labels CSV must have a row for every validation volume (it is the ground truth of
      the clinical metrics); training labels, when configured, are optional per volume (quality figures only);
    * patients: no patient in both splits (reconstructions of one scan share a report: that would be leakage).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from adaragct.data.cohort import Volume
from adaragct.data.datasets import load_split
from adaragct.errors import DataError
from adaragct.formats.tables import read_labels_csv
from adaragct.ids import patient_id

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")


def _labels(data_cfg: Mapping[str, Any], split: str) -> tuple[Path | None, pd.DataFrame | None]:
    path = data_cfg.get(f"{split}_labels_csv")
    if not path:
        return None, None
    return Path(path), read_labels_csv(path)


def _check_labels(path: Path, labels: pd.DataFrame, volume_ids: list[str], required: bool) -> int:
    """Volumes without a labels row: an error when ``required`` (validation), else a logged count."""
    missing = [v for v in volume_ids if v not in labels.index]
    if missing and required:
        raise DataError(
            path,
            "column 'VolumeName'",
            f"{len(missing)} of {len(volume_ids)} validation volumes have no labels row, first: {missing[:3]}",
            "add their rows (the labels are the clinical metrics' ground truth), or drop those volumes from "
            "the validation references",
        )
    if missing:
        log.warning(
            "%s: %d training volumes have no labels row (quality figures skip them)", path, len(missing)
        )
    return len(missing)


def _check_patients(volumes: Mapping[str, list[Volume]], data_cfg: Mapping[str, Any]) -> None:
    train = {patient_id(v.volume_id) for v in volumes["train"]}
    both = sorted(train & {patient_id(v.volume_id) for v in volumes["valid"]})
    if both:
        raise DataError(
            data_cfg.get("valid_reports_csv") or data_cfg["valid_organ_reports_json"],
            "VolumeName",
            f"{len(both)} patients have volumes in both the train and the valid split, first: {both[:3]}",
            "keep every reconstruction of a patient in one split (they share the report: leakage otherwise)",
        )


def check_dataset(data_cfg: Mapping[str, Any], visual_dims: Mapping[str, int]) -> dict[str, Any]:
    """Read and cross-check every input file of ``data_cfg``; return the volumes and counts per split.

    Args:
        data_cfg: a resolved ``conf/data`` node.
        visual_dims: the embedding dimension per slot the model expects (``model.visual_dims``).

    Returns:
        ``{"volumes": {split: [Volume]}, "labels": {split: DataFrame | None}, "counts": {split: {...}}}``.

    Raises:
        DataError: a missing or unreadable file, a missing column/array, a wrong dimension, ids in one file and
            not another (beyond what ``data.missing_embedding=skip`` allows), or a patient in both splits.
    """
    volumes: dict[str, list[Volume]] = {}
    labels: dict[str, pd.DataFrame | None] = {}
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        volumes[split] = load_split(data_cfg, split, visual_dims)
        if not volumes[split]:
            raise DataError(
                data_cfg.get(f"{split}_reports_csv") or data_cfg["valid_organ_reports_json"],
                "rows",
                f"no {split} volume has both a report and an embedding",
                "check that the report ids and the embeddings' sample_ids name the same volumes",
            )
        ids = [v.volume_id for v in volumes[split]]
        path, labels[split] = _labels(data_cfg, split)
        unlabelled = 0 if path is None else _check_labels(path, labels[split], ids, required=split == "valid")
        counts[split] = {
            "patients": len({patient_id(v) for v in ids}),
            "volumes": len(ids),
            "unlabelled_volumes": unlabelled if path is not None else len(ids),
        }
    if labels["valid"] is None:
        raise DataError(
            "conf/data", "valid_labels_csv", "not set", "point data.valid_labels_csv at the validation labels"
        )
    _check_patients(volumes, data_cfg)
    return {"volumes": volumes, "labels": labels, "counts": counts}
