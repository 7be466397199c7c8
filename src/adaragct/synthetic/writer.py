"""Write the demo cohort to disk in the CT-RATE (docs/formats.md#ct-rate-layout) and AdaRAG-CT bundle (docs/formats.md#release-bundle) layouts.

Everything is written atomically (temp file + rename) and byte-for-byte deterministic under the seed: CSVs are
rendered in memory, NPZ archives are zipped with a fixed timestamp (``np.savez`` stamps the current time). The
ledger ``cohort.json`` (:mod:`adaragct.ledger`) records the generator config, the generator's code and the files'
checksums; a re-run with the same config and code and the files unchanged does nothing unless forced. The prepare
stage then treats these files exactly as it treats CT-RATE or the release bundle.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adaragct.constants import FINDINGS, ORGANS
from adaragct.data.sentences import SentenceTag, Tagged, tag_unique_reports
from adaragct.io import atomic_open, write_json
from adaragct.ledger import Ledger, code_fingerprint, fingerprint
from adaragct.synthetic import checks
from adaragct.synthetic.generate import SplitData, generate_cohort

log = logging.getLogger(__name__)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed NPZ (readable by ``np.load``) with fixed zip timestamps, atomically."""
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE), buffer.getvalue())


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a CSV atomically with ``\\n`` line ends (the same bytes on every platform)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(frame.to_csv(index=False, lineterminator="\n"))


def demo_paths(data: Mapping[str, Any]) -> dict[str, Path]:
    """Every file the demo writes, from the ``data`` config (bundle annotations sit beside the organ reports)."""
    annotations = Path(data["valid_organ_reports_json"]).parent
    return {
        "train_reports_csv": Path(data["train_reports_csv"]),
        "valid_reports_csv": Path(data["valid_reports_csv"]),
        "train_labels_csv": Path(data["train_labels_csv"]),
        "valid_labels_csv": Path(data["valid_labels_csv"]),
        "bundle_train_reports_csv": annotations / "train_reports.csv",
        "bundle_valid_labels_csv": annotations / "valid_predicted_labels.csv",
        "valid_organ_reports_json": Path(data["valid_organ_reports_json"]),
        "train_whole_npz": Path(data["whole_embeddings"]["train"]),
        "valid_whole_npz": Path(data["whole_embeddings"]["valid"]),
        "train_organ_npz": Path(data["organ_embeddings"]["train"]),
        "valid_organ_npz": Path(data["organ_embeddings"]["valid"]),
        "cohort_json": Path(data["root"]) / "cohort.json",
    }


def reports_frame(split: SplitData) -> pd.DataFrame:
    rows = [
        (
            f"{v.volume_id}.nii.gz",
            split.clinical[v.patient],
            split.technique[v.patient],
            split.findings[v.patient],
            split.impressions[v.patient],
        )
        for v in split.cohort.volumes
    ]
    columns = ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"]
    return pd.DataFrame(rows, columns=columns)


def labels_frame(split: SplitData) -> pd.DataFrame:
    frame = pd.DataFrame(split.cohort.volume_labels().astype(int), columns=list(FINDINGS))
    frame.insert(0, "VolumeName", [f"{vid}.nii.gz" for vid in split.volume_ids])
    return frame


def organ_reports_entries(split: SplitData, tagged: Tagged) -> list[dict[str, Any]]:
    """``valid_organ_reports.json`` entries: each organ's sentences of the report, space-joined, in order."""
    entries = []
    for i, (vid, report) in enumerate(zip(split.volume_ids, split.volume_reports(), strict=True)):
        sentences: list[tuple[str, SentenceTag]] = tagged[report]
        organ_reports = {o: " ".join(s for s, t in sentences if o in t.organs) for o in ORGANS}
        entries.append(
            {"image": f"{vid}.nii.gz", "raw_report": report, "organ_reports": organ_reports, "id": i}
        )
    return entries


def write_demo(data: Mapping[str, Any], force: bool = False) -> dict[str, Any]:
    """Generate the demo cohort from ``data.generator`` and write every file; returns the ledger entry.

    The entry (``cohort.json``, written last) holds the inputs fingerprint (generator config and code), the files,
    the generator config and the label/text check. Skips all work when they are current, unless ``force``.
    Everything downstream of the files (tokenizer, tiny LM, summary) is the prepare stage's, the same for every
    dataset.
    """
    generator = {k: data["generator"][k] for k in data["generator"]}
    paths = demo_paths(data)
    ledger = Ledger(paths["cohort_json"], force=force)
    files = [p for k, p in paths.items() if k != "cohort_json"]
    inputs = fingerprint(generator, code_fingerprint(__name__))
    if ledger.is_current("cohort", files, inputs):
        log.info("demo cohort in %s is up to date (same generator config and code)", data["root"])
        return {**ledger.entry("cohort"), "skipped": True}
    log.info("demo cohort: drawing it (seed %s)", generator["seed"])
    splits = generate_cohort(generator)
    label_text = _write_files(paths, splits["train"], splits["valid"])
    ledger.record("cohort", files, inputs, generator=generator, label_text=label_text)
    return {**ledger.entry("cohort"), "skipped": False}


def _write_files(paths: Mapping[str, Path], train: SplitData, valid: SplitData) -> dict[str, Any]:
    """Every file of the cohort; returns the label/text agreement check."""
    log.info("demo cohort: writing CT-RATE layout reports and labels")
    write_csv(paths["train_reports_csv"], reports_frame(train))
    write_csv(paths["valid_reports_csv"], reports_frame(valid))
    write_csv(paths["train_labels_csv"], labels_frame(train))
    write_csv(paths["valid_labels_csv"], labels_frame(valid))
    log.info("demo cohort: writing bundle embeddings and annotations")
    for name, split in (("train", train), ("valid", valid)):
        write_npz(paths[f"{name}_whole_npz"], {"sample_ids": np.array(split.volume_ids), **split.whole})
        ids = np.array([f"{vid}.nii.gz" for vid in split.volume_ids])
        write_npz(paths[f"{name}_organ_npz"], {"sample_ids": ids, **split.organs})
    write_csv(paths["bundle_train_reports_csv"], reports_frame(train))
    write_csv(paths["bundle_valid_labels_csv"], labels_frame(valid))
    reports = train.volume_reports() + valid.volume_reports()
    tagged = tag_unique_reports(reports)
    write_json(paths["valid_organ_reports_json"], organ_reports_entries(valid, tagged))
    labels = np.concatenate([train.cohort.volume_labels(), valid.cohort.volume_labels()])
    return checks.label_text_agreement(reports, labels, tagged)
