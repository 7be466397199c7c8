"""On-disk sentence-embedding cache keyed by encoder id and text, so a second run encodes nothing.

Why: encoding is the slow part of indexing (~50-100 sentences/s on 2 CPU cores, docs/performance.md) and CT-RATE reports
repeat the same sentences thousands of times. Layout under ``paths.cache_dir``::

    text_embeddings/<encoder slug>/meta.json        {"encoder_id": ..., "dim": ...}
    text_embeddings/<encoder slug>/shard-00000.npz  keys (sha1 of text, str), embeddings float32 (n, dim)

Each run that encodes something appends one shard (written atomically), so an interrupted run loses at most the
sentences of that run and never corrupts earlier shards.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adaragct.errors import DataError
from adaragct.io import atomic_open, read_json, write_json
from adaragct.retrieval.encoders import TextEncoder

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    """Cache key of a sentence: sha1 of its exact UTF-8 text (no normalisation: the encoder sees it exactly)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def encoder_slug(encoder_id: str) -> str:
    """A file-system-safe folder name for an encoder id (readable prefix + hash of the full id)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:60]
    return f"{readable}-{hashlib.sha1(encoder_id.encode()).hexdigest()[:8]}"


class EmbeddingCache:
    """Embeddings of one encoder, stored as append-only NPZ shards.

    Args:
        root: the cache root (``paths.cache_dir``).
        encoder_id: the encoder whose embeddings live here.
        dim: the encoder's output dimension (checked against the stored metadata).
    """

    def __init__(self, root: str | Path, encoder_id: str, dim: int) -> None:
        self.dir = Path(root) / "text_embeddings" / encoder_slug(encoder_id)
        self.encoder_id = encoder_id
        self.dim = dim
        self._rows: dict[str, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        meta_path = self.dir / "meta.json"
        if meta_path.is_file():
            meta = read_json(meta_path)
            if meta.get("encoder_id") != encoder_id or meta.get("dim") != dim:
                raise DataError(
                    meta_path,
                    "encoder_id/dim",
                    f"cache belongs to {meta.get('encoder_id')!r} "
                    f"(dim {meta.get('dim')}), not {encoder_id!r} (dim {dim})",
                    f"delete {self.dir} (it will be rebuilt)",
                )
        shards = sorted(self.dir.glob("shard-*.npz"))
        for shard in shards:
            self._load_shard(shard)
        # never reuse a number: a deleted shard in the middle must not make us overwrite the last one
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in shards), default=-1)

    def _load_shard(self, path: Path) -> None:
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
                keys = npz["keys"].astype(str)
                emb = np.asarray(npz["embeddings"], dtype=np.float32)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
            raise DataError(
                path,
                "file",
                f"unreadable cache shard ({err})",
                "delete this shard; its sentences are re-encoded on the next run",
            ) from err
        if emb.shape != (len(keys), self.dim):
            raise DataError(
                path,
                "embeddings",
                f"shape {emb.shape}, expected ({len(keys)}, {self.dim})",
                "delete this shard; its sentences are re-encoded on the next run",
            )
        shard_no = len(self._shards)
        self._shards.append(emb)
        for row, key in enumerate(keys):
            self._rows[str(key)] = (shard_no, row)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._rows

    def get(self, texts: Sequence[str]) -> np.ndarray:
        """Cached embeddings of ``texts`` in order; every text must be cached."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            shard, row = self._rows[text_key(text)]
            out[i] = self._shards[shard][row]
        return out

    def add(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Store new embeddings as one new shard (atomic write)."""
        if not len(texts):
            return
        keys = np.array([text_key(t) for t in texts])
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / "meta.json", {"encoder_id": self.encoder_id, "dim": self.dim})
        path = self.dir / f"shard-{self._next:05d}.npz"
        self._next += 1
        buffer = io.BytesIO()
        np.savez(buffer, keys=keys, embeddings=emb)
        with atomic_open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        shard_no = len(self._shards)
        self._shards.append(emb)
        for row, key in enumerate(keys):
            self._rows[str(key)] = (shard_no, row)


class CachedEncoder:
    """A :class:`TextEncoder` that serves cached embeddings and encodes only unseen unique texts.

    It satisfies the same protocol as the encoder it wraps, so the bank, the retrievers and the precompute use it
    transparently. ``n_encoded`` / ``n_cached`` count the work of the last calls (for the index summary).
    """

    def __init__(self, encoder: TextEncoder, cache_root: str | Path, shard_size: int = 8192) -> None:
        self.encoder = encoder
        self.shard_size = shard_size
        self.encoder_id = encoder.encoder_id
        self.dim = encoder.dim
        self.cache = EmbeddingCache(cache_root, encoder.encoder_id, encoder.dim)
        self.n_encoded = 0
        self.n_cached = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (duplicates allowed) -> float32 ``(n, dim)``; unseen unique texts go to the encoder."""
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        missing = [t for t in unique if t not in self.cache]
        if missing:
            log.info("encoding %d new unique sentences with %s", len(missing), self.encoder_id)
        for start in range(0, len(missing), self.shard_size):  # one shard per chunk: a crash loses one chunk
            chunk = missing[start : start + self.shard_size]
            self.cache.add(chunk, self.encoder.encode(chunk))
        self.n_encoded += len(missing)
        self.n_cached += len(unique) - len(missing)
        return self.cache.get(texts)
