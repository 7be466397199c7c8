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

from adaragct.errors import DataError
from adaragct.io import read_json

INDEX_LEDGER = "index_state.json"
BANK_DIR = "bank"
DATABASE_JSON = "database/train_sentences_multi_label.json"
DATABASE_NPZ = "database/train_sentence_embeds.npz"
NEIGHBOURS_JSON = "img2img_top20.json"
PIECES = ("database", "embeddings", "neighbours", "oracle_contexts", "retrieved_contexts")
# a built context file is named after the sentences per context it holds (contexts.top_k); the release's hold 3
CONTEXT_NAMES = {
    "oracle_contexts": "oracle_context_top{k}.jsonl",
    "retrieved_contexts": "retrieval_context_top{k}.jsonl",
}


def built_path(data_cfg: Mapping[str, Any], piece: str, top_k: int | None = None) -> Path:
    """Where the index stage writes ``piece`` when it builds it.

    Contexts go to the configured location (``data.oracle_contexts``, ``data.retrieved_contexts``: the release
    layout's names) with the name of ``top_k`` (the index stage's ``contexts.top_k``); without ``top_k`` (a
    reader without a ledger) the configured location as it is.
    """
    if piece in CONTEXT_NAMES:
        path = Path(data_cfg[piece])
        return path if top_k is None else path.with_name(CONTEXT_NAMES[piece].format(k=top_k))
    name = {"database": DATABASE_JSON, "embeddings": DATABASE_NPZ, "neighbours": NEIGHBOURS_JSON}[piece]
    return Path(data_cfg["retrieval_dir"]) / name


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
