"""Image neighbours: per organ, the top-20 training volumes by cosine of organ embeddings (docs/method.md#retrieval).

Why per organ: a report sentence about the heart should come from volumes whose *heart* looks alike; the organ
embeddings (ViSD-Boost, 256-d) carry that organ's signal far better than the whole-volume embedding, which puts
~90% of its variance in two nuisance directions.

"other" (lymph nodes, devices, bones, ...) has no organ embedding of its own. By default it is searched with the
whole-volume (CT-CLIP) embedding: the only embedding that sees lymphadenopathy or medical material at all, even if
weakly. ``other_source`` can switch it to ``organs`` (concatenated L2-normalised organ embeddings, i.e. the mean
of the four organ cosines) or ``lung``. On the demo cohort, whole gave "other" neighbours that share a finding
~1.2x as often as random volumes, organs ~1.0x.

Centering: embeddings are centred on the *training* mean before the cosine (``center=True``). Contrastive and
synthetic embeddings share a large common offset; uncentred, the cosine mostly measures alignment with that offset
rather than the finding signal (on the demo cohort centering raised the neighbour/random finding-agreement ratio
from 1.29 to 1.52 at equal signal).

No leakage: candidates of the query's own patient (other reconstructions of the same scan share its report) and
the query itself are excluded. We over-fetch by the largest number of training volumes per patient, so exactly
``k`` neighbours remain after exclusion.

Written in the release's ``img2img_top20.json`` layout ``{volume_id: {organ: [{image_id, score}] x k}}``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from adaragct.constants import ORGAN_SLOTS, ORGANS
from adaragct.ids import patient_id
from adaragct.retrieval.encoders import l2_normalise
from adaragct.retrieval.faiss_build import import_faiss

log = logging.getLogger(__name__)

OtherSource = Literal["organs", "whole", "lung"]
Neighbours = dict[str, dict[str, list[dict[str, float | str]]]]


def training_means(
    organ_arrays: Mapping[str, np.ndarray], whole: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-array training means (``whole`` under key ``"whole"``), for :func:`organ_vectors` centering."""
    means = {organ: np.asarray(organ_arrays[organ], dtype=np.float64).mean(0) for organ in ORGAN_SLOTS}
    if whole is not None:
        means["whole"] = np.asarray(whole, dtype=np.float64).mean(0)
    return means


def organ_vectors(
    organ_arrays: Mapping[str, np.ndarray],
    whole: np.ndarray | None = None,
    other_source: OtherSource = "whole",
    means: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """L2-normalised search vectors per organ of :data:`ORGANS`, given the four organ arrays (and the whole one).

    Args:
        organ_arrays: ``{lung, heart, esophagus, aorta}`` -> float32 ``(n, d)``, rows aligned.
        whole: whole-volume embeddings ``(n, D)``, needed only for ``other_source="whole"``.
        other_source: how "other" is searched (see the module docstring).
        means: training means from :func:`training_means` to subtract first (None: no centering). Queries and
            training volumes must be centred with the same (training) means.
    """
    means = means or {}

    def centred(key: str, arr: np.ndarray) -> np.ndarray:
        return l2_normalise(arr - means[key] if key in means else arr)

    out = {organ: centred(organ, organ_arrays[organ]) for organ in ORGAN_SLOTS}
    if other_source == "organs":
        out["other"] = l2_normalise(np.concatenate([out[o] for o in ORGAN_SLOTS], axis=1))
    elif other_source == "whole":
        if whole is None:
            raise ValueError("neighbours.other_source=whole needs the whole-volume embeddings")
        out["other"] = centred("whole", whole)
    elif other_source == "lung":
        out["other"] = out["lung"]
    else:
        raise ValueError(f"neighbours.other_source must be organs, whole or lung, got {other_source!r}")
    return out


def image_neighbours(
    query_ids: Sequence[str],
    query_vectors: Mapping[str, np.ndarray],
    train_ids: Sequence[str],
    train_vectors: Mapping[str, np.ndarray],
    k: int = 20,
    progress: bool = True,
    keys: Sequence[str] = ORGANS,
) -> Neighbours:
    """Top-``k`` training volumes per query volume and organ, same patient (and self) excluded.

    Args:
        query_ids: volumes to find neighbours for (valid and/or training volumes).
        query_vectors: ``{organ: (len(query_ids), d)}`` from :func:`organ_vectors`.
        train_ids: the searchable training volumes.
        train_vectors: ``{organ: (len(train_ids), d)}``.
        k: neighbours per organ.
        progress: show a progress bar over organs.
        keys: the vector keys searched (default the organs; the global context searches ``whole_ct`` alone).

    Returns:
        ``{query_id: {organ: [{"image_id": id, "score": cosine}, ...]}}``, scores descending, ties by id order.
    """
    faiss = import_faiss()
    from tqdm.auto import tqdm

    train_patients = np.array([patient_id(v) for v in train_ids])
    query_patients = [patient_id(v) for v in query_ids]
    per_patient = max(Counter(train_patients.tolist()).values(), default=0)
    fetch = min(len(train_ids), k + per_patient)
    if len(train_ids) - per_patient < k:
        log.warning(
            "only %d training volumes: fewer than k=%d neighbours for some volumes", len(train_ids), k
        )
    out: Neighbours = {vid: {} for vid in query_ids}
    for organ in tqdm(keys, desc="image neighbours", unit="organ", disable=not progress, leave=False):
        base = np.ascontiguousarray(train_vectors[organ], dtype=np.float32)
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(base)
        scores, pos = index.search(np.ascontiguousarray(query_vectors[organ], dtype=np.float32), fetch)
        for qi, vid in enumerate(query_ids):
            order = np.lexsort((pos[qi], -scores[qi]))  # deterministic under ties
            chosen = []
            for t in order:
                j = int(pos[qi, t])
                if j < 0 or train_patients[j] == query_patients[qi]:
                    continue
                chosen.append({"image_id": train_ids[j], "score": round(float(scores[qi, t]), 5)})
                if len(chosen) == k:
                    break
            out[vid][organ] = chosen
    return out


def neighbour_ids(
    neighbours: Mapping[str, Mapping[str, Sequence[Mapping[str, object]]]],
) -> dict[str, dict[str, list[str]]]:
    """``{vid: {organ: [{image_id, score}]}}`` -> ``{vid: {organ: [image_id]}}`` (the bundle reader's form)."""
    return {
        vid: {organ: [str(n["image_id"]) for n in items] for organ, items in per.items()}
        for vid, per in neighbours.items()
    }
