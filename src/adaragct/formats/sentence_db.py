"""The training-sentence database (docs/formats.md#release-bundle): the sentences JSON and their embeddings NPZ.

``train_sentences_multi_label.json``: ``{image_id: [{sentence_id, text, organs[], normal}]}``, one compact JSON
object (volumes in the order written, sentences in report order):

    ============  ==================================================================
    sentence_id   unique id (ours: ``<volume_id>_s<index>``, :mod:`adaragct.retrieval.database`)
    text          the sentence
    organs        list of organs it is about (``lung``, ``heart``, ``esophagus``, ``aorta``, ``other``)
    normal        whether it states a normal finding
    ============  ==================================================================

``train_sentence_embeds.npz``: ``embeddings`` float32 (M, d), ``sentence_ids`` (M,) str, row i is sentence i.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaragct.constants import ORGANS
from adaragct.errors import DataError
from adaragct.formats.fields import read_json_top, require
from adaragct.formats.safe_npz import open_npz
from adaragct.ids import normalize_volume_id
from adaragct.io import atomic_open, write_json


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
    data = read_json_top(path, dict, "expected an object {{image_id: [sentences]}}")
    fix = "each sentence needs sentence_id, text, organs (list) and normal (bool) (docs/formats.md#release-bundle)"
    records: list[SentenceRecord] = []
    seen: set[str] = set()
    for image_id, sentences in data.items():
        vid = normalize_volume_id(image_id)
        for j, s in enumerate(sentences):
            where = f"{image_id}[{j}]"
            sid = str(require(s, "sentence_id", path, where, fix))
            organs = require(s, "organs", path, where, fix)
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
                    str(require(s, "text", path, where, fix)),
                    tuple(organs),
                    bool(require(s, "normal", path, where, fix)),
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


def write_sentence_database(path: str | Path, records: Sequence[SentenceRecord]) -> None:
    """Write ``train_sentences_multi_label.json`` (atomic)."""
    out: dict[str, list[dict]] = {}
    for rec in records:
        out.setdefault(rec.volume_id, []).append(
            {
                "sentence_id": rec.sentence_id,
                "text": rec.text,
                "organs": list(rec.organs),
                "normal": rec.normal,
            }
        )
    write_json(path, out, indent=None)


def write_sentence_embeddings(
    path: str | Path, records: Sequence[SentenceRecord], embeddings: np.ndarray
) -> None:
    """Write ``train_sentence_embeds.npz`` (atomic)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        embeddings=np.asarray(embeddings, dtype=np.float32),
        sentence_ids=np.array([r.sentence_id for r in records]),
    )
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
