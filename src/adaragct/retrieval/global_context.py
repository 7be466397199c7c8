"""Global context (the release's ``--global-context``, its "hierarchical RAG"): before the prompt, the full reports
of the volume's most similar training volumes by whole-CT image; adaptive retrieval then works as usual.

    python -m adaragct.infer global_context.top_k=3
    python -m adaragct.inference.inference_rag --checkpoint C --global-context --global-context-topk 3

A training volume's report is its sentences in the sentence database (the index stage's), in order, joined by
spaces. Its whole-CT neighbours are the top training volumes by cosine of the whole-volume (CT-CLIP,
``data.whole_key``) embeddings, centred on the training mean and same patient excluded
(:mod:`adaragct.retrieval.neighbours`, the rules of the organ neighbours); the release read them from its
``img2img_top20_whole_ct.json``, which the index stage does not write. Of the top ``top_k`` neighbours, in rank
order, those with an empty report are skipped, as in the release. The text before the prompt is
:func:`adaragct.data.prompt.with_global_context`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaragct.formats.sentence_db import SentenceRecord
from adaragct.retrieval.encoders import l2_normalise

log = logging.getLogger(__name__)

WHOLE = "whole_ct"  # the key the neighbour search runs under


@dataclass(frozen=True)
class GlobalContext:
    """Each volume's global context: ``neighbours`` (query volume -> training volumes, best first) and the
    training ``reports``; :meth:`for_volume` applies ``top_k`` and drops empty reports."""

    neighbours: Mapping[str, Sequence[str]]
    reports: Mapping[str, str]
    top_k: int

    def for_volume(self, volume_id: str) -> tuple[list[str], list[str]]:
        """(training volume ids, their reports) of ``volume_id``'s global context, in rank order."""
        ids = [n for n in self.neighbours[volume_id][: self.top_k] if self.reports.get(n, "").strip()]
        return ids, [self.reports[n] for n in ids]


def training_reports(records: Sequence[SentenceRecord]) -> dict[str, str]:
    """``{volume_id: its sentences joined by spaces}``, in the database's order."""
    sentences: dict[str, list[str]] = {}
    for record in records:
        sentences.setdefault(record.volume_id, []).append(record.text)
    return {vid: " ".join(texts) for vid, texts in sentences.items()}


def whole_ct_neighbours(
    query_ids: Sequence[str],
    query_whole: np.ndarray,
    train_ids: Sequence[str],
    train_whole: np.ndarray,
    k: int,
    center: bool = True,
) -> dict[str, list[str]]:
    """Top-``k`` training volumes of each query volume by whole-CT cosine (same patient excluded), best first."""
    from adaragct.retrieval.neighbours import image_neighbours

    mean = np.asarray(train_whole, dtype=np.float64).mean(0) if center else 0.0
    found = image_neighbours(
        query_ids,
        {WHOLE: l2_normalise(query_whole - mean)},
        train_ids,
        {WHOLE: l2_normalise(train_whole - mean)},
        k,
        progress=False,
        keys=(WHOLE,),
    )
    return {vid: [str(n["image_id"]) for n in per[WHOLE]] for vid, per in found.items()}


def load_global_context(
    settings: Mapping[str, Any], data_cfg: Mapping[str, Any], volumes: Sequence[Any]
) -> GlobalContext | None:
    """The global context of ``volumes`` (each with ``volume_id`` and ``visual["whole_ct"]``) from the data's
    training whole-CT embeddings and the index stage's sentence database; None when ``settings.top_k`` is 0."""
    top_k = int(settings.get("top_k") or 0)
    if top_k <= 0 or not volumes:
        return None
    from adaragct.data.index_files import index_file
    from adaragct.formats.embeddings import read_embeddings_npz
    from adaragct.formats.sentence_db import read_sentence_database

    reports = training_reports(read_sentence_database(index_file(data_cfg, "database")))
    key = data_cfg["whole_key"]
    train = read_embeddings_npz(
        data_cfg["whole_embeddings"]["train"], [key], volumes[0].visual[WHOLE].shape[-1]
    )
    query = np.stack([v.visual[WHOLE] for v in volumes])
    ids = [v.volume_id for v in volumes]
    neighbours = whole_ct_neighbours(
        ids, query, train.ids, train.arrays[key], top_k, bool(settings.get("center", True))
    )
    log.info("global context: top %d of %d training volumes by whole-CT embedding", top_k, len(train.ids))
    return GlobalContext(neighbours, reports, top_k)
