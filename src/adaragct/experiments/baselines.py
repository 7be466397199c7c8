"""Copy baselines: predict a validation report by copying the report of one training volume.

They answer "does the model do better than looking something up?" and cost seconds, so the demo scores them with
the same evaluation as the model rows:

* ``random``: a training volume drawn uniformly (seeded);
* ``nearest_ct``: the training volume with the highest cosine of the whole-CT (CT-CLIP) embedding: static
  image-to-report retrieval;
* ``nearest_organs``: the highest mean of the four organ-embedding cosines (lung, heart, esophagus, aorta). The
  mean of the four cosines equals the cosine of the concatenated L2-normalised organ vectors (each has norm 1, so
  the concatenation has norm 2 and the dot product sums the four cosines), which is how it is computed.

Embeddings are centred on the training mean before the cosine when ``center`` (the index stage's image neighbours
do the same, ``conf/index.yaml: neighbours.center``). Cosines are computed in float64 and ties go to the first
training volume in :func:`adaragct.data.datasets.load_split` order, so the choice never depends on BLAS threads.
Training and validation patients are disjoint, so no same-patient exclusion is needed.

    write_copy_predictions("outputs/demo/copy_nearest_ct/predictions.jsonl", "nearest_ct", train, valid)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adaragct.constants import ORGAN_SLOTS
from adaragct.data.cohort import Volume
from adaragct.formats.predictions import TASK_TYPE, Prediction
from adaragct.io import atomic_open

BASELINES: tuple[str, ...] = ("random", "nearest_ct", "nearest_organs")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def embedding_matrix(
    volumes: Sequence[Volume], slots: Sequence[str], mean: dict[str, np.ndarray] | None
) -> np.ndarray:
    """Rows = volumes: each slot's vector (minus the training ``mean`` of the slot) L2-normalised, then the slots
    concatenated; float64."""
    parts = []
    for slot in slots:
        x = np.stack([np.asarray(v.visual[slot], dtype=np.float64) for v in volumes])
        parts.append(_normalise(x - mean[slot] if mean is not None else x))
    return np.concatenate(parts, axis=1)


def nearest(query: np.ndarray, base: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the most similar base row, its mean per-slot cosine) for each query row.

    ``query`` and ``base`` come from :func:`embedding_matrix` with the same slots; the dot product of two rows is
    the sum of the per-slot cosines, so dividing by ``n_slots`` gives their mean. ``argmax`` keeps the first of
    equal scores.
    """
    scores = query @ base.T / n_slots
    best = np.argmax(scores, axis=1)
    return best, scores[np.arange(len(query)), best]


def copy_sources(
    name: str, train: Sequence[Volume], valid: Sequence[Volume], *, seed: int = 0, center: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Which training volume each validation volume copies: (indices into ``train``, cosines or None).

    Args:
        name: one of :data:`BASELINES`.
        train, valid: volumes from :func:`adaragct.data.datasets.load_split`.
        seed: seeds ``random`` (``numpy.random.default_rng(seed).integers``).
        center: subtract the training mean of each embedding before the cosine.
    """
    if name == "random":
        return np.random.default_rng(seed).integers(0, len(train), size=len(valid)), None
    slots = {"nearest_ct": ("whole_ct",), "nearest_organs": ORGAN_SLOTS}.get(name)
    if slots is None:
        raise ValueError(
            f"conf/demo.yaml: baselines.rows: unknown copy baseline {name!r}, expected one of {BASELINES}"
        )
    mean = (
        {s: np.stack([np.asarray(v.visual[s], dtype=np.float64) for v in train]).mean(0) for s in slots}
        if center
        else None
    )
    return nearest(embedding_matrix(valid, slots, mean), embedding_matrix(train, slots, mean), len(slots))


def copy_record(query: Volume, source: Volume, name: str, score: float | None) -> Prediction:
    """A prediction record (the fields of :func:`adaragct.generation.predictions.prediction_record` that apply)
    whose report is ``source``'s, plus which volume it came from."""
    return Prediction(
        image=query.volume_id,
        generated_text=source.report,
        reference_text=query.report,
        task_type=TASK_TYPE,
        retrieval=f"copy_{name}",
        retrieval_count=0,
        retrieval_log=[],
        source_image=source.volume_id,
        source_score=None if score is None else round(float(score), 6),
    )


def write_copy_predictions(
    path: str | Path,
    name: str,
    train: Sequence[Volume],
    valid: Sequence[Volume],
    *,
    seed: int = 0,
    center: bool = True,
) -> Path:
    """Write the predictions JSONL of copy baseline ``name`` (atomically, in ``valid`` order); returns the path."""
    chosen, scores = copy_sources(name, train, valid, seed=seed, center=center)
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for i, query in enumerate(valid):
            record = copy_record(query, train[int(chosen[i])], name, None if scores is None else scores[i])
            handle.write(record.to_json() + "\n")
    return path
