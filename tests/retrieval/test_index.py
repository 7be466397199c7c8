"""The index command end to end on a demo cohort made by the real prepare command, read back by the bundle readers.

The cohort is the demo generator at a reduced size. Its organ signal is raised to 6.0 for the quality test: at
the demo default (1.0, one noise standard deviation in 256 dimensions) a linear probe finds the findings (AUC ~0.9)
but cosine nearest neighbours barely can (neighbour/random agreement ~1.05-1.2; 1.28 at 3.0 and 1.47 at 4.0 with
120 training patients), so at the default a ratio assertion would test the generator, not the retrieval code.
Random neighbours give a ratio of 1.0 at any signal.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from adaragct.formats.contexts import read_contexts
from adaragct.formats.neighbours import read_image_neighbours
from adaragct.formats.sentence_db import read_sentence_database, read_sentence_embeddings
from adaragct.ids import patient_id
from adaragct.retrieval.bank import SentenceBank, read_corpus
from tests.conftest import CONF_DIR

GENERATOR = [
    "data.generator.n_train_patients=120",
    "data.generator.n_valid_patients=40",
    "data.generator.organ_signal=6.0",
]


def _compose(name: str, root: Path, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            name, overrides=[f"paths.root_dir={root}", f"paths.data_dir={root}/data", "data=demo", *overrides]
        )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple:
    from adaragct.apps.index import run
    from adaragct.apps.prepare import run as run_prepare

    root = tmp_path_factory.mktemp("cohort")
    with contextlib.redirect_stdout(io.StringIO()):
        run_prepare(_compose("prepare", root, [*GENERATOR, "tiny_lm.steps=5"]))
    cfg = _compose("index", root, [*GENERATOR, "index.progress=false", "+encoder.progress=false"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary = run(cfg)
    return cfg, summary, out.getvalue()


def test_index_writes_the_release_layout_and_the_bundle_readers_load_it(indexed) -> None:
    cfg, summary, printed = indexed
    data = cfg.data
    assert all(status.startswith("built") for status in summary["status"].values())
    records = read_sentence_database(Path(data.retrieval_dir) / "database/train_sentences_multi_label.json")
    ids, emb = read_sentence_embeddings(
        Path(data.retrieval_dir) / "database/train_sentence_embeds.npz", dim=384
    )
    assert len(records) == len(ids) == summary["sentences"] > 1000 and emb.shape == (len(ids), 384)
    assert len({r.volume_id for r in records}) == summary["train_volumes"]
    neighbours = read_image_neighbours(Path(data.retrieval_dir) / "img2img_top20.json")
    assert len(neighbours) == summary["train_volumes"] + summary["valid_volumes"]
    assert all(
        len(per[o]) == 20
        for per in neighbours.values()
        for o in ("lung", "heart", "esophagus", "aorta", "other")
    )
    for path in (data.oracle_contexts, data.retrieved_contexts):
        contexts = read_contexts(path)
        assert sum(vid.startswith("train_") for vid in contexts) > 0.9 * summary["train_volumes"]
        assert any(vid.startswith("valid_") for vid in contexts)
        assert all(1 <= len(c) <= 3 for table in contexts.values() for c in table.values())
    records, emb = read_corpus(
        Path(data.retrieval_dir) / "database/train_sentences_multi_label.json",
        Path(data.retrieval_dir) / "database/train_sentence_embeds.npz",
    )
    bank = SentenceBank.load(
        Path(data.retrieval_dir) / "bank", records, emb, encoder_id=summary["encoder_id"]
    )
    assert {o: bank.count(o) for o in bank.partitions} == summary["organ_counts"]
    assert "retrieved_contexts" in printed and "ratio" in printed and "precision@3" in printed


def test_no_context_comes_from_the_own_patient(indexed) -> None:
    cfg, _, _ = indexed
    for path in (cfg.data.oracle_contexts, cfg.data.retrieved_contexts):
        from adaragct.io import read_json

        for vid, entries in read_json(path).items():
            for entry in entries:
                assert all(
                    patient_id(r["sentence_id"].rsplit("_s", 1)[0]) != patient_id(vid)
                    for r in entry["retrieved"]
                )


def test_retrieval_quality_beats_random(indexed) -> None:
    _, summary, _ = indexed
    quality = summary["quality"]
    assert quality["neighbours"]["pairs"] >= 50
    assert quality["neighbours"]["ratio"] > 1.5
    retrieval = quality["retrieval"]
    assert retrieval["probes"] > 300 and retrieval["empty"] < 0.05 * retrieval["probes"]
    assert retrieval["flag_precision"] > retrieval["random_flag_precision"] + 0.1
    assert retrieval["finding_precision"] > retrieval["random_finding_precision"] + 0.1


def test_rerun_skips_everything_and_changes_no_byte(indexed) -> None:
    from adaragct.apps.index import run

    cfg, _, _ = indexed
    files = sorted(
        p
        for p in Path(cfg.data.root, "bundle").rglob("*")
        if (p.is_file() and "retrieval" in str(p)) or p.name.endswith("top3.jsonl")
    )
    before = {p: p.read_bytes() for p in files}
    with contextlib.redirect_stdout(io.StringIO()):
        summary = run(cfg)
    assert set(summary["status"].values()) == {"up to date"}
    assert {p: p.read_bytes() for p in files if p.name != "index_state.json"} == {
        p: b for p, b in before.items() if p.name != "index_state.json"
    }


def test_no_same_patient_neighbour_in_the_full_size_demo_cohort(tmp_path: Path) -> None:
    """Neighbours over the demo cohort at its default size (every volume of both splits, all organs)."""
    from adaragct.apps.prepare import run as run_prepare
    from adaragct.formats.embeddings import VISD_BOOST_KEYS, read_embeddings_npz
    from adaragct.retrieval.neighbours import image_neighbours, organ_vectors, training_means

    with contextlib.redirect_stdout(io.StringIO()):
        run_prepare(_compose("prepare", tmp_path, ["tiny_lm.enabled=false"]))
    cfg = _compose("index", tmp_path, [])
    organ = {
        s: read_embeddings_npz(cfg.data.organ_embeddings[s], VISD_BOOST_KEYS) for s in ("train", "valid")
    }
    whole = {
        s: read_embeddings_npz(cfg.data.whole_embeddings[s], [cfg.data.whole_key]) for s in ("train", "valid")
    }
    train_ids = list(organ["train"].ids)
    assert len({patient_id(v) for v in train_ids}) < len(train_ids)  # the cohort has sibling reconstructions

    def vectors(split: str, means=None) -> dict:
        ids = list(organ[split].ids)
        arrays = {k: organ[split].rows(k, ids) for k in VISD_BOOST_KEYS}
        return organ_vectors(arrays, whole[split].rows(cfg.data.whole_key, ids), "whole", means)

    means = training_means(
        {k: organ["train"].arrays[k] for k in VISD_BOOST_KEYS}, whole["train"].arrays[cfg.data.whole_key]
    )
    train_vec = vectors("train", means)
    found = image_neighbours(
        list(organ["valid"].ids), vectors("valid", means), train_ids, train_vec, progress=False
    )
    found.update(image_neighbours(train_ids, train_vec, train_ids, train_vec, progress=False))
    assert len(found) == len(train_ids) + len(organ["valid"].ids)
    for vid, per in found.items():
        for items in per.values():
            assert len(items) == 20 and all(patient_id(n["image_id"]) != patient_id(vid) for n in items)
