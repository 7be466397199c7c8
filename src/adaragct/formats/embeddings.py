"""Embeddings NPZ of one split (docs/formats.md#release-bundle): ``<split>_embeds.npz``, read and aligned to reports.

Schema: ``sample_ids`` (N,) str, the volume ids; one float array (N, dim) per key, row i belongs to
``sample_ids[i]``:

* ``ct_clip_max``, ``ct_clip_avg``, ``ct_clip_avgmax``: CT-CLIP whole-volume embeddings, 512-d (:data:`CT_CLIP_KEYS`)
* ``lung``, ``heart``, ``esophagus``, ``aorta``: ViSD-Boost organ embeddings, 256-d (:data:`VISD_BOOST_KEYS`)

Arrays are read through :mod:`adaragct.formats.safe_npz` (no pickle runs). Every reader validates what it returns
(ids unique and normalised, dims as configured, finite values, required keys present) and raises
:class:`~adaragct.errors.DataError` naming the file, the field and the fix. The demo cohort writes these files
with ``np.savez`` (:mod:`adaragct.synthetic.writer`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from adaragct.errors import DataError
from adaragct.formats.fields import check_unique_ids
from adaragct.formats.safe_npz import open_npz
from adaragct.ids import normalize_volume_id

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
    check_unique_ids(ids, path, "sample_ids")
    return Embeddings(path=path, ids=ids, arrays=arrays)


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
