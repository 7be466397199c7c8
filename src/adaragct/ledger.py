"""A ledger of finished steps: fingerprint the inputs, skip if current, build, record.

Stages that build files from other files (prepare, index) keep one JSON ledger each. Per step it records the
fingerprint of the step's inputs (checksums of input files, the settings that matter, code versions), the file or
directory the step produced, and that output's sha256. A rerun skips a step whose inputs fingerprint is unchanged
and whose output is still byte-identical to what was recorded, and redoes it otherwise. Extra fields (e.g.
``source: release`` for a file taken from the AdaRAG-CT release as it is) say where an output came from, so later
stages can read the ledger to find each output.

    ledger = Ledger(out_dir / "index_state.json")
    inputs = fingerprint(sha256_path(reports_csv), settings)
    if not ledger.is_current("database", db_json, inputs):
        build(db_json)
        ledger.record("database", db_json, inputs)
"""

from __future__ import annotations

import hashlib
import json
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

    def is_current(self, name: str, output: str | Path, inputs: str) -> bool:
        """True when ``output`` exists, is byte-identical to what was recorded, and came from ``inputs``."""
        entry = self.entries.get(name)
        output = Path(output)
        return (
            not self.force
            and entry is not None
            and entry.get("inputs") == inputs
            and entry.get("file") == str(output)
            and output.exists()
            and entry.get("sha256") == sha256_path(output)
        )

    def record(self, name: str, output: str | Path, inputs: str, **info: Any) -> str:
        """Record that ``output`` was just produced from ``inputs`` (plus ``info``); returns its sha256."""
        digest = sha256_path(output)
        self.entries[name] = {"inputs": inputs, "sha256": digest, "file": str(output), **info}
        write_json(self.path, self.entries)
        return digest

    def sha256(self, name: str) -> str:
        """The recorded sha256 of step ``name``'s output."""
        return self.entries[name]["sha256"]

    def entry(self, name: str) -> dict[str, Any] | None:
        """The recorded entry of step ``name`` (inputs, sha256, file, extra fields), or None."""
        return self.entries.get(name)
