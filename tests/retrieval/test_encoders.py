"""Text encoders and the embedding cache, with real models (a tiny random BERT, the packaged MiniLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adaragct.errors import DataError
from adaragct.retrieval.cache import CachedEncoder, EmbeddingCache
from adaragct.retrieval.encoders import HFEncoder, MemoEncoder, TextEncoder
from tests.retrieval.conftest import CORPUS, save_tiny_bert

TEXTS = [t for _, t, _, _ in CORPUS]


def test_hf_directory_mean_and_cls_pooling_match_a_manual_forward(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    model_dir = save_tiny_bert(tmp_path / "bert")
    model, tok = AutoModel.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)
    batch = tok(TEXTS[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = {"mean": ((hidden * mask).sum(1) / mask.sum(1)).numpy(), "cls": hidden[:, 0].numpy()}
    for pooling, want in expected.items():
        enc = HFEncoder(model_dir, pooling=pooling, batch_size=3, progress=False)
        assert isinstance(enc, TextEncoder) and enc.dim == 32
        got = enc.encode(TEXTS[:4])
        assert got.dtype == np.float32 and got.shape == (4, 32)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)
    assert HFEncoder(model_dir, pooling="mean", progress=False).encoder_id != enc.encoder_id  # enc: cls


def test_projection_file_changes_dim_and_id(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    model_dir = save_tiny_bert(tmp_path / "bert")
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(8, 32)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    save_file({"weight": weight, "bias": bias}, str(tmp_path / "proj.safetensors"))
    plain = HFEncoder(model_dir, pooling="cls", progress=False)
    projected = HFEncoder(model_dir, pooling="cls", projection=tmp_path / "proj.safetensors", progress=False)
    assert projected.dim == 8 and projected.encoder_id != plain.encoder_id
    raw = plain.model(**plain.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    want = raw.detach().numpy() @ weight.T + bias
    np.testing.assert_allclose(
        projected.encode(TEXTS[:2]), want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5
    )
    np.save(tmp_path / "bad.npy", np.zeros((8, 31), np.float32))
    with pytest.raises(DataError, match="input dim 31 != model hidden 32"):
        HFEncoder(model_dir, projection=tmp_path / "bad.npy", progress=False)


def test_encoder_id_follows_the_weights(tmp_path: Path) -> None:
    a = HFEncoder(save_tiny_bert(tmp_path / "a", seed=0), progress=False)
    b = HFEncoder(save_tiny_bert(tmp_path / "b", seed=1), progress=False)
    assert a.encoder_id.split(":")[-1] != b.encoder_id.split(":")[-1]


def test_not_a_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"config\.json.*not a Hugging Face model directory"):
        HFEncoder(tmp_path, progress=False)


def test_packaged_minilm_is_pretrained_and_semantic(minilm) -> None:
    assert minilm.dim == 384 and minilm.encoder_id.startswith("hf:all-MiniLM-L6-v2:mean:384:")
    emb = minilm.encode(
        [
            "Mild emphysema in both upper lobes.",
            "Emphysematous changes in the upper lobes.",
            "Hiatal hernia is seen.",
        ]
    )
    sims = emb @ emb.T
    assert sims[0, 1] > 0.6 > sims[0, 2]  # a random model would not separate paraphrase from unrelated


def test_packaged_minilm_is_batch_invariant(minilm, tmp_path: Path) -> None:
    """A sentence's embedding is the same bits whatever it is encoded with, and a cache filled by one call pattern
    serves a later run exactly what fresh encoding gives (the demo's index must not depend on .cache/)."""
    long = (
        "Bilateral pleural effusion with compressive atelectasis in both lower lobes, more on the right side."
    )
    batch = minilm.encode([long, *TEXTS[:5], "Heart."])
    np.testing.assert_array_equal(batch[1:6], np.stack([minilm.encode([t])[0] for t in TEXTS[:5]]))
    assert ":single:" in minilm.encoder_id
    cached = CachedEncoder(minilm, tmp_path / "cache")
    cached.encode([*TEXTS[3:], long])  # fills the cache in other company
    np.testing.assert_array_equal(
        CachedEncoder(minilm, tmp_path / "cache").encode(TEXTS), minilm.encode(TEXTS)
    )
    assert HFEncoder(minilm.path, progress=False).encoder_id != minilm.encoder_id  # batched: another cache


def test_packaged_minilm_equals_its_sentence_transformers_pipeline(minilm) -> None:
    from adaragct.retrieval.encoders import SentenceTransformerEncoder, packaged_minilm_path

    st = SentenceTransformerEncoder(packaged_minilm_path(), progress=False)
    assert st.dim == 384 and st.encoder_id.startswith("st:")
    np.testing.assert_allclose(st.encode(TEXTS), minilm.encode(TEXTS), atol=2e-5)


class CountingEncoder:
    """A real encoder that also records how many texts it was asked to encode."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner, self.encoder_id, self.dim, self.seen = inner, inner.encoder_id, inner.dim, []

    def encode(self, texts):
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_cache_encodes_unique_texts_once_and_a_second_run_nothing(tmp_path: Path) -> None:
    enc = CountingEncoder(HFEncoder(save_tiny_bert(tmp_path / "bert"), progress=False))
    first = CachedEncoder(enc, tmp_path / "cache", shard_size=4)
    got = first.encode(TEXTS + TEXTS[:3])
    assert sorted(enc.seen) == sorted(set(TEXTS)) and first.n_encoded == len(set(TEXTS))
    np.testing.assert_allclose(got, enc.inner.encode(TEXTS + TEXTS[:3]), atol=1e-6)
    enc.seen.clear()
    second = CachedEncoder(enc, tmp_path / "cache")  # a new run: reads the shards from disk
    np.testing.assert_array_equal(second.encode(TEXTS), got[: len(TEXTS)])
    assert enc.seen == [] and second.n_encoded == 0 and second.n_cached == len(set(TEXTS))
    second.encode(["A new sentence about the aorta."])
    assert enc.seen == ["A new sentence about the aorta."]


def test_cache_refuses_another_encoder_and_names_a_corrupt_shard(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "enc-a", 4)
    cache.add(["x", "y"], np.eye(2, 4, dtype=np.float32))
    assert len(EmbeddingCache(tmp_path, "enc-a", 4)) == 2
    meta = next(tmp_path.rglob("meta.json"))
    meta.write_text(meta.read_text().replace('"dim": 4', '"dim": 5'))
    with pytest.raises(DataError, match="cache belongs to"):
        EmbeddingCache(tmp_path, "enc-a", 4)
    meta.write_text(meta.read_text().replace('"dim": 5', '"dim": 4'))
    shard = next(tmp_path.rglob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(DataError, match=r"unreadable cache shard.*delete this shard"):
        EmbeddingCache(tmp_path, "enc-a", 4)


def test_memo_encodes_each_text_once_alone_and_evicts_the_oldest(tmp_path: Path) -> None:
    inner = HFEncoder(save_tiny_bert(tmp_path / "bert"), progress=False)
    texts = list(dict.fromkeys(TEXTS))  # distinct
    enc = CountingEncoder(inner)
    memo = MemoEncoder(enc, max_items=3)
    assert (memo.encoder_id, memo.dim) == (inner.encoder_id, inner.dim)
    first = memo.encode(texts[:3])
    # each text is encoded alone, so the result never depends on what else was in the call
    np.testing.assert_array_equal(first, np.stack([inner.encode([t])[0] for t in texts[:3]]))
    again = memo.encode([texts[2], texts[0], texts[2]])
    np.testing.assert_array_equal(again, first[[2, 0, 2]])
    assert enc.seen == texts[:3] and (memo.hits, memo.misses) == (3, 3)
    memo.encode([texts[3]])  # over max_items: the least recently used text (texts[1]) goes
    memo.encode([texts[0], texts[1]])
    assert enc.seen == [*texts[:3], texts[3], texts[1]]
    memo.clear()
    assert (memo.hits, memo.misses) == (0, 0)
    memo.encode([texts[0]])
    assert enc.seen[-1] == texts[0]
    with pytest.raises(ValueError, match="probe memo size"):
        MemoEncoder(inner, 0)


def test_the_default_encoders_files_are_checked_against_pinned_hashes(tmp_path: Path) -> None:
    """The packaged all-MiniLM-L6-v2 passes; a copy with one changed file (or one missing) is refused by name."""
    import shutil

    from adaragct.retrieval.encoders import MINILM_SHA256, packaged_minilm_path, verify_minilm

    installed = packaged_minilm_path()  # the installed package's files pass
    copy = tmp_path / "minilm"
    copy.mkdir()
    for name in MINILM_SHA256:
        if name != "model.safetensors":
            shutil.copy(installed / name, copy / name)
    (copy / "model.safetensors").symlink_to(installed / "model.safetensors")
    assert verify_minilm(copy) == copy
    (copy / "config.json").write_text((installed / "config.json").read_text().replace("384", "385"))
    with pytest.raises(DataError, match=r"config\.json: sha256: is not all-MiniLM-L6-v2's file .*reinstall"):
        verify_minilm(copy)
    (copy / "config.json").unlink()
    with pytest.raises(DataError, match=r"config\.json: sha256: .*got missing"):
        verify_minilm(copy)
