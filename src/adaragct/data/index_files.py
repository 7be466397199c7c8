"""Where the index stage's outputs are, for the stages that read them (train phase=rag, infer, benchmarks).

Each retrieval piece is either taken from the data as it came (the AdaRAG-CT release bundle ships its sentence
database, the database's embeddings, the image neighbours and both context files) or built by the index stage
under ``data.retrieval_dir``. The index stage records which in its ledger (``<retrieval_dir>/index_state.json``:
per piece the file it used or wrote and ``source: release`` or ``built``), and :func:`index_file` reads it, so
every later stage uses exactly the files the index stage validated. Without a ledger (files placed by hand in the
release layout), the configured locations are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaragct import artifacts
from adaragct.errors import DataError
from adaragct.io import read_json

INDEX_LEDGER = "index_state.json"
# the names the index stage gives what it builds (their one owner is adaragct.artifacts)
BANK_DIR = artifacts.index_file_name("bank")
DATABASE_JSON = artifacts.index_file_name("database")
DATABASE_NPZ = artifacts.index_file_name("embeddings")
PIECES = ("database", "embeddings", "neighbours", "oracle_contexts", "retrieved_contexts")
COUNTED = ("neighbours", "oracle_contexts", "retrieved_contexts")  # named after the count they hold


def built_path(data_cfg: Mapping[str, Any], piece: str, k: int | None = None) -> Path:
    """Where the index stage writes ``piece`` when it builds it, named after ``k``: the neighbours per volume
    (``neighbours.k``) or the sentences per context (``contexts.top_k``) it holds.

    Contexts go beside the configured location (``data.oracle_contexts``, ``data.retrieved_contexts``: the
    release layout's names); the rest under ``data.retrieval_dir``. Without ``k`` (a reader without a ledger):
    the configured context location as it is, and the one neighbours file in ``retrieval_dir``.
    """
    if piece in ("oracle_contexts", "retrieved_contexts"):
        path = Path(data_cfg[piece])
        return path if k is None else path.with_name(artifacts.index_file_name(piece, k))
    root = Path(data_cfg["retrieval_dir"])
    if piece == "neighbours" and k is None:
        found = sorted(root.glob(artifacts.INDEX_FILES[piece].format(k="*")))  # any count
        if len(found) > 1:
            raise DataError(
                root,
                "neighbours",
                f"{len(found)} neighbour files and no index ledger ({INDEX_LEDGER}) saying which is current: "
                + ", ".join(f.name for f in found),
                f"run `python -m adaragct.index data={data_cfg.get('name')}` (it records its files), or keep one",
            )
        return found[0] if found else root / artifacts.index_file_name(piece, 20)  # the release's name
    return root / artifacts.index_file_name(piece, k)


def index_file(data_cfg: Mapping[str, Any], piece: str) -> Path:
    """The file of ``piece`` (one of :data:`PIECES`) that the index stage used or wrote for this dataset."""
    if piece not in PIECES:
        raise ValueError(f"unknown index piece {piece!r} (one of {PIECES})")
    ledger = Path(data_cfg.get("retrieval_dir") or ".") / INDEX_LEDGER
    entry = read_json(ledger).get(piece) if data_cfg.get("retrieval_dir") and ledger.is_file() else None
    path = Path(entry["file"]) if entry else built_path(data_cfg, piece)
    if not path.is_file():
        raise DataError(
            path,
            piece,
            "missing" + (f" (recorded in {ledger})" if entry else ""),
            f"run `python -m adaragct.index data={data_cfg.get('name')}` first",
        )
    return path
