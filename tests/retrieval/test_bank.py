"""The per-organ FAISS sentence bank: exact search, persistence, manifest checks and bad input."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from adaragct.errors import DataError
from adaragct.formats.sentence_db import write_sentence_database, write_sentence_embeddings
from adaragct.retrieval.bank import IndexConfig, SentenceBank, read_corpus
from tests.retrieval.conftest import records_of


def _brute_force(bank: SentenceBank, query: np.ndarray, organ: str, k: int) -> list[int]:
    rows = bank.partitions[organ]
    sims = bank.embeddings[rows] @ query
    return [int(rows[i]) for i in np.lexsort((rows, -sims))[:k]]


def test_flat_bank_partitions_by_organ_and_search_is_exact(corpus_embeddings, minilm) -> None:
    records, emb = corpus_embeddings
    bank = SentenceBank.build(records, emb, minilm.encoder_id)
    assert {o: bank.count(o) for o in bank.partitions} == {
        "lung": 7,
        "heart": 6,
        "esophagus": 1,
        "aorta": 1,
        "other": 1,
    }
    query = minilm.encode(["Emphysema in the upper lobes."])
    scores, rows = bank.search(query, 3, organs=["lung"])
    assert rows[0].tolist() == _brute_force(bank, query[0], "lung", 3)
    assert records[rows[0][0]].text == "Mild emphysema in both upper lobes."
    np.testing.assert_allclose(scores[0], bank.embeddings[rows[0]] @ query[0], atol=1e-5)
    # the multi-organ sentence sits in both partitions but comes back once from a whole-bank search
    _, rows = bank.search(minilm.encode(["The heart is enlarged."]), 15)
    assert len(set(rows[0].tolist()) - {-1}) == len([r for r in rows[0] if r >= 0]) == 15


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_the_exact_neighbour_on_a_small_bank(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(400, 16)).astype(np.float32)
    records = [dataclasses.replace(records_of()[0], sentence_id=f"s{i}", text=f"t{i}") for i in range(400)]
    bank = SentenceBank.build(records, emb, "enc", IndexConfig(kind=kind, ivf_nlist=4, ivf_nprobe=4))
    _, rows = bank.search(emb[:20], 1, organs=["lung"])
    assert rows[:, 0].tolist() == list(range(20))
    bank.save(tmp_path)
    again = SentenceBank.load(tmp_path, records, emb, encoder_id="enc")
    assert type(again.indexes["lung"]).__name__ == type(bank.indexes["lung"]).__name__


def _saved(tmp_path: Path, corpus_embeddings, encoder_id: str) -> tuple[Path, list, np.ndarray]:
    records, emb = corpus_embeddings
    SentenceBank.build(records, emb, encoder_id).save(tmp_path / "bank")
    return tmp_path / "bank", records, emb


def test_save_load_roundtrip_and_manifest(tmp_path: Path, corpus_embeddings, minilm) -> None:
    bank_dir, records, emb = _saved(tmp_path, corpus_embeddings, minilm.encoder_id)
    bank = SentenceBank.load(bank_dir, records, emb, encoder_id=minilm.encoder_id, dim=384, device="cpu")
    query = minilm.encode(["Hiatal hernia."])
    assert bank.search(query, 1, ["esophagus"])[1][0, 0] == 9
    manifest = (bank_dir / "manifest.json").read_text()
    for key in ("encoder_id", "corpus_sha256", "index-lung.faiss", "organ_counts"):
        assert key in manifest


def test_loading_with_another_encoder_or_dim_is_an_error(tmp_path: Path, corpus_embeddings, minilm) -> None:
    bank_dir, records, emb = _saved(tmp_path, corpus_embeddings, minilm.encoder_id)
    with pytest.raises(
        DataError, match=r"bank was built with encoder 'hf:all-MiniLM.*but queries use 'hf:other"
    ):
        SentenceBank.load(bank_dir, records, emb, encoder_id="hf:other:cls:384:abc")
    with pytest.raises(DataError, match="bank dim 384, encoder dim 256"):
        SentenceBank.load(bank_dir, records, emb, encoder_id=minilm.encoder_id, dim=256)


def test_loading_over_a_changed_corpus_is_an_error(tmp_path: Path, corpus_embeddings, minilm) -> None:
    bank_dir, records, emb = _saved(tmp_path, corpus_embeddings, minilm.encoder_id)
    changed = [*records[:-1], dataclasses.replace(records[-1], text="The heart is small.")]
    with pytest.raises(DataError, match=r"corpus_sha256.*changed since the bank was built"):
        SentenceBank.load(bank_dir, changed, emb, encoder_id=minilm.encoder_id)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_truncated_or_missing_index_file_is_an_error(
    tmp_path: Path, corpus_embeddings, damage: str
) -> None:
    bank_dir, records, emb = _saved(tmp_path, corpus_embeddings, "enc")
    path = bank_dir / "index-lung.faiss"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        path.unlink()
    match = "missing" if damage == "delete" else "corrupt or truncated"
    with pytest.raises(DataError, match=f"index-lung.faiss.*{match}.*python -m adaragct.index"):
        SentenceBank.load(bank_dir, records, emb, encoder_id="enc")


def test_missing_manifest_says_the_bank_was_never_built(tmp_path: Path, corpus_embeddings) -> None:
    records, emb = corpus_embeddings
    with pytest.raises(DataError, match="no sentence bank here"):
        SentenceBank.load(tmp_path, records, emb)


def test_empty_organ_partition_warns_and_searches_to_nothing(
    tmp_path: Path, corpus_embeddings, caplog
) -> None:
    records, emb = corpus_embeddings
    keep = [i for i, r in enumerate(records) if "esophagus" not in r.organs]
    with caplog.at_level(logging.WARNING):
        bank = SentenceBank.build([records[i] for i in keep], emb[keep], "enc")
    assert "no sentences for organ 'esophagus'" in caplog.text
    assert bank.count("esophagus") == 0 and "esophagus" not in bank.indexes
    scores, rows = bank.search(emb[:1], 3, organs=["esophagus"])
    assert rows.tolist() == [[-1, -1, -1]] and np.isneginf(scores).all()
    bank.save(tmp_path)
    assert SentenceBank.load(tmp_path, [records[i] for i in keep], emb[keep]).count("esophagus") == 0


def test_bank_from_release_files(tmp_path: Path, corpus_embeddings) -> None:
    records, emb = corpus_embeddings
    reduced = (emb[:, :256] / np.linalg.norm(emb[:, :256], axis=1, keepdims=True)).astype(np.float32)
    write_sentence_database(tmp_path / "db.json", records)
    order = np.arange(len(records))[::-1]  # the NPZ may list sentences in any order
    write_sentence_embeddings(tmp_path / "emb.npz", [records[i] for i in order], reduced[order])
    bank = SentenceBank.from_release(tmp_path / "db.json", tmp_path / "emb.npz", "release:cxr-bert-256")
    assert bank.dim == 256 and bank.count("lung") == 7
    np.testing.assert_allclose(bank.embeddings, reduced, atol=1e-6)
    write_sentence_embeddings(tmp_path / "short.npz", records[:-1], reduced[:-1])
    with pytest.raises(DataError, match="1 database sentences have no embedding"):
        read_corpus(tmp_path / "db.json", tmp_path / "short.npz")
