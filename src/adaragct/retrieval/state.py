"""Which index outputs are up to date: ``index_state.json`` records, per output, its inputs' fingerprint and its
own sha256, so a rerun skips work that is done and valid, and redoes work whose inputs or file changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from adaragct.errors import DataError
from adaragct.io import read_json, write_json
from adaragct.retrieval.bank import sha256_file


def fingerprint(*parts: Any) -> str:
    """sha256 of JSON-serialisable parts (config values, input checksums, encoder ids)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class IndexState:
    """The ``index_state.json`` ledger of one retrieval directory.

    Args:
        path: the ledger file.
        force: treat every output as stale (``index.force=true``).
    """

    def __init__(self, path: str | Path, force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        self.entries: dict[str, dict[str, str]] = {}
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
            and output.is_file()
            and entry.get("sha256") == sha256_file(output)
        )

    def record(self, name: str, output: str | Path, inputs: str) -> str:
        """Record that ``output`` was just written from ``inputs``; returns its sha256."""
        digest = sha256_file(output)
        self.entries[name] = {"inputs": inputs, "sha256": digest, "file": str(output)}
        write_json(self.path, self.entries)
        return digest

    def sha256(self, name: str) -> str:
        return self.entries[name]["sha256"]
