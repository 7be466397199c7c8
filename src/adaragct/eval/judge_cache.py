"""The LLM judge's answer cache: a JSONL file that makes a long judge run resumable.

One line per finished answer, ``{"format": 1, "key": ..., "answer": ..., "score": ...}``, appended as each
batch finishes. ``key`` is the sha256 of the exact prompt text, the judge model's fingerprint
(:func:`model_fingerprint`), ``max_new_tokens`` and ``dtype`` (:meth:`adaragct.eval.judge.LLMJudge.cache_key`),
so a rerun reuses an answer only when nothing that shaped it changed; one file can hold several models' answers.
``score`` is the parsed score, for a reader of the file; the judge parses the answer again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adaragct.errors import DataError
from adaragct.io import cut_partial_last_line, utf8_error
from adaragct.ledger import fingerprint, sha256_file, weight_files, weights_fingerprint

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def model_fingerprint(model_path: str | Path) -> str:
    """sha256 naming the judge model: its weights' contents (``ledger.weights_fingerprint``, cached by file
    size and mtime, so a 70B model is read once) and every other top-level file (config, generation config,
    tokenizer). A copy of the same files elsewhere has the same fingerprint."""
    model_path = Path(model_path)
    weights = set(weight_files(model_path))
    others = sorted(p for p in model_path.iterdir() if p.is_file() and p not in weights)
    found = weights_fingerprint(model_path)
    return fingerprint(found["sha256"] if found else None, [(p.name, sha256_file(p)) for p in others])


@dataclass
class AnswerCache:
    """Append-only JSONL of finished answers: ``{"format", "key", "answer", "score"}`` per line.

    ``key`` = sha256 of the exact prompt text, the model fingerprint, ``max_new_tokens`` and ``dtype``. Each batch
    is written with one ``write`` + flush + fsync, so a killed run leaves at most one partial last line, which
    is cut off with a warning when the file is opened again.
    """

    path: Path
    answers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> AnswerCache:
        path = Path(path)
        cache = cls(path)
        if not path.exists():
            return cache
        if cut_partial_last_line(path):
            log.warning(
                "%s: its last line is incomplete (a run stopped while writing it); dropped, it is judged again",
                path,
            )
        complete = path.read_bytes()
        try:
            text = complete.decode("utf-8")
        except UnicodeDecodeError as err:
            raise utf8_error(path) from err
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                cache.answers[str(record["key"])] = str(record["answer"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(
                    path,
                    f"line {lineno}",
                    f"not a judge answer record ({err})",
                    "delete the line (or the file): the rerun judges those reports again",
                ) from err
        return cache

    def append(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        """Record finished ``(key, answer, parsed score)`` triples durably, one line each, in one write."""
        lines = [
            json.dumps({"format": CACHE_FORMAT, "key": k, "answer": a, "score": s}, ensure_ascii=False) + "\n"
            for k, a, s in items
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        self.answers.update((k, a) for k, a, _ in items)
