"""Reopen what the index stage wrote and build the configured retriever from it (used by infer).

The files are the ones the index stage used or built (its ledger says which: the release's own pieces or ours under
``data.retrieval_dir``); the bank's manifest checks that the encoder, dim and corpus are the ones it was built
with, so a retriever can never silently query the wrong index.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load_retriever(
    retrieval_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    encoder_cfg: Mapping[str, Any],
    bank_device: str = "auto",
):
    """The retriever of ``conf/retrieval`` with its runtime objects (contexts, or bank + encoder + neighbours)."""
    from adaragct.data.index_files import index_file
    from adaragct.retrieval.retrievers import build_retriever

    name = retrieval_cfg.get("name")
    if name in ("none", None) or retrieval_cfg["_target_"].endswith("NoRetriever"):
        return build_retriever(retrieval_cfg)
    if retrieval_cfg["_target_"].endswith("OracleRetriever"):
        from adaragct.formats.contexts import read_contexts

        return build_retriever(retrieval_cfg, contexts=read_contexts(index_file(data_cfg, "oracle_contexts")))
    from hydra.utils import instantiate

    from adaragct.data.index_files import BANK_DIR
    from adaragct.formats.neighbours import read_image_neighbours
    from adaragct.retrieval.bank import SentenceBank, read_corpus

    # probes are new text every time: encode them directly (the disk cache is for the corpus, see index)
    encoder = instantiate(encoder_cfg)
    records, emb = read_corpus(
        index_file(data_cfg, "database"), index_file(data_cfg, "embeddings"), dim=encoder.dim
    )
    bank = SentenceBank.load(
        Path(data_cfg["retrieval_dir"]) / BANK_DIR,
        records,
        emb,
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        device=bank_device,
    )
    neighbours = read_image_neighbours(index_file(data_cfg, "neighbours"))
    return build_retriever(retrieval_cfg, bank=bank, encoder=encoder, neighbours=neighbours)
