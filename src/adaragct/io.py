"""Atomic file writing and tolerant JSON/JSONL reading shared by every stage.

Outputs are written to a temporary file in the same directory and renamed, so an interrupted run never leaves a
half-written file behind (the rename is atomic on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from adaragct.errors import DataError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file next to ``path``; on success rename it over ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a syntax error names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "does not exist", "check the path in conf/paths or conf/data")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DataError(
            path,
            f"line {err.lineno} column {err.colno}",
            f"malformed JSON ({err.msg})",
            "repair or regenerate the file",
        ) from err


def read_jsonl(path: str | Path) -> list[Any]:
    """Read true JSONL (one JSON value per line; blank lines skipped); errors give the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "does not exist", "check the path in conf/paths or conf/data")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(
                    path,
                    f"line {lineno}",
                    f"malformed JSON line ({err.msg})",
                    "repair or delete that line (a rerun resumes where it stopped)",
                ) from err
    return rows


def read_json_or_jsonl(path: str | Path) -> Any:
    """Read a file that is either one JSON value (even if named ``.jsonl``) or true JSONL.

    The AdaRAG-CT release names single-object files ``*.jsonl`` (SPEC 2.2), so the extension proves nothing:
    try one document first, then fall back to line-by-line parsing with line-numbered errors.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "does not exist", "check the path in conf/paths or conf/data")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return read_jsonl(path)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target``, on error it is deleted.

    A half-written folder (tokenizer, model weights) is therefore never loaded by a later stage.
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; this is an ordinary output folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
