"""Render the viewer's document (:func:`adaragct.viewer.data.build_view`) into one self-contained HTML file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jinja2

from adaragct.io import atomic_open

TEMPLATE = "view.html.j2"
METHOD_WORDS = {"recorded": "recorded", "tokenizer": "re-tokenized", "estimate": "estimated (approximate)"}


def embed_json(doc: Any) -> str:
    """``doc`` as JSON that is safe inside ``<script type="application/json">``: every ``<`` is written as
    ``\\u003c``, so no report text can close the script element (``</script>``) or open a comment."""
    text = json.dumps(
        doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )  # JSON.parse takes no NaN
    return text.replace("<", "\\u003c")


def _metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adaragct.viewer", "templates"),
        autoescape=True,  # every value is HTML-escaped unless the template says otherwise (the JSON above)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["metric"] = _metric
    return env


def _truth_note(doc: dict) -> str:
    if doc["labels_csv"] is None:
        return "the reference reports, labelled"
    missing = doc["missing_truth"]
    note = f"labels CSV {Path(doc['labels_csv']).name}"
    return note + (f" ({missing} volumes not in it: their reference, labelled)" if missing else "")


def render_view(doc: dict) -> str:
    """The HTML page of a viewer document."""
    methods = doc["methods"]
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=doc["title"],
            n_volumes=len(doc["volumes"]),
            n_retrievals=sum(v["n"] for v in doc["volumes"]),
            labeler=doc["labeler"],
            truth_note=_truth_note(doc),
            methods_note=", ".join(f"{n} {METHOD_WORDS[m]}" for m, n in sorted(methods.items()))
            or "no [RAG]",
            metrics=doc["metrics"],
            findings=doc["findings"],
            data_json=embed_json(doc),
        )
    )


def _relative(path: str | None, folder: Path) -> str | None:
    return None if path is None else os.path.relpath(Path(path).absolute(), folder.absolute())


def write_view(doc: dict, output: str | Path) -> Path:
    """Write the page atomically; returns its path. The input files it names are written relative to the page's
    folder: they stay right when the folder is copied elsewhere, and the page's bytes do not depend on where the
    project is checked out."""
    output = Path(output)
    folder = output.parent
    doc = {
        **doc,
        "source": _relative(doc["source"], folder),
        "labels_csv": _relative(doc["labels_csv"], folder),
    }
    if doc["metrics"] is not None:
        doc["metrics"] = {**doc["metrics"], "path": _relative(doc["metrics"]["path"], folder)}
    with atomic_open(output, "w", encoding="utf-8") as handle:
        handle.write(render_view(doc))
    return output
