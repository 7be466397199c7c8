"""The VLM3D report-generation challenge's JSON (its labels CSV is read by
:func:`adaragct.formats.tables.read_labels_csv`, which accepts the ``AccessionNo`` id column).

Schema: one JSON object

    ==================  ==============================================================================
    name, type          the submission's name and task (not read)
    generated_reports   list of ``{"input_image_name": volume file name, "report": text}``, one per volume
    version             the layout's version (not read)
    ==================  ==============================================================================

The challenge's ground truth uses the same layout. Reports start with ``Findings:`` and contain ``Impression:``;
the text is kept as written (the metrics lower-case and strip it), and :func:`strip_section_headers` gives the
CT-RATE reference form. Scoring reads these files through :func:`adaragct.formats.predictions.read_predictions`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id
from adaragct.io import read_json

_HEADER = re.compile(r"\b(findings|impressions?)\s*:\s*", flags=re.IGNORECASE)
LAYOUT = '{"name", "type", "generated_reports": [{"input_image_name", "report"}], "version"} (VLM3D layout)'


def strip_section_headers(report: str) -> str:
    """``"Findings: A. Impression: B."`` -> ``"A. B."`` (the CT-RATE reference form: no section prefixes)."""
    return re.sub(r"\s+", " ", _HEADER.sub(" ", report)).strip()


def is_vlm3d(text: str) -> bool:
    """Whether a file's text looks like the VLM3D layout (a JSON object with ``generated_reports``) rather than JSONL."""
    return text.lstrip().startswith("{") and '"generated_reports"' in text


def vlm3d_reports(path: str | Path, doc: Any) -> dict[str, str]:
    """``{volume_id: report}`` of a parsed VLM3D document, in file order (ids normalised, each problem a
    :class:`DataError` naming the file, the entry and the fix)."""
    reports = doc.get("generated_reports") if isinstance(doc, dict) else None
    if not isinstance(reports, list):
        raise DataError(path, "key 'generated_reports'", "missing or not a list", f"use the layout {LAYOUT}")
    out: dict[str, str] = {}
    for i, entry in enumerate(reports):
        where = f"generated_reports[{i}]"
        if not isinstance(entry, dict):
            raise DataError(path, where, "not an object", f"use the layout {LAYOUT}")
        for key in ("input_image_name", "report"):
            if key not in entry:
                raise DataError(path, f"{where}.{key}", "missing", f"use the layout {LAYOUT}")
        vid = normalize_volume_id(entry["input_image_name"])
        if not vid:
            raise DataError(path, f"{where}.input_image_name", "empty id", "fill in the volume name")
        if vid in out:
            raise DataError(
                path,
                f"{where}.input_image_name",
                f"duplicate volume id {vid!r}",
                "submit one report per volume",
            )
        if not isinstance(entry["report"], str):
            raise DataError(path, f"{where}.report", "is not text", "store the report as a string")
        out[vid] = entry["report"]
    if not out:
        raise DataError(path, "key 'generated_reports'", "is an empty list", "add the reports to score")
    return out


def read_vlm3d_reports(path: str | Path) -> dict[str, str]:
    """Read a VLM3D JSON (a submission or the ground truth) into ``{volume_id: report}``."""
    path = Path(path)
    return vlm3d_reports(path, read_json(path))
