"""The sentence bank: training-report sentences, their embeddings and one FAISS index per organ (docs/method.md#retrieval).

Why per organ: the adaptive retriever only ever searches the organ it is writing about, and a per-organ index
keeps that search small and exact. A sentence tagged with several organs sits in each of their partitions.
Embeddings are L2-normalised, so inner product is cosine; the default index is exact (``IndexFlatIP``); HNSW and
IVF trade recall for speed on very large banks; indexes move to the GPU when faiss-gpu and a GPU are present.

On disk (``<retrieval_dir>/bank/``) a bank is ``index-<organ>.faiss`` + ``partitions.npz`` (rows of each organ)
+ ``manifest.json`` (written last) with the encoder id, dim, counts and sha256 checksums of every file and of the
corpus (the sentence database and its embeddings, which live in the release files next to it). Loading checks all
of them, so a bank built with another encoder, another corpus or a truncated index file is an error that says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adaragct.constants import ORGANS
from adaragct.errors import DataError
from adaragct.formats.sentence_db import SentenceRecord, read_sentence_database, read_sentence_embeddings
from adaragct.io import read_json, write_json
from adaragct.ledger import sha256_file
from adaragct.retrieval.encoders import l2_normalise
from adaragct.retrieval.faiss_build import import_faiss, warn_if_mismatched

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PARTITIONS = "partitions.npz"
FORMAT = "adaragct-sentence-bank/1"
REBUILD = "rebuild it with `python -m adaragct.index` (add index.force=true to rebuild everything)"


@dataclass(frozen=True)
class IndexConfig:
    """How each organ partition is indexed.

    Attributes:
        kind: ``flat`` (exact inner product; default, fine up to a few million sentences), ``hnsw`` (graph, fast
            queries, slow to build on few cores) or ``ivf`` (inverted lists; needs training, approximate).
        hnsw_m: HNSW neighbours per node (more: better recall, more memory).
        hnsw_ef_search: HNSW search breadth (more: better recall, slower).
        ivf_nlist: IVF lists (clipped to partition size / 39, FAISS's minimum training points per list).
        ivf_nprobe: IVF lists visited per query.
        device: ``auto`` (GPU when faiss-gpu sees one), ``cpu`` or ``gpu`` (error without one).
    """

    kind: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32
    device: Literal["auto", "cpu", "gpu"] = "auto"

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"bank.kind must be flat, hnsw or ivf, got {self.kind!r}")
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"bank.device must be auto, cpu or gpu, got {self.device!r}")

    def structure(self) -> dict[str, Any]:
        """The settings that change what is stored (the device does not)."""
        out = asdict(self)
        out.pop("device")
        return out


def corpus_checksum(records: Sequence[SentenceRecord], embeddings: np.ndarray) -> str:
    """sha256 over the sentence records (ids, volumes, texts, organs, flags) and their embeddings, in order."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [[r.sentence_id, r.volume_id, r.text, list(r.organs), r.normal] for r in records],
            ensure_ascii=False,
        ).encode()
    )
    digest.update(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _new_index(vectors: np.ndarray, config: IndexConfig) -> Any:
    faiss = import_faiss()

    dim = vectors.shape[1]
    if config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
    elif config.kind == "ivf":
        nlist = max(1, min(config.ivf_nlist, len(vectors) // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(config.ivf_nprobe, nlist)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


def _to_device(index: Any, device: str) -> Any:
    faiss = import_faiss()

    if device != "cpu":  # a CPU build on a CUDA machine would keep the index on the CPU without a word
        warn_if_mismatched(faiss)
    gpus = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    if device == "gpu" and gpus == 0:
        raise RuntimeError(
            "bank.device=gpu but FAISS sees no GPU: install faiss-gpu (extra [gpu], or make install-gpu) or use auto/cpu"
        )
    if device == "cpu" or gpus == 0 or isinstance(index, faiss.IndexHNSW):  # HNSW has no GPU version
        return index
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)


class SentenceBank:
    """Training-report sentences with embeddings and per-organ FAISS indexes.

    Build with :meth:`build` (or :meth:`from_release` for the AdaRAG-CT release database), persist with
    :meth:`save`, reopen with :meth:`load`. Rows are positions in ``records`` / ``embeddings``.
    """

    def __init__(
        self,
        records: Sequence[SentenceRecord],
        embeddings: np.ndarray,
        encoder_id: str,
        config: IndexConfig,
        indexes: dict[str, Any],
        partitions: dict[str, np.ndarray],
    ) -> None:
        self.records = list(records)
        self.embeddings = embeddings
        self.encoder_id = encoder_id
        self.dim = int(embeddings.shape[1])
        self.config = config
        self.indexes = indexes
        self.partitions = partitions
        self.texts = [r.text for r in self.records]
        self._volume_rows: dict[tuple[str, str], np.ndarray] | None = None

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        records: Sequence[SentenceRecord],
        embeddings: np.ndarray,
        encoder_id: str,
        config: IndexConfig | None = None,
    ) -> SentenceBank:
        """Index ``records`` (row i embedded as ``embeddings[i]``) into one FAISS index per organ.

        An organ without sentences gets no index and a warning; searching it returns nothing.
        """
        config = config or IndexConfig()
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(records):
            raise ValueError(
                f"sentence bank: {len(records)} records but embeddings of shape {embeddings.shape}"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError("sentence bank: embeddings contain NaN/inf")
        embeddings = l2_normalise(embeddings)
        members: dict[str, list[int]] = defaultdict(list)
        for row, rec in enumerate(records):
            for organ in dict.fromkeys(rec.organs):
                members[organ].append(row)
        partitions = {organ: np.asarray(members.get(organ, []), dtype=np.int64) for organ in ORGANS}
        indexes = {}
        for organ, rows in partitions.items():
            if len(rows) == 0:
                log.warning(
                    "sentence bank: no sentences for organ '%s' -- retrieval for it will return nothing "
                    "(check the organ tagging of the training reports)",
                    organ,
                )
                continue
            indexes[organ] = _to_device(_new_index(embeddings[rows], config), config.device)
        return cls(records, embeddings, encoder_id, config, indexes, partitions)

    @classmethod
    def from_release(
        cls,
        database_json: str | Path,
        embeddings_npz: str | Path,
        encoder_id: str,
        config: IndexConfig | None = None,
    ) -> SentenceBank:
        """Build from the release's ``train_sentences_multi_label.json`` + ``train_sentence_embeds.npz``.

        ``encoder_id`` names the encoder that made the embeddings (the release's: ViSD-Boost's 256-d text tower,
        ``encoder=visd_boost``); queries must be encoded with that same encoder.
        """
        records, embeddings = read_corpus(database_json, embeddings_npz)
        return cls.build(records, embeddings, encoder_id, config)

    # ------------------------------------------------------------------------------------------------ storage
    def save(self, bank_dir: str | Path) -> dict[str, Any]:
        """Write index files, partitions and (last) the manifest; returns the manifest."""
        faiss = import_faiss()

        bank_dir = Path(bank_dir)
        bank_dir.mkdir(parents=True, exist_ok=True)
        for old in bank_dir.glob("index-*.faiss"):
            old.unlink()
        files = {}
        for organ, index in self.indexes.items():
            path = bank_dir / f"index-{organ}.faiss"
            on_gpu = "Gpu" in type(index).__name__
            faiss.write_index(faiss.index_gpu_to_cpu(index) if on_gpu else index, str(path))
            files[path.name] = sha256_file(path)
        np.savez(bank_dir / PARTITIONS, **{organ: rows for organ, rows in self.partitions.items()})
        files[PARTITIONS] = sha256_file(bank_dir / PARTITIONS)
        manifest = {
            "format": FORMAT,
            "encoder_id": self.encoder_id,
            "dim": self.dim,
            "index": self.config.structure(),
            "count": len(self.records),
            "organ_counts": {o: len(r) for o, r in self.partitions.items()},
            "corpus_sha256": corpus_checksum(self.records, self.embeddings),
            "files": files,
        }
        write_json(bank_dir / MANIFEST, manifest)
        return manifest

    @classmethod
    def load(
        cls,
        bank_dir: str | Path,
        records: Sequence[SentenceRecord],
        embeddings: np.ndarray,
        *,
        encoder_id: str | None = None,
        dim: int | None = None,
        device: Literal["auto", "cpu", "gpu"] = "auto",
    ) -> SentenceBank:
        """Reopen a saved bank over its corpus, checking encoder, dim, corpus and file checksums.

        Args:
            bank_dir: the folder :meth:`save` wrote.
            records, embeddings: the corpus (see :func:`read_corpus`).
            encoder_id, dim: what the caller will query with; a mismatch is an error.
            device: where to put the indexes.
        """
        faiss = import_faiss()

        bank_dir = Path(bank_dir)
        manifest = read_manifest(bank_dir)
        where = bank_dir / MANIFEST
        if encoder_id is not None and manifest["encoder_id"] != encoder_id:
            raise DataError(
                where,
                "encoder_id",
                f"bank was built with encoder {manifest['encoder_id']!r}, but queries use {encoder_id!r}",
                f"use the bank's encoder, or {REBUILD}",
            )
        if dim is not None and manifest["dim"] != dim:
            raise DataError(
                where,
                "dim",
                f"bank dim {manifest['dim']}, encoder dim {dim}",
                f"use the bank's encoder, or {REBUILD}",
            )
        embeddings = l2_normalise(embeddings)
        if corpus_checksum(records, embeddings) != manifest["corpus_sha256"]:
            raise DataError(
                where,
                "corpus_sha256",
                "the sentence database or its embeddings changed since the bank was built",
                REBUILD,
            )
        for name, expected in manifest["files"].items():
            path = bank_dir / name
            if not path.is_file():
                raise DataError(path, "file", "missing (listed in the bank manifest)", REBUILD)
            if sha256_file(path) != expected:
                raise DataError(
                    path,
                    "sha256",
                    "checksum does not match the manifest: the file is corrupt or truncated",
                    REBUILD,
                )
        with np.load(bank_dir / PARTITIONS, allow_pickle=False) as npz:
            partitions = {organ: npz[organ].astype(np.int64) for organ in ORGANS}
        indexes = {}
        for organ in ORGANS:
            path = bank_dir / f"index-{organ}.faiss"
            if path.name in manifest["files"]:
                indexes[organ] = _to_device(faiss.read_index(str(path)), device)
            elif len(partitions[organ]):
                raise DataError(path, "file", "missing although the organ has sentences", REBUILD)
        config = IndexConfig(**manifest["index"], device=device)
        return cls(records, embeddings, manifest["encoder_id"], config, indexes, partitions)

    # ------------------------------------------------------------------------------------------------- search
    def count(self, organ: str) -> int:
        return len(self.partitions.get(organ, ()))

    def search(
        self, queries: np.ndarray, k: int, organs: Iterable[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows per query over the union of ``organs`` (default: all) by cosine.

        Returns ``(scores, rows)``, both ``(n, k)``; missing slots have row -1 and score -inf. A sentence in
        several partitions is returned once.
        """
        queries = l2_normalise(np.atleast_2d(queries))
        n = len(queries)
        organs = [o for o in (organs or ORGANS) if o in self.indexes]
        best_scores = np.full((n, k), -np.inf, dtype=np.float32)
        best_rows = np.full((n, k), -1, dtype=np.int64)
        if not organs or k <= 0:
            return best_scores, best_rows
        parts_s, parts_r = [], []
        for organ in organs:
            scores, pos = self.indexes[organ].search(queries, min(k, self.count(organ)))
            rows = np.where(pos >= 0, self.partitions[organ][np.maximum(pos, 0)], -1)
            parts_s.append(np.where(pos >= 0, scores, -np.inf))
            parts_r.append(rows)
        all_s, all_r = np.concatenate(parts_s, axis=1), np.concatenate(parts_r, axis=1)
        for i in range(n):
            order = np.lexsort((all_r[i], -all_s[i]))  # score desc, then row asc: deterministic
            seen: set[int] = set()
            j = 0
            for t in order:
                row = int(all_r[i, t])
                if row < 0 or row in seen:
                    continue
                seen.add(row)
                best_scores[i, j], best_rows[i, j] = all_s[i, t], row
                j += 1
                if j == k:
                    break
        return best_scores, best_rows

    def volume_rows(self, volume_ids: Iterable[str], organ: str) -> np.ndarray:
        """Rows of ``organ`` sentences written for ``volume_ids`` (in that order; the adaptive candidates)."""
        if self._volume_rows is None:
            table: dict[tuple[str, str], list[int]] = defaultdict(list)
            for row, rec in enumerate(self.records):
                for o in dict.fromkeys(rec.organs):
                    table[(rec.volume_id, o)].append(row)
            self._volume_rows = {key: np.asarray(rows, dtype=np.int64) for key, rows in table.items()}
        empty = np.zeros(0, dtype=np.int64)
        parts = [self._volume_rows.get((vid, organ), empty) for vid in volume_ids]
        return np.concatenate(parts) if parts else empty


def read_manifest(bank_dir: str | Path) -> dict[str, Any]:
    """Read and minimally validate ``manifest.json`` of a bank."""
    path = Path(bank_dir) / MANIFEST
    if not path.is_file():
        raise DataError(
            path, "file", "no sentence bank here (manifest missing: never built, or interrupted)", REBUILD
        )
    manifest = read_json(path)
    for key in ("format", "encoder_id", "dim", "index", "corpus_sha256", "files"):
        if key not in manifest:
            raise DataError(path, key, "missing from the bank manifest", REBUILD)
    if manifest["format"] != FORMAT:
        raise DataError(
            path, "format", f"unknown bank format {manifest['format']!r} (expected {FORMAT})", REBUILD
        )
    return manifest


def read_corpus(
    database_json: str | Path, embeddings_npz: str | Path, dim: int | None = None
) -> tuple[list[SentenceRecord], np.ndarray]:
    """Read the sentence database and its embeddings (release layout) aligned row by row."""
    records = read_sentence_database(database_json)
    ids, emb = read_sentence_embeddings(embeddings_npz, dim=dim)
    pos = {sid: i for i, sid in enumerate(ids)}
    missing = [r.sentence_id for r in records if r.sentence_id not in pos]
    if missing:
        raise DataError(
            embeddings_npz,
            "sentence_ids",
            f"{len(missing)} database sentences have no embedding, first: {missing[:3]}",
            "re-encode the database (python -m adaragct.index)",
        )
    return records, emb[[pos[r.sentence_id] for r in records]]
