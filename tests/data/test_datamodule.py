"""The DataModule on a real (small) demo cohort: patient split, determinism, phase=rag context spans and masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from adaragct.constants import IGNORE_INDEX, RAG_TOKEN, RET_END, RET_START, SLOT_TOKENS, TASK_TOKEN
from adaragct.data.cohort import patient_split
from adaragct.data.datamodule import ContextRoll, ReportDataModule
from adaragct.data.datasets import load_split
from adaragct.data.prompt import PromptConfig
from adaragct.data.sentences import split_sentences
from adaragct.data.specs import ContextMix, LoaderSpec
from adaragct.ids import patient_id
from tests.conftest import compose_config

PROMPT = PromptConfig(**compose_config("train", resolve=False).prompt)
# the settings a test leaves out are the config's (conf/datamodule, conf/phase/rag.yaml: contexts), as in a run
_RAG = compose_config("train", ["phase=rag", "paths.output_dir=unused"], resolve=False)
DATAMODULE, CONTEXTS = dict(_RAG.datamodule), dict(_RAG.phase.contexts)


def loader(**settings) -> LoaderSpec:
    """conf/datamodule with ``settings`` changed (in-process loading, no length grouping unless asked)."""
    return LoaderSpec.from_config({**DATAMODULE, "num_workers": 0, "length_grouping": False, **settings})


def mix(**settings) -> ContextMix:
    """conf/phase/rag.yaml's context mix with ``settings`` changed."""
    return ContextMix.from_config({**CONTEXTS, **settings})


@pytest.fixture(scope="module")
def rag_data(small_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo cohort plus oracle/retrieved context files in the release layout (single JSON object).

    Contexts here are other volumes' sentences, tagged so the test can tell the two sources apart; the real
    ones come from the index stage, which has its own tests.
    """
    volumes = load_split(small_demo, "train")
    pool = [s for v in volumes[:5] for s in split_sentences(v.report)]
    out = tmp_path_factory.mktemp("ctx")
    for source in ("oracle", "retrieved"):
        obj = {
            f"{v.volume_id}.nii.gz": [
                {
                    "query_sentence": {"text": s},
                    "retrieved": [
                        {"text": f"{source.upper()} {pool[(i + k) % len(pool)]}"} for k in range(3)
                    ],
                }
                for i, s in enumerate(split_sentences(v.report))
            ]
            for v in volumes
        }
        (out / f"{source}.jsonl").write_text(json.dumps(obj))
    return {
        **small_demo,
        "oracle_contexts": str(out / "oracle.jsonl"),
        "retrieved_contexts": str(out / "retrieved.jsonl"),
    }


@pytest.fixture(scope="module")
def tokenizer(small_demo: dict):
    return AutoTokenizer.from_pretrained(small_demo["tokenizer_dir"])


def _module(data: dict, tokenizer, contexts: dict | None, **kwargs) -> ReportDataModule:
    dm = ReportDataModule(
        data,
        tokenizer,
        PROMPT,
        # max_length: the demo experiment's budget: CT-RATE-long reports + 4 context spans
        loader(batch_size=4, max_length=2048, val_fraction=0.2, **kwargs),
        contexts=None if contexts is None else mix(**contexts),
        seed=7,
        visual_partners=True,
    )
    dm.setup("fit")
    return dm


def test_patient_split_has_no_leakage(small_demo: dict) -> None:
    ids = [v.volume_id for v in load_split(small_demo, "train")]
    train, val = patient_split(ids, 0.2, seed=0)
    assert sorted(train + val) == list(range(len(ids)))
    assert {patient_id(ids[i]) for i in train}.isdisjoint({patient_id(ids[i]) for i in val})
    assert 0.05 < len(val) / len(ids) < 0.4
    assert patient_split(ids, 0.2, seed=0) == (train, val)


def test_base_batch_prompt_and_target(small_demo: dict, tokenizer) -> None:
    dm = _module(small_demo, tokenizer, None)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["visual"]) == set(SLOT_TOKENS)
    assert batch["visual"]["whole_ct"].shape == (4, 512) and batch["visual"]["lung"].shape == (4, 256)
    row = batch["input_ids"][0][batch["attention_mask"][0].bool()]
    text = tokenizer.decode(row, skip_special_tokens=False)
    for token in (*SLOT_TOKENS.values(), TASK_TOKEN):
        assert text.count(token) == 1, token
    labels = batch["labels"][0]
    first_target = int((labels != IGNORE_INDEX).nonzero()[0])
    assert tokenizer.decode(row[:first_target]).endswith("assistant<|end_header_id|>\n\n")
    assert RAG_TOKEN not in text, "phase=base targets carry no [RAG]"
    assert (labels[batch["attention_mask"][0] == 0] == IGNORE_INDEX).all(), "padding is never trained"


def test_rag_batch_masks_context_spans_and_trains_rag(rag_data: dict, tokenizer) -> None:
    dm = _module(
        rag_data, tokenizer, {"none_prob": 0.0, "oracle_ratio": 0.7, "max_sentences": 4, "per_sentence": 3}
    )
    batch = next(iter(dm.train_dataloader()))
    rag, start, end = (tokenizer.convert_tokens_to_ids(t) for t in (RAG_TOKEN, RET_START, RET_END))
    seen_spans = 0
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        n_rag = int((ids == rag).sum())
        assert 1 <= n_rag <= 4
        assert n_rag == int((ids == start).sum()) == int((ids == end).sum())
        for pos in (ids == rag).nonzero().flatten().tolist():
            assert labels[pos] == rag, "[RAG] is trained"
            assert ids[pos + 1] == start
            stop = pos + 1 + int((ids[pos + 1 :] == end).nonzero()[0])
            assert (labels[pos + 1 : stop + 1] == IGNORE_INDEX).all(), "the injected span is masked"
            assert labels[stop + 1] != IGNORE_INDEX, "the rewritten sentence is trained"
            seen_spans += 1
        shown = tokenizer.decode(ids[ids != tokenizer.pad_token_id])
        if ids.eq(rag).any():
            print("\n" + shown[shown.index(RAG_TOKEN) :][:300])
    assert seen_spans >= 4


def test_rolls_are_deterministic_and_follow_the_mixture(rag_data: dict, tokenizer) -> None:
    contexts = {"none_prob": 0.2, "oracle_ratio": 0.5}
    a = [dm.train_set[i] for dm in [_module(rag_data, tokenizer, contexts)] for i in range(len(dm.train_set))]
    b = [dm.train_set[i] for dm in [_module(rag_data, tokenizer, contexts)] for i in range(len(dm.train_set))]
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b, strict=True))
    sources = [x["context_source"] for x in a]
    assert {"none", "oracle", "retrieved"} == set(sources)
    assert 0.05 < sources.count("none") / len(sources) < 0.4


def test_new_epoch_redraws_contexts(rag_data: dict, tokenizer) -> None:
    dm = _module(rag_data, tokenizer, {"none_prob": 0.0, "oracle_ratio": 0.5})
    first = [dm.train_set[i]["input_ids"] for i in range(8)]
    dm.train_set.set_epoch(1)
    second = [dm.train_set[i]["input_ids"] for i in range(8)]
    assert any(not torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_roll_without_contexts_for_a_volume_returns_none() -> None:
    import numpy as np

    roll = ContextRoll({"oracle": {}, "retrieved": {}}, mix(oracle_ratio=1.0))
    assert roll("train_1_a_1", ["Heart normal."], np.random.default_rng(0)) == ("oracle", {})


def test_sample_longer_than_max_length_is_an_error(small_demo: dict, tokenizer) -> None:
    dm = ReportDataModule(
        small_demo, tokenizer, PROMPT, loader(max_length=32), contexts=None, seed=0, visual_partners=True
    )
    dm.setup("fit")
    with pytest.raises(ValueError, match=r"tokens > datamodule\.max_length=32"):
        dm.train_set[0]


def test_missing_embedding_error_and_skip(small_demo: dict, tmp_path: Path) -> None:
    import pandas as pd

    reports = pd.read_csv(small_demo["train_reports_csv"], dtype=str, keep_default_na=False)
    extra = reports.iloc[[0]].assign(VolumeName="train_99999_a_1.nii.gz")
    path = tmp_path / "reports.csv"
    pd.concat([reports, extra]).to_csv(path, index=False)
    data = {**small_demo, "train_reports_csv": str(path)}
    with pytest.raises(Exception, match="1 volumes have a report but no embedding"):
        load_split(data, "train")
    assert len(load_split({**data, "missing_embedding": "skip"}, "train")) == len(reports)
