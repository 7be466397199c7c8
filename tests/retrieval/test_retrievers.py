"""Retrievers over a real MiniLM bank: organ routing, neighbour candidates, MMR, bad input, Hydra configs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from adaragct.errors import DataError, UsageError
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.retrievers import (
    AdaptiveRetriever,
    CorruptRetriever,
    NoRetriever,
    OracleRetriever,
    RetrievalQuery,
    Text2TextRetriever,
    build_retriever,
    current_sentence,
    retriever_needs,
)
from tests.conftest import CONF_DIR, compose_config

ALL_TRAIN = ["train_1_a_1", "train_1_a_2", "train_2_a_1", "train_3_a_1", "train_4_a_1", "train_5_a_1"]


@pytest.fixture(scope="module")
def bank(corpus_embeddings, minilm) -> SentenceBank:
    records, emb = corpus_embeddings
    return SentenceBank.build(records, emb, minilm.encoder_id)


def _neighbours(order: list[str]) -> dict[str, dict[str, list[str]]]:
    return {"valid_9_a_1": {o: order for o in ("lung", "heart", "esophagus", "aorta", "other")}}


def test_current_sentence_uses_the_unfinished_tail_only() -> None:
    assert current_sentence("The lungs are clear. The heart", "is enlarged.") == "The heart is enlarged."
    assert current_sentence("The lungs are clear.", "Hiatal hernia.") == "Hiatal hernia."
    assert current_sentence("", "No effusion.") == "No effusion."


def test_adaptive_routes_by_organ_and_uses_only_neighbour_sentences(bank, minilm) -> None:
    retriever = AdaptiveRetriever(bank, minilm, _neighbours(["train_2_a_1", "train_5_a_1", "train_3_a_1"]))
    result = retriever.retrieve(
        RetrievalQuery("valid_9_a_1", "The lungs are clear. The heart", "is enlarged.", 3)
    )
    assert result.organ == "heart"
    # heart sentences of the three neighbours only (train_1 / train_4 are not neighbours)
    assert set(result.texts) <= {
        "Cardiomegaly is present.",
        "The heart is enlarged.",
        "Heart dimensions are normal.",
    }
    assert result.texts[0] == "The heart is enlarged." and len(result) == 3
    assert list(result.scores) == sorted(result.scores, reverse=True)
    assert all(sid.startswith(("train_2", "train_5", "train_3")) for sid in result.sentence_ids)
    lung = retriever.retrieve(RetrievalQuery("valid_9_a_1", "", "Emphysema in the upper lobes.", 2))
    assert lung.organ == "lung" and len(lung) == 2
    assert all(
        t
        in {
            "A 5 mm nodule in the right lower lobe.",
            "No pleural effusion was observed.",
            "Bilateral pleural effusion is seen.",
            "The heart is enlarged.",
        }
        for t in lung.texts
    )


def test_adaptive_collapses_duplicate_texts(bank, minilm) -> None:
    retriever = AdaptiveRetriever(bank, minilm, _neighbours(ALL_TRAIN))
    result = retriever.retrieve(RetrievalQuery("valid_9_a_1", "", "Mild emphysema in both upper lobes.", 3))
    assert result.texts[0] == "Mild emphysema in both upper lobes."
    assert len(set(result.texts)) == 3  # the copy from the second reconstruction is not returned twice


def test_volume_without_neighbours_is_an_error_or_falls_back_to_the_bank(bank, minilm) -> None:
    retriever = AdaptiveRetriever(bank, minilm, _neighbours(ALL_TRAIN))
    with pytest.raises(DataError, match=r"valid_7_a_1.*no image neighbours.*missing_neighbours=bank"):
        retriever.retrieve(RetrievalQuery("valid_7_a_1", "", "The heart is enlarged.", 3))
    fallback = AdaptiveRetriever(bank, minilm, {}, missing_neighbours="bank")
    result = fallback.retrieve(RetrievalQuery("valid_7_a_1", "", "The heart is enlarged.", 3))
    assert result.organ == "heart" and result.texts[0] == "The heart is enlarged."


def test_empty_organ_partition_returns_nothing(corpus_embeddings, minilm, caplog) -> None:
    records, emb = corpus_embeddings
    keep = [i for i, r in enumerate(records) if "esophagus" not in r.organs]
    with caplog.at_level(logging.WARNING):
        bank = SentenceBank.build([records[i] for i in keep], emb[keep], minilm.encoder_id)
    retriever = AdaptiveRetriever(bank, minilm, _neighbours(ALL_TRAIN))
    result = retriever.retrieve(
        RetrievalQuery("valid_9_a_1", "", "A small hiatal hernia of the esophagus.", 3)
    )
    assert (
        len(result) == 0
        and result.organ == "esophagus"
        and "no sentences for organ 'esophagus'" in result.note
    )


def test_adaptive_refuses_a_bank_built_with_another_encoder(corpus_embeddings, minilm) -> None:
    records, emb = corpus_embeddings
    other = SentenceBank.build(records, emb, "hf:another:cls:384:123")
    with pytest.raises(ValueError, match="bank built with 'hf:another"):
        AdaptiveRetriever(other, minilm, {})


def test_text2text_searches_everything_but_the_own_patient(bank, minilm) -> None:
    retriever = Text2TextRetriever(bank, minilm)
    result = retriever.retrieve(RetrievalQuery("train_1_a_1", "", "Mild emphysema in both upper lobes.", 3))
    assert result.organ is None and len(result) == 3
    assert "Mild emphysema in both upper lobes." not in result.texts  # only patient train_1 wrote it
    assert "Centrilobular emphysema is present in the lungs." in result.texts


def test_text2text_reranks_with_the_releases_mmr_and_lambda_one_is_nearest_first(bank, minilm) -> None:
    """The release's one-stage retrieval: cosine shortlist of the whole bank, then MMR (BLEU-2 redundancy)."""
    from adaragct.retrieval.mmr import mmr_select

    query = RetrievalQuery("valid_9_a_1", "", "No pleural effusion.", 3)
    nearest = Text2TextRetriever(bank, minilm, mmr_lambda=1.0).retrieve(query)
    assert list(nearest.scores) == sorted(nearest.scores, reverse=True)
    wide = Text2TextRetriever(bank, minilm, mmr_lambda=1.0).retrieve(
        RetrievalQuery("valid_9_a_1", "", query.probe, len(bank.texts))
    )
    assert nearest.texts == wide.texts[:3]  # lambda 1: the three nearest, as before MMR was added
    mmr = Text2TextRetriever(bank, minilm).retrieve(query)  # the release's lambda 0.7 over the same shortlist
    picked = mmr_select(list(wide.texts), np.array(wide.scores), 3, 0.7, "release")
    assert mmr.texts == tuple(wide.texts[i] for i in picked)
    assert mmr.texts != nearest.texts, '"... effusion was not observed" repeats the first pick: MMR drops it'


def test_oracle_exact_and_fuzzy_lookup() -> None:
    contexts = {
        "valid_9_a_1": {"the heart is enlarged": ["Cardiomegaly.", "Heart enlarged.", "Big heart.", "x"]}
    }
    oracle = OracleRetriever(contexts)
    assert oracle.retrieve(RetrievalQuery("valid_9_a_1.nii.gz", "", "The heart is enlarged.", 3)).texts == (
        "Cardiomegaly.",
        "Heart enlarged.",
        "Big heart.",
    )
    assert len(oracle.retrieve(RetrievalQuery("valid_9_a_1", "", "The heart is mildly enlarged.", 2))) == 2
    assert len(oracle.retrieve(RetrievalQuery("valid_9_a_1", "", "Hiatal hernia.", 3))) == 0
    assert (
        len(
            OracleRetriever(contexts, min_bleu=None).retrieve(
                RetrievalQuery("valid_9_a_1", "", "The heart is mildly enlarged.", 3)
            )
        )
        == 0
    )
    assert "no oracle contexts" in oracle.retrieve(RetrievalQuery("valid_1_a_1", "", "x", 3)).note


@pytest.mark.parametrize("name", ["none", "oracle", "adaptive", "text2text", "corrupt"])
def test_build_retriever_from_the_real_configs(name: str, bank, minilm) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("index", overrides=[f"retrieval={name}", "paths.root_dir=/tmp"])
    retriever = build_retriever(
        cfg.retrieval,
        bank=bank,
        encoder=minilm,
        neighbours=_neighbours(ALL_TRAIN),
        contexts={"valid_9_a_1": {"the heart is enlarged": ["Cardiomegaly is present."]}},
    )
    assert retriever.name == name
    result = retriever.retrieve(RetrievalQuery("valid_9_a_1", "", "The heart is enlarged.", 3))
    assert (len(result) == 0) == (name == "none")
    if name == "adaptive":
        assert (retriever.n_candidates, retriever.mmr_lambda, retriever.mmr_bleu) == (50, 0.7, "release")
    if name == "corrupt":
        assert retriever.seed == 0


def test_corrupt_draws_uniform_distinct_sentences_seeded_per_volume_and_retrieval(bank) -> None:
    def texts(retriever, volume: str, index: int, probe: str = "The heart is enlarged.", k: int = 3):
        return retriever.retrieve(RetrievalQuery(volume, "", probe, k, retrieval_index=index)).texts

    corrupt = CorruptRetriever(bank, seed=7)
    first = texts(corrupt, "valid_9_a_1", 0)
    rows = corrupt.draw("valid_9_a_1", 0, 3)
    assert len(set(rows.tolist())) == 3 and first == tuple(bank.texts[r] for r in rows)
    result = corrupt.retrieve(RetrievalQuery("valid_9_a_1", "", "x", 3))
    assert result.sentence_ids == tuple(bank.records[r].sentence_id for r in rows)
    # the probe and what came before it do not matter; (seed, volume, retrieval index) alone decide
    assert texts(corrupt, "valid_9_a_1", 0, "Hiatal hernia.") == first
    fresh = CorruptRetriever(bank, seed=7)
    assert texts(fresh, "valid_9_a_1.nii.gz", 0) == first  # another instance, the same volume id
    later = [texts(corrupt, "valid_9_a_1", i) for i in range(1, 6)]
    assert any(t != first for t in later), "each retrieval of a volume draws anew"
    others = [texts(CorruptRetriever(bank, seed=s), "valid_9_a_1", 0) for s in range(8, 14)]
    assert any(t != first for t in others), "the seed changes the draws"
    whole_bank = texts(corrupt, "valid_9_a_1", 0, k=100)  # at most the whole bank, no repeats
    assert sorted(whole_bank) == sorted(bank.texts)
    # uniform over the bank's sentences (not its distinct texts, not weighted by organ): 3 of 15 rows per draw
    counts = np.zeros(len(bank.texts))
    for i in range(2000):
        counts[corrupt.draw(f"valid_{i}_a_1", i % 4, 3)] += 1
    expected = 2000 * 3 / len(bank.texts)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 36.1, counts  # 14 degrees of freedom, p = 0.001


def test_the_demo_keeps_the_smoothed_mmr_bleu_and_the_paper_configs_use_the_release_one(bank, minilm) -> None:
    """The demo's recorded results used the smoothed BLEU-2: its index and adaptive runs pin it (conf/demo.yaml),
    its other runs take no such key; the paper's experiments get the release's."""
    unused = "paths.output_dir=unused"  # nothing is written
    demo = compose_config("demo", [unused])
    index = compose_config("index", [unused, *demo.retrieval_overrides.adaptive])
    infer = compose_config(
        "infer", [unused, *demo.overrides, "retrieval=adaptive", *demo.retrieval_overrides.adaptive]
    )
    for cfg in (index, infer):
        retriever = build_retriever(cfg.retrieval, bank=bank, encoder=minilm, neighbours={})
        assert retriever.mmr_bleu == "smoothed"
    text2text = compose_config(
        "infer", [unused, *demo.overrides, "retrieval=text2text", *demo.retrieval_overrides.text2text]
    )
    assert build_retriever(text2text.retrieval, bank=bank, encoder=minilm, neighbours={}).mmr_lambda == 1.0
    for experiment in ("adaragct_8b", "adaragct_70b"):
        assert compose_config("infer", [unused, f"experiment={experiment}"]).retrieval.mmr_bleu == "release"
    with pytest.raises(UsageError, match=r"retrieval\.mmr_bleu=sacre: not a BLEU-2 variant"):
        AdaptiveRetriever(bank, minilm, {}, mmr_bleu="sacre")


def test_build_retriever_rejects_unknown_keys_and_missing_runtime_objects(bank, minilm) -> None:
    target = "adaragct.retrieval.retrievers.AdaptiveRetriever"
    with pytest.raises(ValueError, match=r"unknown keys \['topk'\]"):
        build_retriever({"_target_": target, "topk": 3}, bank=bank, encoder=minilm, neighbours={})
    with pytest.raises(ValueError, match=r"unknown keys \['top_k'\]"):  # the caller's setting, per query
        build_retriever({"_target_": target, "top_k": 3}, bank=bank, encoder=minilm, neighbours={})
    with pytest.raises(ValueError, match=r"needs runtime objects \['neighbours'\]"):
        build_retriever({"_target_": target}, bank=bank, encoder=minilm)
    assert isinstance(
        build_retriever({"_target_": "adaragct.retrieval.retrievers.NoRetriever"}, bank=bank), NoRetriever
    )
    assert np.isfinite(
        np.array(
            AdaptiveRetriever(bank, minilm, _neighbours(ALL_TRAIN))
            .retrieve(RetrievalQuery("valid_9_a_1", "", "No lymphadenopathy.", 3))
            .scores
        )
    ).all()


def test_repeated_probes_are_encoded_once_with_identical_results(bank, minilm) -> None:
    from tests.retrieval.test_encoders import CountingEncoder

    counting = CountingEncoder(minilm)
    retriever = AdaptiveRetriever(bank, counting, _neighbours(ALL_TRAIN), probe_memo=16)
    query = RetrievalQuery("valid_9_a_1", "The lungs are clear. The heart", "is enlarged.", 3)
    first, second = retriever.retrieve(query), retriever.retrieve(query)
    assert first == second and counting.seen == ["is enlarged."]
    unmemoised = AdaptiveRetriever(bank, minilm, _neighbours(ALL_TRAIN), probe_memo=0)
    assert unmemoised.encoder is minilm and unmemoised.retrieve(query) == first
    t2t = Text2TextRetriever(bank, counting, probe_memo=16)
    t2t.retrieve(query), t2t.retrieve(query)
    assert counting.seen == ["is enlarged.", "is enlarged."]  # its own memo: one more encode, then none


class Undeclared:
    """A retriever whose constructor takes the bank without declaring it."""

    name = "undeclared"

    def __init__(self, bank, k: int = 1) -> None:
        self.bank, self.k = bank, k


class NeedsTheWrongThing(Undeclared):
    needs = ("bank", "index")


def test_retrievers_declare_the_runtime_objects_they_need(bank) -> None:
    """Each retriever says what it needs (no dispatch on class names): load_retriever builds those alone."""
    from adaragct.retrieval.runtime import load_retriever

    declared = {
        cls.__name__: retriever_needs(cls)
        for cls in (NoRetriever, OracleRetriever, AdaptiveRetriever, Text2TextRetriever, CorruptRetriever)
    }
    assert declared == {
        "NoRetriever": (),
        "OracleRetriever": ("contexts",),
        "AdaptiveRetriever": ("bank", "encoder", "neighbours"),
        "Text2TextRetriever": ("bank", "encoder"),
        "CorruptRetriever": ("bank",),
    }
    with pytest.raises(TypeError, match=r"Undeclared: its constructor takes \['bank'\] \(fix: declare needs"):
        build_retriever({"_target_": f"{__name__}.Undeclared"}, bank=bank)
    with pytest.raises(TypeError, match=r"NeedsTheWrongThing.needs: \['index'\] are not runtime objects"):
        build_retriever({"_target_": f"{__name__}.NeedsTheWrongThing"}, bank=bank)
    # retrieval=none opens nothing: no data or encoder config is read
    none = load_retriever(
        compose_config("index", ["retrieval=none", "paths.output_dir=unused"]).retrieval, {}, {}
    )
    assert isinstance(none, NoRetriever)
