"""Atomic file writing and tolerant JSON/JSONL reading shared by every stage.

Outputs are written to a temporary file in the same directory and renamed, so an interrupted run never leaves a
half-written file behind (the rename is atomic on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from adaragct.errors import DataError


def _new_temp_beside(path: Path) -> Path:
    """A new empty file next to ``path``, created with mode 0o666 so that the umask decides its permissions.

    Why not ``tempfile.mkstemp``: it always creates 0600, so every output renamed from it was private to its
    writer whatever the umask (a metrics file a colleague could not read).
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def _new_dir_beside(path: Path) -> Path:
    """A new empty folder next to ``path``, created with mode 0o777 so that the umask decides its permissions, as
    ``mkdir`` gives any folder (``tempfile.mkdtemp`` always makes 0700)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file next to ``path``; on success rename it over ``path``, on error delete it.

    The file gets the mode a plain ``open(path, "w")`` would give a new file (0o666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_beside(path)
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


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():  # symbolic links followed
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_output_file(path: str | Path, *, inputs: tuple = (), field: str = "output file") -> Path:
    """Refuse, before any work, an output file that would destroy an input or could not be written.

    Args:
        path: the file a command will write (with :func:`atomic_open`, which creates missing folders).
        inputs: the files and folders the command reads (None entries are skipped); the output may be none of
            them, symbolic and hard links resolved.
        field: how the user named the output, for the message (``"--output"``, ``"output.metrics_json"``).

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: the output is an input, is a directory, or its folder is a file or not writable.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise DataError(
                path,
                field,
                f"is also an input ({source}); writing it would destroy that input",
                "choose an output path that is not one of the inputs",
            )
    if path.is_dir():
        raise DataError(path, field, "is a directory", f"name a file in it, e.g. {path / 'metrics.json'}")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # atomic_open creates the missing folders below the nearest existing one
    if not folder.is_dir():
        raise DataError(
            folder, field, f"is a file, so {path} cannot be created", "choose another output folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(
            folder, field, f"folder is not writable, so {path} cannot be written", "choose a writable folder"
        )
    return path


def utf8_error(path: str | Path) -> DataError:
    """The DataError for a file that is not UTF-8: the line and byte of the first bad byte, and the fix.

    Call it after a ``UnicodeDecodeError`` while reading ``path`` (that error's offset is relative to the chunk a
    text reader was decoding, so the file is decoded again here to find the line).
    """
    raw = Path(path).read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        start = err.start
    else:  # the file changed since it failed to decode
        return DataError(path, "file", "is not UTF-8 text", "save it as UTF-8")
    line = raw.count(b"\n", 0, start) + 1
    column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
    return DataError(
        path,
        f"line {line} byte {column}",
        f"is not UTF-8 text (byte 0x{raw[start]:02x})",
        "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 IN > OUT)",
    )


def read_text_utf8(path: str | Path) -> str:
    """The text of a UTF-8 file; a byte that is not UTF-8 is a DataError naming its line."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise utf8_error(path) from err


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
    except UnicodeDecodeError as err:
        raise utf8_error(path) from err
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
    try:
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
    except UnicodeDecodeError as err:
        raise utf8_error(path) from err
    return rows


def read_json_or_jsonl(path: str | Path) -> Any:
    """Read a file that is either one JSON value (even if named ``.jsonl``) or true JSONL.

    The AdaRAG-CT release names single-object files ``*.jsonl`` (docs/formats.md#release-bundle), so the extension proves nothing:
    try one document first, then fall back to line-by-line parsing with line-numbered errors.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "does not exist", "check the path in conf/paths or conf/data")
    text = read_text_utf8(path)
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
    tmp = _new_dir_beside(target)
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cut_partial_last_line(path: str | Path) -> int:
    """Truncate a last line without its newline (an append-only JSONL whose writer was killed: predictions, the
    judge's answer cache); returns the bytes removed."""
    path = Path(path)
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
