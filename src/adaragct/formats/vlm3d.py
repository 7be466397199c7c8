"""Reader for the VLM3D report-generation challenge's submission JSON (its labels CSV is read by
:func:`adaragct.data.ctrate.read_labels_csv`, which accepts the ``AccessionNo`` id column).

Layout: ``{"name", "type", "generated_reports": [{"input_image_name", "report"}], "version"}``; reports start with
``Findings:`` and contain ``Impression:``. We keep the text as written (the metrics lower-case and strip it) and
offer :func:`strip_section_headers` for callers that want the CT-RATE reference form.
"""

from __future__ import annotations

import re
from pathlib import Path

from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id
from adaragct.io import read_json

_HEADER = re.compile(r"\b(findings|impressions?)\s*:\s*", flags=re.IGNORECASE)


def strip_section_headers(report: str) -> str:
    """``"Findings: A. Impression: B."`` -> ``"A. B."`` (the CT-RATE reference form: no section prefixes)."""
    return re.sub(r"\s+", " ", _HEADER.sub(" ", report)).strip()


def read_vlm3d_reports(path: str | Path) -> dict[str, str]:
    """Read a VLM3D submission JSON into ``{volume_id: report}`` (ids normalised, duplicates rejected)."""
    path = Path(path)
    data = read_json(path)
    fix = 'expected {"generated_reports": [{"input_image_name": ..., "report": ...}]} (VLM3D layout)'
    if not isinstance(data, dict) or "generated_reports" not in data:
        raise DataError(path, "generated_reports", "missing", fix)
    entries = data["generated_reports"]
    if not isinstance(entries, list):
        raise DataError(path, "generated_reports", "not a list", fix)
    out: dict[str, str] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError(path, f"generated_reports[{i}]", "not an object", fix)
        for key in ("input_image_name", "report"):
            if key not in entry:
                raise DataError(path, f"generated_reports[{i}].{key}", "missing", fix)
        vid = normalize_volume_id(entry["input_image_name"])
        if not vid:
            raise DataError(
                path, f"generated_reports[{i}].input_image_name", "empty id", "fill in the volume name"
            )
        if vid in out:
            raise DataError(
                path,
                f"generated_reports[{i}].input_image_name",
                f"duplicate volume id {vid!r}",
                "submit one report per volume",
            )
        if not isinstance(entry["report"], str):
            raise DataError(path, f"generated_reports[{i}].report", "not a string", fix)
        out[vid] = entry["report"]
    return out
