"""Predictions JSONL (SPEC 5): one line per volume, appended safely, resumable, mergeable across processes.

Each record is written with a single ``write`` + flush + fsync, so a killed run leaves at most one partial last
line; on reopening, that tail is cut off and the ids already present are skipped, so a rerun never duplicates a
volume. Multi-process inference writes one shard per rank and :func:`merge_shards` writes the final file (in the
volumes' order) atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.io import atomic_open

TASK_TYPE = "report_generation"


def prediction_record(output, reference: str, settings, retrieval: str) -> dict[str, Any]:
    """The release-compatible record of one generated report (``image``, ``generated_text``, ...) + our trace."""
    return {
        "image": output.volume_id,
        "generated_text": output.text,
        "reference_text": reference,
        "task_type": TASK_TYPE,
        "retrieval": retrieval,
        "retrieval_count": output.retrieval_count,
        "retrieval_log": output.retrieval_log,
        "num_generated_tokens": len(output.token_ids),
        "stopped_on_end_token": output.stopped_on_end_token,
        "decoding": asdict(settings),
    }


def _cut_partial_tail(path: Path) -> int:
    """Truncate a last line without its newline (a write that was killed); returns bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return 0
        chunk, pos = 1 << 16, size
        while pos > 0:
            start = max(0, pos - chunk)
            handle.seek(start)
            data = handle.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        handle.truncate(keep)
    return size - keep


def read_done_ids(path: str | Path) -> set[str]:
    """Ids already in a predictions file (after cutting a partial tail); a malformed full line is an error."""
    path = Path(path)
    if not path.exists():
        return set()
    _cut_partial_tail(path)
    done: set[str] = set()
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                image = json.loads(line)["image"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(
                    path,
                    f"line {lineno}",
                    f"not a prediction record ({err})",
                    "delete the line or the file; the rerun regenerates what is missing",
                ) from err
            if image in done:
                raise DataError(
                    path, f"line {lineno}", f"duplicate volume {image!r}", "delete one of the two lines"
                )
            done.add(image)
    return done


class PredictionWriter:
    """Append-only writer that knows which volumes are done.

    Example::

        with PredictionWriter("outputs/infer/p.jsonl") as writer:
            todo = [v for v in volumes if v not in writer.done]
            ...
            writer.write(record)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done = read_done_ids(self.path)
        self._handle = None

    def __enter__(self) -> PredictionWriter:
        self._handle = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, record: Mapping[str, Any]) -> None:
        image = record["image"]
        if image in self.done:
            raise ValueError(f"{self.path}: volume {image!r} is already written (a rerun skips done ids)")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done.add(image)


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Every ``world_size``-th item starting at ``rank`` (balanced, order-preserving)."""
    return list(items[rank::world_size])


def shard_path(path: str | Path, rank: int, world_size: int) -> Path:
    path = Path(path)
    return path if world_size == 1 else path.with_name(f"{path.stem}.rank{rank}-of-{world_size}{path.suffix}")


def merge_shards(shards: Iterable[str | Path], order: Sequence[str], out: str | Path) -> int:
    """Merge shard files into ``out`` in ``order`` (atomically); every id must appear exactly once."""
    records: dict[str, str] = {}
    for path in shards:
        read_done_ids(path)  # cuts a partial tail, rejects malformed lines
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    image = json.loads(line)["image"]
                    if image in records:
                        raise DataError(
                            path, f"volume {image!r}", "appears in two shards", "delete one shard"
                        )
                    records[image] = line if line.endswith("\n") else line + "\n"
    missing = [vid for vid in order if vid not in records]
    if missing:
        raise DataError(
            out,
            "volumes",
            f"{len(missing)} volumes missing from the shards, first {missing[:3]}",
            "rerun inference; it resumes and fills them in",
        )
    with atomic_open(out, "w", encoding="utf-8") as handle:
        for vid in order:
            handle.write(records[vid])
    return len(order)
