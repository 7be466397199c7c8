"""Reopen what the index stage wrote and build the configured retriever from it (used by infer).

The files are the ones the index stage used or built (its ledger says which: the release's own pieces or ours under
``data.retrieval_dir``); the bank's manifest checks that the encoder, dim and corpus are the ones it was built
with, so a retriever can never silently query the wrong index.

Which objects are built is the retriever's own declaration (its class's ``needs``,
:data:`adaragct.retrieval.retrievers.RUNTIME_OBJECTS`): :class:`RetrievalRuntime` builds each on first use, so
``retrieval=none`` opens nothing and ``retrieval=oracle`` only the oracle contexts.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any


class RetrievalRuntime:
    """The runtime objects of :data:`~adaragct.retrieval.retrievers.RUNTIME_OBJECTS`, each built on first use from
    the index stage's files of ``data_cfg`` (and the probe encoder of ``encoder_cfg``)."""

    def __init__(
        self, data_cfg: Mapping[str, Any], encoder_cfg: Mapping[str, Any], bank_device: str = "auto"
    ) -> None:
        self.data_cfg, self.encoder_cfg, self.bank_device = data_cfg, encoder_cfg, bank_device

    @cached_property
    def contexts(self) -> Any:
        """The oracle contexts (``data.oracle_contexts``)."""
        from adaragct.data.index_files import index_file
        from adaragct.formats.contexts import read_contexts

        return read_contexts(index_file(self.data_cfg, "oracle_contexts"))

    @cached_property
    def encoder(self) -> Any:
        """The probe encoder of ``conf/encoder`` (probes are new text every time: encoded directly, the disk cache
        is for the corpus, see index)."""
        from hydra.utils import instantiate

        return instantiate(self.encoder_cfg)

    @cached_property
    def bank(self) -> Any:
        """The sentence bank, checked against the encoder (its id and dim) by the bank's manifest."""
        from adaragct.data.index_files import BANK_DIR, index_file
        from adaragct.retrieval.bank import SentenceBank, read_corpus

        encoder = self.encoder
        records, emb = read_corpus(
            index_file(self.data_cfg, "database"), index_file(self.data_cfg, "embeddings"), dim=encoder.dim
        )
        return SentenceBank.load(
            Path(self.data_cfg["retrieval_dir"]) / BANK_DIR,
            records,
            emb,
            encoder_id=encoder.encoder_id,
            dim=encoder.dim,
            device=self.bank_device,
        )

    @cached_property
    def neighbours(self) -> Any:
        """The per-organ image neighbours of each volume."""
        from adaragct.data.index_files import index_file
        from adaragct.formats.neighbours import read_image_neighbours

        return read_image_neighbours(index_file(self.data_cfg, "neighbours"))


def load_retriever(
    retrieval_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any],
    encoder_cfg: Mapping[str, Any],
    bank_device: str = "auto",
):
    """The retriever of ``conf/retrieval`` with the runtime objects its class ``needs``."""
    from hydra.utils import get_class

    from adaragct.retrieval.retrievers import build_retriever, retriever_needs

    runtime = RetrievalRuntime(data_cfg, encoder_cfg, bank_device)
    needs = retriever_needs(get_class(retrieval_cfg["_target_"]))
    return build_retriever(retrieval_cfg, **{name: getattr(runtime, name) for name in needs})
