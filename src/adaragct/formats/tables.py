"""Readers for the CT-RATE reports CSV and labels CSV (docs/formats.md#ct-rate-layout).

Both return plain pandas objects indexed by the normalised volume id, validated so that later stages can trust
them: every problem raises :class:`~adaragct.errors.DataError` naming the file, the column and the fix.

Example:
    >>> reports = read_reports_csv("data/demo/annotations/train_reports.csv")   # doctest: +SKIP
    >>> labels = read_labels_csv("data/demo/annotations/valid_predicted_labels.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id
from adaragct.io import utf8_error

log = logging.getLogger(__name__)

REPORT_COLUMNS = ("VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN")
ID_COLUMNS = ("VolumeName", "AccessionNo")


def _read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path, "file", "does not exist", "check the path in conf/data or run the prepare stage"
        )
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise DataError(
            path, "file", "is empty (no header, no rows)", "pass the CSV written by the prepare stage"
        ) from err
    except UnicodeDecodeError as err:
        raise utf8_error(path) from err
    except pd.errors.ParserError as err:
        raise DataError(
            path,
            "CSV",
            f"cannot be parsed ({str(err).strip()})",
            "repair the file (expected a comma-separated CSV)",
        ) from err


def _id_column(frame: pd.DataFrame, path: Path) -> str:
    for name in ID_COLUMNS:
        if name in frame.columns:
            return name
    raise DataError(
        path,
        "column 'VolumeName'",
        "missing (no VolumeName or AccessionNo column)",
        "add the volume id column, see docs/formats.md#ct-rate-layout",
    )


def _check_unique(ids: pd.Series, path: Path, column: str) -> None:
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(
            path,
            f"column '{column}'",
            f"{len(dup)} duplicate volume ids, first: {dup.iloc[0]!r}",
            "keep one row per volume (ids are compared after dropping .nii.gz)",
        )


def reference_report(findings: str, impressions: str) -> str:
    """The reference report of docs/formats.md#ct-rate-layout: stripped findings + " " + stripped impressions, stripped."""
    return f"{findings.strip()} {impressions.strip()}".strip()


def read_reports_csv(path: str | Path, *, drop_empty: bool = True) -> pd.DataFrame:
    """Read a CT-RATE reports CSV.

    Returns a frame indexed by normalised ``volume_id`` with columns ``findings``, ``impressions``, ``report``
    (the reference report) and ``patient_id``-independent raw columns kept as they were. Rows with an empty id
    or empty report are dropped with a logged count when ``drop_empty`` (CT-RATE has a few); otherwise they are
    an error.
    """
    path = Path(path)
    frame = _read_csv(path)
    for column in ("VolumeName", "Findings_EN", "Impressions_EN"):
        if column not in frame.columns:
            raise DataError(
                path,
                f"column '{column}'",
                "missing",
                f"a CT-RATE reports CSV needs the columns {', '.join(REPORT_COLUMNS)} (docs/formats.md#ct-rate-layout)",
            )
    ids = frame["VolumeName"].map(normalize_volume_id)
    report = [
        reference_report(f, i) for f, i in zip(frame["Findings_EN"], frame["Impressions_EN"], strict=True)
    ]
    out = pd.DataFrame(
        {
            "findings": frame["Findings_EN"].str.strip(),
            "impressions": frame["Impressions_EN"].str.strip(),
            "report": report,
        },
    )
    for extra in ("ClinicalInformation_EN", "Technique_EN"):
        if extra in frame.columns:
            out[extra] = frame[extra]
    out.index = pd.Index(ids, name="volume_id")
    empty = (out.index == "") | (out["report"] == "")
    if empty.any():
        if not drop_empty:
            first = int(np.flatnonzero(empty)[0]) + 2  # +1 header, +1 one-based
            raise DataError(
                path,
                f"line {first}",
                f"{int(empty.sum())} rows with an empty id or report",
                "fill them in, or read with drop_empty=True to skip them",
            )
        log.warning("%s: dropped %d rows with an empty VolumeName or report", path, int(empty.sum()))
        out = out[~empty]
    _check_unique(out.index.to_series(), path, "VolumeName")
    return out


def read_labels_csv(path: str | Path) -> pd.DataFrame:
    """Read a labels CSV (CT-RATE or VLM3D layout) as an int8 frame of the 18 findings in SPEC order.

    The id column may be ``VolumeName`` or ``AccessionNo``; values ``0``/``1``/``0.0``/``1.0`` are accepted,
    anything else is an error naming the column and the first bad row.
    """
    path = Path(path)
    frame = _read_csv(path)
    id_col = _id_column(frame, path)
    missing = [f for f in FINDINGS if f not in frame.columns]
    if missing:
        raise DataError(
            path,
            f"column '{missing[0]}'",
            f"missing ({len(missing)} of the 18 findings absent)",
            "the labels CSV needs the 18 CT-RATE findings as columns, see docs/formats.md#ct-rate-layout",
        )
    values = np.zeros((len(frame), len(FINDINGS)), dtype=np.int8)
    for j, finding in enumerate(FINDINGS):
        col = frame[finding].str.strip()
        numeric = pd.to_numeric(col, errors="coerce")
        bad = ~numeric.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                path,
                f"column '{finding}' line {row + 2}",
                f"value {col.iloc[row]!r} is not 0/1",
                "labels must be 0 or 1 (1.0 is accepted)",
            )
        values[:, j] = numeric.to_numpy().astype(np.int8)
    ids = frame[id_col].map(normalize_volume_id)
    if (ids == "").any():
        row = int(np.flatnonzero((ids == "").to_numpy())[0])
        raise DataError(
            path, f"column '{id_col}' line {row + 2}", "empty volume id", "fill in or delete the row"
        )
    _check_unique(ids, path, id_col)
    return pd.DataFrame(values, index=pd.Index(ids, name="volume_id"), columns=list(FINDINGS))
