"""Readers for the AdaRAG-CT release bundle (docs/formats.md#release-bundle), so users of the released data can run adaragct directly.

Every reader validates what it returns (ids unique and normalised, dims as configured, finite values, required
keys present) and raises :class:`~adaragct.errors.DataError` naming the file, the field and the fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adaragct.constants import ORGANS
from adaragct.data.safe_npz import open_npz
from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id
from adaragct.io import read_json, read_json_or_jsonl

log = logging.getLogger(__name__)

CT_CLIP_KEYS = ("ct_clip_max", "ct_clip_avg", "ct_clip_avgmax")
VISD_BOOST_KEYS = ("lung", "heart", "esophagus", "aorta")


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of one split: ``arrays[key]`` is float32 (N, dim), row i belongs to ``ids[i]``."""

    path: Path
    ids: tuple[str, ...]
    arrays: dict[str, np.ndarray]

    def index(self) -> dict[str, int]:
        return {vid: i for i, vid in enumerate(self.ids)}

    def rows(self, key: str, volume_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``key`` for ``volume_ids`` in that order; an unknown id is an error."""
        pos = self.index()
        missing = [v for v in volume_ids if v not in pos]
        if missing:
            raise DataError(
                self.path,
                "sample_ids",
                f"{len(missing)} volumes have no embedding, first: {missing[:3]}",
                "re-extract embeddings for them, or set data.missing_embedding=skip",
            )
        return self.arrays[key][[pos[v] for v in volume_ids]]


def read_embeddings_npz(path: str | Path, keys: Iterable[str], dim: int | None = None) -> Embeddings:
    """Read an embeddings NPZ (CT-CLIP layout: ``ct_clip_max`` (N,512); ViSD-Boost: ``lung`` ... (N,256)).

    Args:
        path: the ``*_embeds.npz`` file.
        keys: arrays to load (e.g. ``["ct_clip_max"]`` or ``VISD_BOOST_KEYS``).
        dim: expected second dimension (checked when given).
    """
    path = Path(path)
    with open_npz(path, "run `python -m adaragct.prepare` or fix conf/data") as npz:
        if "sample_ids" not in npz.files:
            raise DataError(
                path, "array 'sample_ids'", "missing", "store the volume ids as a string array 'sample_ids'"
            )
        ids = tuple(normalize_volume_id(s) for s in npz["sample_ids"].astype(str))
        arrays = {}
        for key in keys:
            if key not in npz.files:
                raise DataError(
                    path,
                    f"array '{key}'",
                    f"missing (arrays present: {sorted(npz.files)})",
                    "set the embedding key in conf/data (e.g. data.whole_key) or re-export",
                )
            arr = np.asarray(npz[key])
            if arr.ndim != 2 or arr.shape[0] != len(ids):
                raise DataError(
                    path,
                    f"array '{key}'",
                    f"shape {arr.shape} does not match {len(ids)} sample_ids",
                    "store one row per sample id",
                )
            if dim is not None and arr.shape[1] != dim:
                raise DataError(
                    path,
                    f"array '{key}'",
                    f"dimension {arr.shape[1]}, expected {dim}",
                    "use the matching encoder or change the input dim in the config",
                )
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                first = ids[int(np.flatnonzero(bad)[0])]
                raise DataError(
                    path,
                    f"array '{key}'",
                    f"{int(bad.sum())} rows contain NaN/inf, first volume {first}",
                    "re-extract those embeddings",
                )
            arrays[key] = arr.astype(np.float32, copy=False)
    _check_unique_ids(ids, path, "sample_ids")
    return Embeddings(path=path, ids=ids, arrays=arrays)


def _check_unique_ids(ids: Sequence[str], path: Path, field: str) -> None:
    seen: set[str] = set()
    for vid in ids:
        if vid == "":
            raise DataError(path, field, "empty volume id", "fill in or remove the entry")
        if vid in seen:
            raise DataError(
                path,
                field,
                f"duplicate volume id {vid!r}",
                "keep one entry per volume (ids are compared after dropping .nii.gz)",
            )
        seen.add(vid)


def align_volumes(
    volume_ids: Sequence[str],
    embeddings: Sequence[Embeddings],
    missing: Literal["error", "skip"] = "error",
) -> list[str]:
    """Return the volumes (in order) that have a row in every embedding file.

    A volume with a report but no embedding is an error by default (the release silently zero-filled); with
    ``missing="skip"`` it is dropped and the count logged. Never zero-filled.
    """
    keep = list(volume_ids)
    for emb in embeddings:
        have = set(emb.ids)
        lost = [v for v in keep if v not in have]
        if lost and missing == "error":
            raise DataError(
                emb.path,
                "sample_ids",
                f"{len(lost)} volumes have a report but no embedding, first: {lost[:3]}",
                "re-extract them, or set data.missing_embedding=skip to drop them",
            )
        if lost:
            log.warning(
                "%s: skipped %d volumes without an embedding (data.missing_embedding=skip)",
                emb.path,
                len(lost),
            )
            keep = [v for v in keep if v in have]
    return keep


def _require(obj: Mapping[str, Any], key: str, path: Path, where: str, fix: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise DataError(path, f"{where}.{key}", "missing", fix)
    return obj[key]


def read_organ_reports_json(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``valid_organ_reports.json`` (list of ``{image, raw_report, organ_reports{...}, id}``) keyed by volume id."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(
            path,
            "top level",
            f"expected a list, got {type(data).__name__}",
            "see docs/formats.md#release-bundle",
        )
    out: dict[str, dict[str, Any]] = {}
    fix = "each entry needs image, raw_report and organ_reports{lung,heart,esophagus,aorta,other} (docs/formats.md#release-bundle)"
    for i, entry in enumerate(data):
        vid = normalize_volume_id(_require(entry, "image", path, f"[{i}]", fix))
        report = _require(entry, "raw_report", path, f"[{i}]", fix)
        organs = _require(entry, "organ_reports", path, f"[{i}]", fix)
        if not isinstance(report, str) or not report.strip():
            raise DataError(path, f"[{i}].raw_report", "empty report", "fill in the report or drop the entry")
        for organ in ORGANS:
            if not isinstance(_require(organs, organ, path, f"[{i}].organ_reports", fix), str):
                raise DataError(path, f"[{i}].organ_reports.{organ}", "not a string", fix)
        if vid in out:
            raise DataError(path, f"[{i}].image", f"duplicate volume id {vid!r}", "keep one entry per volume")
        out[vid] = {"raw_report": report.strip(), "organ_reports": dict(organs), "id": entry.get("id", i)}
    return out


def context_key(sentence: str) -> str:
    """Lookup key of a query sentence in a context file: stripped of whitespace and edge ``.,;:!?``, lower-cased."""
    return re.sub(r"^[\s.,;:!?]+|[\s.,;:!?]+$", "", sentence).lower()


def read_contexts(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Read an oracle or retrieved context file: ``{volume_id: {context_key(sentence): [context texts]}}``.

    Accepts the release's single JSON object ``{sample_id: [{query_sentence:{text}, retrieved:[{text}]}]}`` (named
    ``.jsonl`` despite being one object) and true JSONL with one ``{sample_id, contexts:[...]}`` or
    ``{sample_id: [...]}`` object per line.
    """
    path = Path(path)
    data = read_json_or_jsonl(path)
    if isinstance(data, dict) and "sample_id" in data:  # true JSONL with a single line parses as one object
        data = [data]
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = []
        for lineno, row in enumerate(data, start=1):
            if isinstance(row, dict) and "sample_id" in row:
                items.append(
                    (
                        row["sample_id"],
                        _require(
                            row, "contexts", path, f"line {lineno}", "see docs/formats.md#release-bundle"
                        ),
                    )
                )
            elif isinstance(row, dict) and len(row) == 1:
                items.extend(row.items())
            else:
                raise DataError(
                    path,
                    f"line {lineno}",
                    "expected {sample_id: [...]} or {sample_id, contexts}",
                    "see docs/formats.md#release-bundle for the context layout",
                )
    else:
        raise DataError(
            path, "top level", f"unexpected {type(data).__name__}", "see docs/formats.md#release-bundle"
        )
    out: dict[str, dict[str, list[str]]] = {}
    fix = "each entry is {query_sentence:{text}, retrieved:[{text}, ...]} (docs/formats.md#release-bundle)"
    for sample_id, entries in items:
        vid = normalize_volume_id(sample_id)
        if vid in out:
            raise DataError(path, f"sample {sample_id!r}", "duplicate volume id", "keep one entry per volume")
        if not isinstance(entries, list):
            raise DataError(path, f"sample {sample_id!r}", "expected a list of entries", fix)
        table: dict[str, list[str]] = {}
        for j, entry in enumerate(entries):
            query = _require(
                _require(entry, "query_sentence", path, f"{vid}[{j}]", fix),
                "text",
                path,
                f"{vid}[{j}].query_sentence",
                fix,
            )
            retrieved = _require(entry, "retrieved", path, f"{vid}[{j}]", fix)
            texts = [_require(r, "text", path, f"{vid}[{j}].retrieved", fix) for r in retrieved]
            table[context_key(query)] = [t for t in texts if isinstance(t, str) and t.strip()]
        out[vid] = table
    return out


@dataclass(frozen=True)
class SentenceRecord:
    """One sentence of the training-report database."""

    sentence_id: str
    volume_id: str
    text: str
    organs: tuple[str, ...]
    normal: bool


def read_sentence_database(path: str | Path) -> list[SentenceRecord]:
    """Read ``train_sentences_multi_label.json``: ``{image_id: [{sentence_id, text, organs[], normal}]}``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(
            path,
            "top level",
            "expected an object {image_id: [sentences]}",
            "see docs/formats.md#release-bundle",
        )
    fix = "each sentence needs sentence_id, text, organs (list) and normal (bool) (docs/formats.md#release-bundle)"
    records: list[SentenceRecord] = []
    seen: set[str] = set()
    for image_id, sentences in data.items():
        vid = normalize_volume_id(image_id)
        for j, s in enumerate(sentences):
            where = f"{image_id}[{j}]"
            sid = str(_require(s, "sentence_id", path, where, fix))
            organs = _require(s, "organs", path, where, fix)
            bad = [o for o in organs if o not in ORGANS] if isinstance(organs, list) else organs
            if not isinstance(organs, list) or bad:
                raise DataError(
                    path, f"{where}.organs", f"unknown organs {bad!r}", f"use only {list(ORGANS)}"
                )
            if sid in seen:
                raise DataError(
                    path, f"{where}.sentence_id", f"duplicate sentence id {sid!r}", "ids must be unique"
                )
            seen.add(sid)
            records.append(
                SentenceRecord(
                    sid,
                    vid,
                    str(_require(s, "text", path, where, fix)),
                    tuple(organs),
                    bool(_require(s, "normal", path, where, fix)),
                )
            )
    return records


def read_sentence_embeddings(path: str | Path, dim: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read ``train_sentence_embeds.npz``: ``embeddings`` float32 (M, d) and ``sentence_ids`` (M,)."""
    path = Path(path)
    with open_npz(path, "run `python -m adaragct.index` or fix conf/data") as npz:
        for key in ("embeddings", "sentence_ids"):
            if key not in npz.files:
                raise DataError(
                    path, f"array '{key}'", "missing", "store 'embeddings' (M,d) and 'sentence_ids' (M,)"
                )
        emb = np.asarray(npz["embeddings"], dtype=np.float32)
        ids = [str(s) for s in npz["sentence_ids"].astype(str)]
    if emb.ndim != 2 or emb.shape[0] != len(ids):
        raise DataError(
            path,
            "array 'embeddings'",
            f"shape {emb.shape} does not match {len(ids)} sentence_ids",
            "store one row per sentence id",
        )
    if dim is not None and emb.shape[1] != dim:
        raise DataError(
            path,
            "array 'embeddings'",
            f"dimension {emb.shape[1]}, expected {dim}",
            "embed the database with the configured encoder",
        )
    if not np.isfinite(emb).all():
        raise DataError(path, "array 'embeddings'", "contains NaN/inf", "re-encode the sentences")
    if len(set(ids)) != len(ids):
        raise DataError(path, "array 'sentence_ids'", "duplicate sentence ids", "ids must be unique")
    return ids, emb


def read_image_neighbours(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Read ``img2img_top20.json``: ``{volume_id: {organ: [{image_id} x20]}}`` -> ``{vid: {organ: [ids]}}``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(
            path,
            "top level",
            "expected an object {volume_id: {organ: [...]}}",
            "see docs/formats.md#release-bundle",
        )
    out: dict[str, dict[str, list[str]]] = {}
    for vid_raw, per_organ in data.items():
        vid = normalize_volume_id(vid_raw)
        if not isinstance(per_organ, dict):
            raise DataError(
                path, f"{vid_raw}", "expected {organ: [{image_id}]}", "see docs/formats.md#release-bundle"
            )
        table = {}
        for organ, neighbours in per_organ.items():
            if organ not in ORGANS:
                raise DataError(path, f"{vid_raw}.{organ}", "unknown organ", f"use only {list(ORGANS)}")
            fix = "each neighbour is {image_id: ...} (docs/formats.md#release-bundle)"
            table[organ] = [
                normalize_volume_id(_require(n, "image_id", path, f"{vid_raw}.{organ}", fix))
                for n in neighbours
            ]
        if vid in out:
            raise DataError(path, f"{vid_raw}", "duplicate volume id", "keep one entry per volume")
        out[vid] = table
    return out
