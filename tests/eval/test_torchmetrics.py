"""In-training torchmetrics: equal to the offline metrics, and merging process states equals one process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaragct.eval.clinical import compute_clinical_metrics
from adaragct.eval.labelers.rules import RuleLabeler
from adaragct.eval.text_metrics import bleu_stats, corpus_bleu, normalize_text
from adaragct.eval.torchmetrics_metrics import ClinicalF1, CocoBleu4

GEN = [
    "Minimal pericardial effusion. Cardiomegaly.",
    "No pleural effusion. Emphysema in both lungs.",
    "A 4 mm nodule in the right upper lobe.",
    "",
    "Atelectasis in the left lower lobe; no consolidation.",
    "Calcified atheroma plaques in the thoracic aorta.",
]
REF = [
    "Cardiomegaly. Pleural effusion on the right.",
    "Emphysema in both lungs.",
    "Nodule in the left lung.",
    "Normal study.",
    "Consolidation and atelectasis in the left lower lobe.",
    "Aortic wall calcification.",
]


def test_bleu4_metric_equals_offline_and_merges_like_ddp() -> None:
    expected = corpus_bleu(bleu_stats([normalize_text(g) for g in GEN], [normalize_text(r) for r in REF]))[3]
    whole = CocoBleu4()
    whole.update(GEN, REF)
    assert float(whole.compute()) == pytest.approx(expected, abs=1e-12)
    rank0, rank1 = CocoBleu4(), CocoBleu4()
    rank0.update(GEN[:3], REF[:3])
    rank1.update(GEN[3:], REF[3:])
    rank0.merge_state(rank1)  # what the sum-reduced sync does across processes
    assert float(rank0.compute()) == pytest.approx(expected, abs=1e-12)
    assert expected > 0


def test_clinical_f1_metric_equals_offline_and_merges_like_ddp() -> None:
    labeler = RuleLabeler()
    truth = labeler.labels(REF)
    expected = compute_clinical_metrics(labeler.labels(GEN), truth).weighted["f1"]
    rank0, rank1 = ClinicalF1(), ClinicalF1()
    rank0.update(GEN[:2], torch.as_tensor(truth[:2]))
    rank1.update(GEN[2:], torch.as_tensor(truth[2:]))
    rank0.merge_state(rank1)
    assert float(rank0.compute()) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1
    assert all(s in rank0._reductions for s in ("tp", "fp", "fn"))
    assert int(rank0.tp.sum()) == int(np.sum(labeler.labels(GEN) & truth))
