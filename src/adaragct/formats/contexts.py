"""Oracle and retrieved context files (docs/formats.md#release-bundle): read, written by the index stage.

Schema (what :func:`write_contexts` writes, the release's layout, named ``.jsonl`` although it is ONE JSON object)::

    {sample_id: [{"query_sentence": {"text": str},
                  "retrieved": [{"text": str, "sentence_id": str, "score": float}, ...]}, ...]}

Volumes are written in sorted order, compact (``separators=(",", ":")``), not ASCII-escaped. :func:`read_contexts`
also accepts true JSONL with one ``{sample_id, contexts: [...]}`` or ``{sample_id: [...]}`` object per line, and
keys each volume's contexts by :func:`context_key` of the query sentence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.formats.fields import require
from adaragct.ids import normalize_volume_id
from adaragct.io import atomic_open, read_json_or_jsonl

Contexts = dict[str, list[dict[str, Any]]]


def context_key(sentence: str) -> str:
    """Lookup key of a query sentence in a context file: stripped of whitespace and edge ``.,;:!?``, lower-cased."""
    return re.sub(r"^[\s.,;:!?]+|[\s.,;:!?]+$", "", sentence).lower()


def read_contexts(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """Read an oracle or retrieved context file: ``{volume_id: {context_key(sentence): [context texts]}}``.

    Accepts the release's single JSON object ``{sample_id: [{query_sentence:{text}, retrieved:[{text}]}]}`` (named
    ``.jsonl`` despite being one object) and true JSONL with one ``{sample_id, contexts:[...]}`` or
    ``{sample_id: [...]}`` object per line.
    """
    path = Path(path)
    data = read_json_or_jsonl(path)
    if isinstance(data, dict) and "sample_id" in data:  # true JSONL with a single line parses as one object
        data = [data]
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = []
        for lineno, row in enumerate(data, start=1):
            if isinstance(row, dict) and "sample_id" in row:
                items.append(
                    (
                        row["sample_id"],
                        require(
                            row, "contexts", path, f"line {lineno}", "see docs/formats.md#release-bundle"
                        ),
                    )
                )
            elif isinstance(row, dict) and len(row) == 1:
                items.extend(row.items())
            else:
                raise DataError(
                    path,
                    f"line {lineno}",
                    "expected {sample_id: [...]} or {sample_id, contexts}",
                    "see docs/formats.md#release-bundle for the context layout",
                )
    else:
        raise DataError(
            path, "top level", f"unexpected {type(data).__name__}", "see docs/formats.md#release-bundle"
        )
    out: dict[str, dict[str, list[str]]] = {}
    fix = "each entry is {query_sentence:{text}, retrieved:[{text}, ...]} (docs/formats.md#release-bundle)"
    for sample_id, entries in items:
        vid = normalize_volume_id(sample_id)
        if vid in out:
            raise DataError(path, f"sample {sample_id!r}", "duplicate volume id", "keep one entry per volume")
        if not isinstance(entries, list):
            raise DataError(path, f"sample {sample_id!r}", "expected a list of entries", fix)
        table: dict[str, list[str]] = {}
        for j, entry in enumerate(entries):
            query = require(
                require(entry, "query_sentence", path, f"{vid}[{j}]", fix),
                "text",
                path,
                f"{vid}[{j}].query_sentence",
                fix,
            )
            retrieved = require(entry, "retrieved", path, f"{vid}[{j}]", fix)
            texts = [require(r, "text", path, f"{vid}[{j}].retrieved", fix) for r in retrieved]
            table[context_key(query)] = [t for t in texts if isinstance(t, str) and t.strip()]
        out[vid] = table
    return out


def write_contexts(path: str | Path, contexts: Contexts) -> None:
    """Write a context file as one compact JSON object, volumes in sorted order (atomic)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(
            {vid: contexts[vid] for vid in sorted(contexts)},
            handle,
            ensure_ascii=False,
            separators=(",", ":"),
        )
