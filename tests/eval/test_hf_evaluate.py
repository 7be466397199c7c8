"""The suite as a local Hugging Face ``evaluate`` module (no hub script needed)."""

from __future__ import annotations

import pytest

import adaragct.eval.hf_metric as hf_metric
from adaragct.eval.text_metrics import compute_text_metrics


def test_evaluate_load_by_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    metric = evaluate.load(hf_metric.__file__, cache_dir=str(tmp_path / "cache"))
    preds = ["No pleural effusion. Cardiomegaly.", "Nodule in the right lung."]
    refs = ["Cardiomegaly. No pleural effusion.", "Nodule in the right upper lobe."]
    out = metric.compute(predictions=preds, references=refs)
    direct = compute_text_metrics(preds, refs, with_meteor=False)
    assert out["bleu_4"] == pytest.approx(direct.bleu[3]) and out["rouge_l"] == pytest.approx(direct.rouge_l)
    assert out["cider"] == pytest.approx(direct.cider)
    assert out["clinical_f1"] == pytest.approx(1.0)  # same findings in both pairs
