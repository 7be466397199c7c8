"""The viewer's data: one JSON-able document per predictions file, embedded once in the HTML page.

Per volume: both reports, the finding labels of each (the rule labeler) and of the ground truth, and the retrieval
trace with every ``[RAG]`` placed in the text (:mod:`adaragct.viewer.positions`). Retrieved sentences recur across
volumes (the same training sentences answer many probes), so they are stored once in a table (id, text, training
volume) and the retrievals point into it: on the demo's records this keeps a 3,039-volume page near the size of its reports.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaragct.constants import FINDINGS
from adaragct.errors import DataError, UsageError
from adaragct.formats.predictions import PredictionSet, read_predictions
from adaragct.io import read_json, read_json_or_jsonl
from adaragct.retrieval.database import source_volume
from adaragct.viewer.positions import place_retrievals

_WORD = re.compile(r"[a-z0-9]+")
TRUTH_CSV, TRUTH_REFERENCE = "labels_csv", "reference"


def _records(path: Path, preds: PredictionSet) -> list[Mapping[str, Any]]:
    """The raw records behind ``preds`` (aligned by position), for their traces; the VLM3D layout has none."""
    doc = read_json_or_jsonl(path)
    if isinstance(doc, dict) and "generated_reports" in doc:
        return [{} for _ in preds.ids]
    rows = [doc] if isinstance(doc, dict) else doc
    if len(rows) != len(preds):  # read_predictions read the same lines: a file changed while being read
        raise DataError(path, "file", "changed while it was read", "run the command again")
    return rows


def _tokenizer(name: str | None) -> Any:
    if name is None:
        return None
    if not Path(name).is_dir():
        raise UsageError(
            f"--tokenizer {name}",
            "is not a folder",
            "pass the checkpoint folder that wrote the predictions (it holds tokenizer.json)",
        )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"--tokenizer {name}",
            f"holds no tokenizer ({err})",
            "pass a checkpoint folder with tokenizer.json",
        ) from err


def _finite(value: Any) -> Any:
    """A number the page's JSON can hold (JSON has no NaN or infinity: those become null, shown as n/a)."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _used_share(sentence: str, context: Sequence[str]) -> float | None:
    """Share of the rewritten sentence's words that occur in the retrieved sentences (None: no sentence)."""
    words = _words(sentence)
    if not words:
        return None
    seen = set().union(*(_words(c) for c in context)) if context else set()
    return round(len(words & seen) / len(words), 3)


class _SentenceTable:
    """Retrieved sentences, each stored once as ``[sentence id, text, training volume]``; :meth:`ref` gives the
    row of one."""

    def __init__(self) -> None:
        self.rows: list[list[str | None]] = []
        self._index: dict[tuple[str, str], int] = {}

    def ref(self, sentence_id: str, text: str) -> int:
        key = (sentence_id, text)
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append([sentence_id, text, source_volume(sentence_id) if sentence_id else None])
        return self._index[key]


def _retrievals(
    record: Mapping[str, Any], text: str, tokenizer: Any, table: _SentenceTable, where: str, path: Path
) -> list[dict]:
    try:
        points = place_retrievals({**record, "generated_text": text}, tokenizer)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            path,
            f"{where} field 'retrieval_log'",
            f"not a retrieval trace ({err})",
            "write it with adaragct.infer (each entry needs 'step'; a 'char_offset' inside the text)",
        ) from err
    out = []
    for entry, point in zip(record.get("retrieval_log") or [], points, strict=True):
        context = [str(c) for c in entry.get("context") or []]
        ids = [str(s) for s in entry.get("sentence_ids") or []]
        if len(ids) != len(context):  # a trace without ids (the release's oracle): the texts alone
            ids = [""] * len(context)
        item = {
            "a": entry.get("action", "retrieved"),
            "step": int(entry["step"]),
            "o": point.offset,
            "s": point.start,
            "e": point.end,
            "m": point.method,
            "probe": entry.get("probe_text", ""),
            "organ": entry.get("organ"),
            "ctx": [table.ref(sid, c) for sid, c in zip(ids, context, strict=True)],
            "sc": [_finite(s) for s in entry.get("scores") or []][: len(context)],
            "draft": entry.get("draft_accepted"),
            "note": entry.get("note"),
        }
        if not context and entry.get("ctx_preview"):  # the release's trace: a preview, no sentences
            item["preview"] = str(entry["ctx_preview"])
        if item["a"] == "retrieved" and point.end > point.start:
            item["use"] = _used_share(text[point.start : point.end], context)
        out.append({k: v for k, v in item.items() if v is not None})  # absent keys: smaller pages
    return out


def _positives(row: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(row)]


def _label_texts(labeler: Any, texts: Sequence[str]) -> np.ndarray:
    """Labels of ``texts``, each distinct text labelled once (runs repeat reports; the rules are the cost)."""
    distinct = list(dict.fromkeys(texts))
    if not distinct:
        return np.zeros((0, len(FINDINGS)), dtype=np.int8)
    rows = dict(zip(distinct, labeler.labels(distinct), strict=True))
    return np.stack([rows[t] for t in texts])


def _truth(labels_csv: str | Path | None, ids: Sequence[str]) -> dict[str, np.ndarray]:
    if labels_csv is None:
        return {}
    from adaragct.formats.tables import read_labels_csv

    frame = read_labels_csv(labels_csv)
    found = [vid for vid in ids if vid in frame.index]
    if ids and not found:
        raise DataError(
            labels_csv,
            "volume ids",
            f"none of the {len(ids)} predicted volumes is in it (first predicted: {ids[0]!r})",
            "pass the labels CSV of the split the predictions were made for",
        )
    values = frame.loc[found].to_numpy()
    return dict(zip(found, values, strict=True))


def _volume(
    vid: str,
    text: str,
    ref: str,
    rets: list[dict],
    generated: np.ndarray,
    referenced: np.ndarray | None,
    truth: np.ndarray | None,
) -> dict[str, Any]:
    """One volume of the page: both reports, the positive findings of each (``g``, ``r``) and of its truth
    (``t``: the labels CSV's row, else the reference's labels; ``ts`` says which), its retrievals."""
    if truth is not None:
        t, source = _positives(truth), TRUTH_CSV
    elif referenced is not None:
        t, source = _positives(referenced), TRUTH_REFERENCE
    else:
        t, source = None, None
    return {
        "id": vid,
        "gen": text,
        "ref": ref,
        "n": sum(r["a"] == "retrieved" for r in rets),
        "g": _positives(generated),
        "r": None if referenced is None else _positives(referenced),
        "t": t,
        "ts": source,
        "rets": rets,
    }


def _metrics(path: str | Path | None) -> dict | None:
    """The run's metrics for the page's header: scalars in file order, and the per-finding table if present."""
    if path is None:
        return None
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DataError(
            path, "top level", "is not a JSON object", "pass the metrics.json the evaluate stage wrote"
        )
    scalars = [
        [k, _finite(v)] for k, v in doc.items() if isinstance(v, int | float | str | bool) or v is None
    ]
    per_finding = []
    detailed = next(
        (v for k, v in doc.items() if k.endswith("clinical_detailed") and isinstance(v, dict)), {}
    )
    for finding, row in detailed.items():
        if isinstance(row, dict):
            per_finding.append(
                [finding, *(_finite(row.get(k)) for k in ("precision", "recall", "f1", "support"))]
            )
    return {"path": str(path), "scalars": scalars, "per_finding": per_finding}


def build_view(
    predictions: str | Path,
    *,
    metrics: str | Path | None = None,
    labels_csv: str | Path | None = None,
    tokenizer: str | None = None,
    labeler: Any = None,
) -> dict[str, Any]:
    """The viewer's document for a predictions file.

    Args:
        predictions: a predictions file (:func:`adaragct.formats.predictions.read_predictions`' layouts).
        metrics: the run's metrics JSON, shown in the page's header.
        labels_csv: ground-truth labels; without it (or for a volume it lacks) the reference report's labels
            are the truth, as the evaluate stage does.
        tokenizer: the checkpoint folder that wrote the predictions, to place old traces exactly.
        labeler: a :class:`adaragct.eval.labelers.Labeler` (default: the rule labeler).
    """
    path = Path(predictions)
    preds = read_predictions(path)
    records = _records(path, preds)
    tok = _tokenizer(tokenizer)
    if labeler is None:
        from adaragct.eval.labelers import build_labeler

        labeler = build_labeler("rule")
    references = preds.references or [""] * len(preds)
    generated = _label_texts(labeler, preds.predictions)
    referenced = _label_texts(labeler, references) if preds.references is not None else None
    truth = _truth(labels_csv, preds.ids)
    table = _SentenceTable()
    volumes = [
        _volume(
            vid,
            text,
            ref,
            _retrievals(record, text, tok, table, f"record {i + 1}", path),
            generated[i],
            None if referenced is None else referenced[i],
            truth.get(vid),
        )
        for i, (vid, text, ref, record) in enumerate(
            zip(preds.ids, preds.predictions, references, records, strict=True)
        )
    ]
    methods = Counter(r["m"] for v in volumes for r in v["rets"])
    return {
        "title": f"{path.absolute().parent.name}/{path.name}",
        "source": str(path),
        "labeler": getattr(labeler, "name", type(labeler).__name__),
        "labels_csv": None if labels_csv is None else str(labels_csv),
        "missing_truth": sum(v["ts"] != TRUTH_CSV for v in volumes) if labels_csv is not None else None,
        "findings": list(FINDINGS),
        "methods": dict(methods),
        "metrics": _metrics(metrics),
        "sentences": table.rows,
        "volumes": volumes,
    }
