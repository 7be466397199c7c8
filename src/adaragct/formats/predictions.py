"""Predictions files (docs/evaluation.md): the record we write, and the three layouts researchers have, read.

Our predictions JSONL (docs/method.md#adaptive-generation) holds one :class:`Prediction` per line, written by
:meth:`Prediction.to_json` (``json.dumps(record, ensure_ascii=False)``, keys in the field order below, absent
fields left out):

    ======================  ==============================================================================
    image                   volume id
    generated_text          the generated report
    reference_text          the reference report
    task_type               ``report_generation`` (the release's task name)
    retrieval               the retriever that ran (``adaptive``, ``none``, ...; ``copy_<name>`` for a copy baseline)
    retrieval_count         retrievals made while generating
    retrieval_log           one ``{...}`` per retrieval: position, probe, the sentences it returned
    num_generated_tokens    tokens generated (inference)
    stopped_on_end_token    whether decoding stopped at the end token rather than the length limit (inference)
    decoding                the decoding settings (:class:`adaragct.generation.GenerationSettings` as a dict)
    global_context          the training volumes whose reports preceded the prompt (only with a global context)
    source_image            the training volume whose report a copy baseline copied (copy baselines)
    source_score            its similarity, null for the random copy (written whenever source_image is)
    ======================  ==============================================================================

:func:`read_predictions` reads any of the three layouts for scoring:

1. Our predictions JSONL and the AdaRAG-CT release's JSONL: one object per line with ``image``,
   ``generated_text``, ``reference_text`` (also accepted: ``prediction``/``reference``, ``id``/``volume_id``).
2. The VLM3D challenge JSON (:mod:`adaragct.formats.vlm3d`). It holds no references; they come from a second file
   in the same layout (the challenge's ground truth).

Ids are normalised (``adaragct.ids.normalize_volume_id``) so they match the labels CSV. Every problem raises
``DataError`` naming the file, the line or field, and the fix. Appending, resuming and merging shards of a file
being written is :mod:`adaragct.generation.predictions`'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.formats.metrics import TASK
from adaragct.formats.vlm3d import is_vlm3d, vlm3d_reports
from adaragct.ids import normalize_volume_id
from adaragct.io import read_jsonl, read_text_utf8

TASK_TYPE = TASK


@dataclass(frozen=True)
class Prediction:
    """One record of our predictions JSONL (the module docstring's table); optional fields None are left out."""

    image: str
    generated_text: str
    reference_text: str
    task_type: str | None = None
    retrieval: str | None = None
    retrieval_count: int | None = None
    retrieval_log: list[dict[str, Any]] | None = None
    num_generated_tokens: int | None = None
    stopped_on_end_token: bool | None = None
    decoding: dict[str, Any] | None = None
    global_context: list[str] | None = None
    source_image: str | None = None
    source_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as written: fields in order, None ones left out (``source_score`` is kept with ``source_image``)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None
            or f.name in REQUIRED
            or (f.name == "source_score" and self.source_image is not None)
        }

    def to_json(self) -> str:
        """The record's JSONL line, without the newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: Any, path: str | Path = "<record>", where: str = "record") -> Prediction:
        """The record of a parsed JSONL line; a missing required field or an unknown one is a DataError."""
        if not isinstance(row, Mapping):
            raise DataError(
                path, where, f"is a {type(row).__name__}, not a JSON object", "write one JSON object per line"
            )
        for name in REQUIRED:
            if name not in row:
                raise DataError(
                    path, f"{where} field {name!r}", "missing", f"give every record {', '.join(REQUIRED)}"
                )
        for name in REQUIRED:
            if not isinstance(row[name], str):
                raise DataError(
                    path,
                    f"{where} field {name!r}",
                    f"is a {type(row[name]).__name__}, not text",
                    "store it as a JSON string",
                )
        unknown = [k for k in row if k not in FIELDS]
        if unknown:
            raise DataError(
                path,
                f"{where} field {unknown[0]!r}",
                "is not a field of a prediction record",
                f"use only {', '.join(FIELDS)}, or read the file with read_predictions (any layout)",
            )
        return cls(**row)


FIELDS = tuple(f.name for f in fields(Prediction))
REQUIRED = ("image", "generated_text", "reference_text")


def read_prediction_records(path: str | Path) -> list[Prediction]:
    """Every record of one of our predictions JSONL files, as written (ids not normalised)."""
    return [Prediction.from_dict(row, path, f"record {i}") for i, row in enumerate(read_jsonl(path), start=1)]


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
    if is_vlm3d(text):
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
            reports = vlm3d_reports(path, doc)
            return PredictionSet(path, list(reports), list(reports.values()), None)
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
