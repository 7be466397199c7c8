"""RadBERT labeler: the real loading path with a checkpoint laid out as CT-RATE's RadBertClassifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from adaragct.errors import DataError
from adaragct.eval.labelers import Labeler, build_labeler


class RadBertClassifier(torch.nn.Module):
    """The original CT-RATE module layout: ``self.bert`` + ``self.classifier`` on the pooler output."""

    def __init__(self, roberta_dir: Path) -> None:
        super().__init__()
        self.bert = AutoModel.from_config(AutoConfig.from_pretrained(roberta_dir))
        self.classifier = torch.nn.Linear(self.bert.config.hidden_size, 18)

    def forward(self, input_ids, attn_mask):
        return self.classifier(self.bert(input_ids=input_ids, attention_mask=attn_mask).pooler_output)


@pytest.fixture(scope="module")
def radbert_files(tmp_path_factory, tiny_roberta_dir) -> tuple[Path, Path, RadBertClassifier]:
    root = tmp_path_factory.mktemp("radbert")
    roberta = tiny_roberta_dir
    torch.manual_seed(1)
    module = RadBertClassifier(roberta).eval()
    with torch.no_grad():
        module.classifier.bias.copy_(torch.linspace(-3, 3, 18))  # some findings on, some off
    ckpt = root / "RadBertClassifier.pth"
    torch.save(module.state_dict(), ckpt)
    return ckpt, roberta, module


def test_loads_ct_rate_checkpoint_and_matches_original_module(radbert_files) -> None:
    ckpt, roberta, module = radbert_files
    assert {"classifier.weight", "classifier.bias"} <= set(torch.load(ckpt, weights_only=True))
    labeler = build_labeler("radbert", checkpoint=ckpt, roberta_dir=roberta, batch_size=2)
    assert isinstance(labeler, Labeler)
    texts = [
        "no pleural effusion .",
        "nodule in the right lung",
        "the heart is normal .",
        " ".join(["nodule"] * 700),
    ]
    tok = AutoTokenizer.from_pretrained(roberta)
    expected = []
    with torch.no_grad():
        for text in texts:  # one at a time, no padding: the reference computation
            enc = tok([text], truncation=True, max_length=512, return_tensors="pt")
            expected.append(torch.sigmoid(module(enc["input_ids"], enc["attention_mask"]))[0].numpy())
    probs = labeler.probabilities(texts)
    np.testing.assert_allclose(probs, np.stack(expected), atol=1e-5)
    labels = labeler.labels(texts)
    assert labels.dtype == np.int8 and labels.shape == (4, 18)
    np.testing.assert_array_equal(labels, (np.stack(expected) >= 0.5).astype(np.int8))
    assert 0 < labels.sum() < labels.size


def test_wrong_checkpoint_is_a_clear_error(radbert_files, tmp_path) -> None:
    _, roberta, _ = radbert_files
    bad = tmp_path / "bad.pth"
    torch.save({"classifier.weight": torch.zeros(18, 32)}, bad)
    with pytest.raises(DataError, match="state dict keys"):
        build_labeler("radbert", checkpoint=bad, roberta_dir=roberta)
    with pytest.raises(ValueError, match="needs a checkpoint"):
        build_labeler("radbert")
