"""Writing a predictions JSONL (docs/method.md#adaptive-generation): one :class:`~adaragct.formats.predictions.Prediction`
per line, appended safely, resumable, mergeable across processes (the record's schema: :mod:`adaragct.formats.predictions`).

Each record is written with a single ``write`` + flush + fsync, so a killed run leaves at most one partial last
line; on reopening, that tail is cut off and the ids already present are skipped, so a rerun never duplicates a
volume. Multi-process inference writes one shard per rank and :func:`finalize` writes the final file (in the
volumes' order) atomically and removes the shards. A rerun skips the volumes in the final file and in any shard,
so it resumes with another number of processes too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.formats.predictions import TASK_TYPE, Prediction
from adaragct.io import atomic_open, cut_partial_last_line


def prediction_record(
    output, reference: str, settings, retrieval: str, global_context: Sequence[str] | None = None
) -> Prediction:
    """The release-compatible record of one generated report (``image``, ``generated_text``, ...) + our trace;
    ``global_context``: the training volumes whose reports preceded the prompt (only then in the record)."""
    return Prediction(
        image=output.volume_id,
        generated_text=output.text,
        reference_text=reference,
        task_type=TASK_TYPE,
        retrieval=retrieval,
        retrieval_count=output.retrieval_count,
        retrieval_log=output.retrieval_log,
        num_generated_tokens=len(output.token_ids),
        stopped_on_end_token=output.stopped_on_end_token,
        decoding=asdict(settings),
        global_context=None if global_context is None else list(global_context),
    )


def _records(path: str | Path) -> dict[str, str]:
    """``{image: line}`` of a predictions file, read only. An unterminated last line (a write in flight, or one
    that was killed) is left out; a malformed full line or a volume written twice is an error."""
    records: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                break
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
            if image in records:
                raise DataError(
                    path, f"line {lineno}", f"duplicate volume {image!r}", "delete one of the two lines"
                )
            records[image] = line
    return records


def read_done_ids(path: str | Path) -> set[str]:
    """Ids already in a predictions file (after cutting a partial tail); a malformed full line is an error."""
    path = Path(path)
    if not path.exists():
        return set()
    cut_partial_last_line(path)
    return set(_records(path))


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

    def write(self, record: Prediction) -> None:
        image = record.image
        if image in self.done:
            raise ValueError(f"{self.path}: volume {image!r} is already written (a rerun skips done ids)")
        self._handle.write(record.to_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.done.add(image)


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Every ``world_size``-th item starting at ``rank`` (balanced, order-preserving)."""
    return list(items[rank::world_size])


def shard_path(path: str | Path, rank: int, world_size: int) -> Path:
    path = Path(path)
    return path if world_size == 1 else path.with_name(f"{path.stem}.rank{rank}-of-{world_size}{path.suffix}")


def sibling_shards(path: str | Path) -> list[Path]:
    """Every shard file of ``path``, whatever the process count that wrote it (``p.rank0-of-8.jsonl``, ...)."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(path.stem)}\.rank\d+-of-\d+{re.escape(path.suffix)}")
    return sorted(
        p for p in path.parent.glob(f"{path.stem}.rank*-of-*{path.suffix}") if pattern.fullmatch(p.name)
    )


def done_ids_elsewhere(path: str | Path, world_size: int) -> set[str]:
    """Ids already in ``path``'s final file or in shards of another process count, so that a rerun with more or
    fewer processes resumes too. Read only: this run's own shards (written concurrently) are not read here."""
    own = {shard_path(path, r, world_size) for r in range(world_size)}
    files = [p for p in (Path(path), *sibling_shards(path)) if p.exists() and p not in own]
    return {image for p in files for image in _records(p)}


# decoding settings that change no output (exact by design, tested): a rerun may change them and still resume
OUTPUT_NEUTRAL = frozenset({"compact_cache", "split_injections", "speculative"})


def _first_record(path: Path) -> dict[str, Any] | None:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.endswith("\n") and line.strip():
                return json.loads(line)
    return None


def check_resumable(
    path: str | Path, *, decoding: Mapping[str, Any], retrieval: str, global_context: bool
) -> None:
    """Refuse to append to a predictions file (or its shards) whose reports were decoded otherwise.

    A rerun skips the volumes already in the file, so a run with other settings (another ``max_new_tokens``,
    retrieval, global context) into the same file would silently mix two experiments in one set of predictions.
    Settings in :data:`OUTPUT_NEUTRAL`, and keys an older record lacks, are not compared.
    """
    for file in (p for p in (Path(path), *sibling_shards(path)) if p.exists()):
        first = _first_record(file)
        if first is None:
            continue
        differ = []
        if first.get("retrieval", retrieval) != retrieval:
            differ.append(f"retrieval={first['retrieval']} (this run: {retrieval})")
        old = first.get("decoding") or {}
        for key, value in decoding.items():
            if key not in OUTPUT_NEUTRAL and key in old and old[key] != value:
                differ.append(f"generation.{key}={old[key]} (this run: {value})")
        if ("global_context" in first) != global_context:
            differ.append(
                f"global context {'on' if 'global_context' in first else 'off'} (this run: "
                f"{'on' if global_context else 'off'})"
            )
        if differ:
            raise DataError(
                file,
                "decoding settings",
                f"its reports were written with {', '.join(differ)}; resuming into it would mix two settings",
                "give this run its own predictions=PATH (or --output), or delete the file to start over",
            )


def merge_shards(shards: Iterable[str | Path], order: Sequence[str], out: str | Path) -> int:
    """Merge prediction files into ``out`` atomically: ``order``'s volumes first, in that order (each must be
    present), then any other volume the files hold, so nothing is lost. A volume may be in several files (a
    merged file and the shards it came from) only with the same record."""
    records: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for path in shards:
        for image, line in _records(path).items():
            if image in records and records[image] != line:
                raise DataError(
                    path,
                    f"volume {image!r}",
                    f"differs from its record in {origin[image]}",
                    "delete the stale one of the two files",
                )
            records.setdefault(image, line)
            origin.setdefault(image, Path(path))
    missing = [vid for vid in order if vid not in records]
    if missing:
        raise DataError(
            out,
            "volumes",
            f"{len(missing)} volumes missing from the shards, first {missing[:3]}",
            "rerun inference; it resumes and fills them in",
        )
    wanted = set(order)
    with atomic_open(out, "w", encoding="utf-8") as handle:
        for vid in [*order, *(vid for vid in records if vid not in wanted)]:
            handle.write(records[vid])
    return len(records)


def finalize(path: str | Path, order: Sequence[str]) -> int:
    """Write ``path`` from itself and every shard beside it (``order`` first), then delete the shards."""
    path = Path(path)
    shards = sibling_shards(path)
    count = merge_shards([*([path] if path.exists() else []), *shards], order, path)
    for shard_file in shards:
        shard_file.unlink()
    return count
