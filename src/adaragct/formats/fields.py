"""Small checks the format readers share: a required key, unique volume ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.io import read_json


def require(obj: Mapping[str, Any], key: str, path: Path, where: str, fix: str) -> Any:
    """``obj[key]``, or a DataError naming ``path``, the field ``where.key`` and ``fix`` when it is missing."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise DataError(path, f"{where}.{key}", "missing", fix)
    return obj[key]


def check_unique_ids(ids: Sequence[str], path: Path, field: str) -> None:
    """A DataError naming ``path`` and ``field`` at the first empty or repeated volume id."""
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


def read_json_top(path: Path, kind: type, expected: str) -> Any:
    """A release JSON file whose top level must be a ``kind`` (``dict``, ``list``); otherwise a DataError saying
    ``expected`` (``{got}`` in it names what the file holds)."""
    data = read_json(path)
    if not isinstance(data, kind):
        raise DataError(
            path, "top level", expected.format(got=type(data).__name__), "see docs/formats.md#release-bundle"
        )
    return data
