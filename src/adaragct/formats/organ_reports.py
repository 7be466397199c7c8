"""The release bundle's ``annotations/valid_organ_reports.json`` (docs/formats.md#release-bundle).

Schema: a JSON list, one entry per volume:

    ==============  ======================================================================================
    image           volume id (``.nii.gz`` and folders dropped when compared)
    raw_report      the reference report (non-empty text)
    organ_reports   ``{lung, heart, esophagus, aorta, other}``: each organ's sentences of the report, joined
    id              optional entry number (default: the position in the list)
    ==============  ======================================================================================

The demo cohort writes it with :func:`adaragct.io.write_json` (:mod:`adaragct.synthetic.writer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaragct.constants import ORGANS
from adaragct.errors import DataError
from adaragct.formats.fields import read_json_top, require
from adaragct.ids import normalize_volume_id


def read_organ_reports_json(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``valid_organ_reports.json`` (list of ``{image, raw_report, organ_reports{...}, id}``) keyed by volume id."""
    path = Path(path)
    data = read_json_top(path, list, "expected a list, got {got}")
    out: dict[str, dict[str, Any]] = {}
    fix = "each entry needs image, raw_report and organ_reports{lung,heart,esophagus,aorta,other} (docs/formats.md#release-bundle)"
    for i, entry in enumerate(data):
        vid = normalize_volume_id(require(entry, "image", path, f"[{i}]", fix))
        report = require(entry, "raw_report", path, f"[{i}]", fix)
        organs = require(entry, "organ_reports", path, f"[{i}]", fix)
        if not isinstance(report, str) or not report.strip():
            raise DataError(path, f"[{i}].raw_report", "empty report", "fill in the report or drop the entry")
        for organ in ORGANS:
            if not isinstance(require(organs, organ, path, f"[{i}].organ_reports", fix), str):
                raise DataError(path, f"[{i}].organ_reports.{organ}", "not a string", fix)
        if vid in out:
            raise DataError(path, f"[{i}].image", f"duplicate volume id {vid!r}", "keep one entry per volume")
        out[vid] = {"raw_report": report.strip(), "organ_reports": dict(organs), "id": entry.get("id", i)}
    return out
