"""Image neighbours ``img2img_top20.json`` (docs/formats.md#release-bundle): read, and written by the index stage.

Schema: one compact JSON object ``{volume_id: {organ: [{"image_id": str, ...}, ...]}}``: per volume and organ
(``lung``, ``heart``, ``esophagus``, ``aorta``, ``other``) its nearest training volumes, nearest first (the
release stores 20; ours as many as ``neighbours.k``). Other keys of a neighbour (e.g. a score) are kept by the
writer and ignored by the reader. The file's NAME is the index stage's (:mod:`adaragct.data.index_files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaragct.constants import ORGANS
from adaragct.errors import DataError
from adaragct.formats.fields import read_json_top, require
from adaragct.ids import normalize_volume_id
from adaragct.io import write_json


def read_image_neighbours(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Read ``img2img_top20.json``: ``{volume_id: {organ: [{image_id} x20]}}`` -> ``{vid: {organ: [ids]}}``."""
    path = Path(path)
    data = read_json_top(path, dict, "expected an object {{volume_id: {{organ: [...]}}}}")
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
                normalize_volume_id(require(n, "image_id", path, f"{vid_raw}.{organ}", fix))
                for n in neighbours
            ]
        if vid in out:
            raise DataError(path, f"{vid_raw}", "duplicate volume id", "keep one entry per volume")
        out[vid] = table
    return out


def write_image_neighbours(path: str | Path, neighbours: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the neighbours file as :func:`adaragct.retrieval.neighbours.image_neighbours` returns it (compact, atomic)."""
    write_json(path, neighbours, indent=None)
