"""A ledger of finished steps: fingerprint the inputs, skip if current, build, record.

Stages that build files from other files (prepare, index, the demo) keep one JSON ledger each. Per step it
records the fingerprint of the step's inputs (checksums of input files, the settings that matter, the code: see
:func:`code_fingerprint`), the file or directory (or list of them) the step produced, and that output's sha256.
A rerun skips a step whose inputs fingerprint is unchanged and whose output is still byte-identical to what was
recorded, and redoes it otherwise. Extra fields (e.g.
``source: release`` for a file taken from the AdaRAG-CT release as it is) say where an output came from, so later
stages can read the ledger to find each output.

    ledger = Ledger(out_dir / "index_state.json")
    inputs = fingerprint(sha256_path(reports_csv), settings)
    if not ledger.is_current("database", db_json, inputs):
        build(db_json)
        ledger.record("database", db_json, inputs)
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.io import read_json, write_json


def fingerprint(*parts: Any) -> str:
    """sha256 of JSON-serialisable parts (config values, input checksums, encoder ids)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of one file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in sorted order)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of module ``name`` (``<root.name>.x.y``) under the package folder ``root``, or None."""
    base = root.joinpath(*name.split(".")[1:])
    candidates = [base / "__init__.py", *([base.with_suffix(".py")] if base != root else [])]
    return next((path for path in candidates if path.is_file()), None)


def _imported_names(path: Path, module: str) -> set[str]:
    """Every module name an ``import`` anywhere in ``path`` (function bodies included) may load, relative imports
    resolved; ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            )
            base = ".".join(p for p in (base, node.module or "") if p)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_files(*modules: str, root: str | Path | None = None) -> dict[str, Path]:
    """``{module: source file}`` of ``modules`` and every module of the package they import, transitively.

    Read statically (``ast``): imports inside functions count, nothing is executed. Importing ``a.b.c`` runs
    ``a/__init__.py`` and ``a/b/__init__.py`` too, so those are included.

    Args:
        modules: entry modules, e.g. ``"adaragct.infer"``.
        root: the package folder (default: adaragct's); its name is the package name.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    found: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in found or name.split(".")[0] != root.name:
            continue
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend(parents)
        path = _module_file(name, root)
        if path is None:
            if name in modules:
                raise ModuleNotFoundError(f"code_fingerprint: no module {name!r} under {root}")
            continue  # ``from a import b`` where ``b`` is not a module
        found[name] = path
        todo.extend(_imported_names(path, name))
    return found


def code_fingerprint(*modules: str, root: str | Path | None = None) -> str:
    """sha256 over the source of ``modules`` and everything of the package they import (:func:`module_files`):
    relative path and content of each file, in sorted order. A step that records it reruns after an edit to
    any code it runs, and only then."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    files = sorted(module_files(*modules, root=root).values())
    return fingerprint(*((f.relative_to(root).as_posix(), sha256_file(f)) for f in files))


Output = str | Path | Sequence[str | Path]


def _output_key(output: Output) -> str | list[str]:
    return str(output) if isinstance(output, (str, Path)) else [str(p) for p in output]


def _output_paths(output: Output) -> list[Path]:
    return [Path(output)] if isinstance(output, (str, Path)) else [Path(p) for p in output]


def sha256_output(output: Output) -> str:
    """sha256 of one file or directory (:func:`sha256_path`), or of a list of them (their sha256s in order)."""
    if isinstance(output, (str, Path)):
        return sha256_path(output)
    return fingerprint(*(sha256_path(p) for p in output))


class Ledger:
    """The JSON ledger of one stage's outputs.

    Args:
        path: the ledger file (written atomically after every recorded step).
        force: treat every output as stale (``force=true`` on the command line).
    """

    def __init__(self, path: str | Path, force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.entries = dict(read_json(self.path))
            except DataError:  # a damaged ledger only costs a rebuild
                self.entries = {}

    def is_current(self, name: str, output: Output, inputs: str) -> bool:
        """True when ``output`` (a file, a directory, or a list of them) exists, is byte-identical to what was
        recorded, and came from ``inputs``."""
        entry = self.entries.get(name)
        return (
            not self.force
            and entry is not None
            and entry.get("inputs") == inputs
            and entry.get("file") == _output_key(output)
            and all(p.exists() for p in _output_paths(output))
            and entry.get("sha256") == sha256_output(output)
        )

    def record(self, name: str, output: Output, inputs: str, **info: Any) -> str:
        """Record that ``output`` was just produced from ``inputs`` (plus ``info``); returns its sha256."""
        digest = sha256_output(output)
        self.entries[name] = {"inputs": inputs, "sha256": digest, "file": _output_key(output), **info}
        write_json(self.path, self.entries)
        return digest

    def sha256(self, name: str) -> str:
        """The recorded sha256 of step ``name``'s output."""
        return self.entries[name]["sha256"]

    def entry(self, name: str) -> dict[str, Any] | None:
        """The recorded entry of step ``name`` (inputs, sha256, file, extra fields), or None."""
        return self.entries.get(name)


# ---- fingerprints of model weight files (checkpoint provenance, the judge's answer cache) ------------------------

log = logging.getLogger(__name__)
CACHE_MIN_BYTES = 64 << 20  # smaller files are hashed every time (faster than a cache lookup is worth)


def _cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adaragct" / "file_sha256.json"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's contents; for large files cached by (resolved path, size, mtime_ns), so a rewritten
    file (new mtime or size) is hashed again."""
    path = Path(path).resolve()
    stat = path.stat()
    if stat.st_size < CACHE_MIN_BYTES:
        return sha256_file(path)
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _cache_path()
    try:
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    except (OSError, json.JSONDecodeError):  # a damaged cache only costs hashing again
        cache = {}
    if key not in cache:
        log.info("fingerprinting %s (%.1f GB; once per file version)", path, stat.st_size / 1e9)
        cache[key] = sha256_file(path)
        try:
            write_json(cache_file, cache)
        except OSError as error:  # a read-only home: correct, only slower next time
            log.warning("could not cache the digest of %s in %s (%s)", path, cache_file, error)
    return cache[key]


def weight_files(path: str | Path | None) -> list[Path]:
    """The weight files a Hugging Face model directory loads from (``*.safetensors``, else ``*.bin``)."""
    if path is None or not (Path(path) / "config.json").is_file():
        return []
    path = Path(path)
    return sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))


def files_digest(files: list[Path], root: Path) -> str:
    """sha256 over (path relative to ``root``, contents sha256) of each file, in the given order."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(root).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def weights_fingerprint(path: str | Path | None) -> dict[str, str] | None:
    """The ``files`` fingerprint of the weights at ``model.path``; None when it holds none (random init)."""
    files = weight_files(path)
    if not files:
        return None
    root = Path(path).resolve()
    return {"scheme": "files", "source": str(root), "sha256": files_digest(files, Path(path))}
