"""Read predictions in the three layouts researchers have (docs/evaluation.md).

1. Our predictions JSONL (docs/method.md#adaptive-generation) and the AdaRAG-CT release's JSONL: one object per line with ``image``,
   ``generated_text``, ``reference_text`` (also accepted: ``prediction``/``reference``, ``id``/``volume_id``).
2. The VLM3D challenge JSON: ``{"name", "type", "generated_reports": [{"input_image_name", "report"}], "version"}``.
   It holds no references; they come from a second file in the same layout (the challenge's ground truth).

Ids are normalised (``adaragct.ids.normalize_volume_id``) so they match the labels CSV. Every problem raises
``DataError`` naming the file, the line or field, and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id
from adaragct.io import read_jsonl, read_text_utf8

ID_FIELDS = ("image", "volume_id", "id", "input_image_name", "sample_id")
PREDICTION_FIELDS = ("generated_text", "prediction", "report")
REFERENCE_FIELDS = ("reference_text", "reference")


@dataclass
class PredictionSet:
    """Predictions of one generator, aligned by position.

    Attributes:
        path: the file they came from.
        ids: normalised volume ids.
        predictions: generated reports (an empty string stays empty; it is scored and counted).
        references: reference reports, or None when the file has none (VLM3D).
    """

    path: Path
    ids: list[str]
    predictions: list[str]
    references: list[str] | None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: list[int]) -> PredictionSet:
        """The rows at ``keep``, in that order."""
        refs = None if self.references is None else [self.references[i] for i in keep]
        return PredictionSet(
            self.path, [self.ids[i] for i in keep], [self.predictions[i] for i in keep], refs
        )


def _first(row: dict, fields: tuple[str, ...]) -> str | None:
    for name in fields:
        if name in row and row[name] is not None:
            return name
    return None


def _check_unique(ids: list[str], path: Path, field: str) -> None:
    seen: set[str] = set()
    dups = []
    for vid in ids:
        if vid in seen:
            dups.append(vid)
        seen.add(vid)
    if dups:
        raise DataError(
            path,
            field,
            f"{len(dups)} duplicate volume ids, first: {dups[:3]}",
            "keep one prediction per volume (ids are compared after dropping .nii.gz)",
        )


def _read_jsonl_rows(path: Path, rows: list) -> PredictionSet:
    ids, preds, refs = [], [], []
    has_refs: bool | None = None
    for lineno, row in enumerate(rows, start=1):
        where = f"record {lineno}"
        if not isinstance(row, dict):
            raise DataError(
                path, where, f"is a {type(row).__name__}, not a JSON object", "write one JSON object per line"
            )
        id_field = _first(row, ID_FIELDS)
        if id_field is None:
            raise DataError(
                path,
                f"{where} field 'image'",
                "missing (no image/volume_id/id field)",
                "give every record the volume id in 'image'",
            )
        pred_field = _first(row, PREDICTION_FIELDS)
        if pred_field is None:
            raise DataError(
                path,
                f"{where} field 'generated_text'",
                "missing (no generated_text/prediction)",
                "give every record its generated report in 'generated_text'",
            )
        ref_field = _first(row, REFERENCE_FIELDS)
        if has_refs is None:
            has_refs = ref_field is not None
        elif has_refs != (ref_field is not None):
            raise DataError(
                path,
                f"{where} field 'reference_text'",
                "present in some records and missing in others",
                "give every record its reference report, or none of them",
            )
        for field in (pred_field, ref_field):
            if field is not None and not isinstance(row[field], str):
                raise DataError(
                    path,
                    f"{where} field '{field}'",
                    f"is a {type(row[field]).__name__}, not text",
                    "store reports as JSON strings",
                )
        ids.append(normalize_volume_id(row[id_field]))
        preds.append(row[pred_field])
        if ref_field is not None:
            refs.append(row[ref_field])
    _check_unique(ids, path, "field 'image'")
    return PredictionSet(path, ids, preds, refs if has_refs else None)


def _read_vlm3d(path: Path, doc: dict) -> PredictionSet:
    reports = doc.get("generated_reports")
    if not isinstance(reports, list):
        raise DataError(
            path,
            "key 'generated_reports'",
            "missing or not a list",
            "use the VLM3D layout {name, type, generated_reports: [{input_image_name, report}], version}",
        )
    ids, preds = [], []
    for i, item in enumerate(reports):
        if not isinstance(item, dict) or "input_image_name" not in item or "report" not in item:
            raise DataError(
                path, f"generated_reports[{i}]", "needs 'input_image_name' and 'report'", "fix that entry"
            )
        if not isinstance(item["report"], str):
            raise DataError(
                path, f"generated_reports[{i}].report", "is not text", "store the report as a string"
            )
        ids.append(normalize_volume_id(item["input_image_name"]))
        preds.append(item["report"])
    if not ids:
        raise DataError(path, "key 'generated_reports'", "is an empty list", "add the reports to score")
    _check_unique(ids, path, "key 'input_image_name'")
    return PredictionSet(path, ids, preds, None)


def read_predictions(path: str | Path) -> PredictionSet:
    """Read a predictions file in any supported layout (JSONL, or VLM3D JSON detected by its keys)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path,
            "file",
            "is a directory" if path.is_dir() else "does not exist",
            "pass the predictions file written by the infer stage",
        )
    text = read_text_utf8(path)
    stripped = text.lstrip()
    if stripped.startswith("{") and '"generated_reports"' in text:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(
                path,
                f"line {err.lineno} column {err.colno}",
                f"malformed JSON ({err.msg})",
                "repair the file",
            ) from err
        if isinstance(doc, dict):
            return _read_vlm3d(path, doc)
    rows = read_jsonl(path)  # line-numbered errors for malformed lines
    if not rows:
        raise DataError(path, "file", "holds no predictions", "run the infer stage or pass another file")
    return _read_jsonl_rows(path, rows)


def attach_references(preds: PredictionSet, references_path: str | Path) -> PredictionSet:
    """Take references from a second predictions-layout file (e.g. the VLM3D ground truth), matched by id."""
    refs = read_predictions(references_path)
    by_id = dict(zip(refs.ids, refs.predictions if refs.references is None else refs.references, strict=True))
    missing = [vid for vid in preds.ids if vid not in by_id]
    if missing:
        raise DataError(
            references_path,
            "ids",
            f"{len(missing)} predicted volumes have no reference, first: {missing[:3]}",
            "pass the reference file of the same volumes",
        )
    return PredictionSet(preds.path, preds.ids, preds.predictions, [by_id[v] for v in preds.ids])
