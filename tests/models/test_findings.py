"""The finding classifier of ``prompt=findings`` (issue 20): fitted, applied, saved, and read by the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adaragct.constants import FINDINGS, VISUAL_SLOTS
from adaragct.data.prompt import PromptConfig
from adaragct.models.findings import FindingClassifier, read_findings, save_findings
from tests.conftest import compose_config

DIMS = {"whole_ct": 12, "lung": 8, "heart": 8, "esophagus": 8, "aorta": 8}


def _data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Findings 0-5 written into the lung embedding, the rest absent (one finding always present)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, len(FINDINGS)), dtype=np.int8)
    labels[:, :6] = rng.random((n, 6)) < 0.4
    labels[:, 17] = 1
    visual = {s: rng.standard_normal((n, d)) for s, d in DIMS.items()}
    visual["lung"][:, :6] += 4.0 * labels[:, :6]
    return visual, labels


def test_fit_reads_the_findings_its_slot_carries() -> None:
    visual, labels = _data(200, 0)
    classifier = FindingClassifier.fit(visual, labels, slots=list(VISUAL_SLOTS), C=1.0)
    test, truth = _data(100, 1)
    found = classifier.findings({s: torch.from_numpy(v).float() for s, v in test.items()})
    predicted = np.array([[f in row for f in FINDINGS] for row in found])
    assert (predicted[:, :6] == truth[:, :6]).mean() > 0.95
    assert predicted[:, 17].all() and not predicted[:, 6:17].any()  # constants stay constant
    assert 0.05 <= float(classifier.threshold) <= 0.95  # chosen by cross-validation on the training volumes


def test_cross_validated_threshold_names_rare_findings_a_fixed_half_would_miss() -> None:
    """Weak evidence for a rare finding: 0.5 names it almost never, the cross-validated threshold often."""
    rng = np.random.default_rng(3)
    labels = np.zeros((400, len(FINDINGS)), dtype=np.int8)
    labels[:, 0] = rng.random(400) < 0.15
    visual = {s: rng.standard_normal((400, d)) for s, d in DIMS.items()}
    visual["lung"][:, 0] += 1.2 * labels[:, 0]
    cv = FindingClassifier.fit(visual, labels, slots=["lung"], C=1.0)
    assert float(cv.threshold) < 0.5
    batch = {"lung": torch.from_numpy(visual["lung"]).float()}
    named = lambda c: np.array([FINDINGS[0] in row for row in c.findings(batch)])  # noqa: E731
    half = FindingClassifier.fit(visual, labels, slots=["lung"], C=1.0, threshold=0.5)
    assert named(cv).sum() > named(half).sum()


def test_a_classifier_on_the_whole_ct_alone_cannot_read_the_lung() -> None:
    visual, labels = _data(200, 0)
    whole_only = FindingClassifier.fit(visual, labels, slots=["whole_ct"], C=1.0)
    test, truth = _data(100, 1)
    probs = whole_only({s: torch.from_numpy(v).float() for s, v in test.items()}).numpy()
    assert abs(np.corrcoef(probs[:, 0], truth[:, 0])[0, 1]) < 0.3


def test_saved_classifier_reads_back_identically(tmp_path: Path) -> None:
    visual, labels = _data(120, 0)
    classifier = FindingClassifier.fit(visual, labels, slots=["lung", "heart"], threshold=0.4)
    save_findings(classifier, tmp_path)
    again = read_findings(tmp_path)
    batch = {s: torch.from_numpy(v[:10]).float() for s, v in visual.items()}
    assert again.slots == ["lung", "heart"] and float(again.threshold) == pytest.approx(0.4)
    assert torch.equal(again(batch), classifier(batch))
    assert read_findings(tmp_path / "elsewhere") is None


def test_report_model_prompts_name_each_volumes_findings(tokenizer) -> None:
    from adaragct.models.builders import llama_tiny
    from adaragct.models.loading import assemble_report_model
    from adaragct.models.projector import VisualProjector

    visual, labels = _data(120, 0)
    classifier = FindingClassifier.fit(visual, labels, slots=list(VISUAL_SLOTS), C=1.0)
    llm = llama_tiny(tokenizer)
    model = assemble_report_model(llm, VisualProjector(DIMS, llm.config.hidden_size), tokenizer, classifier)
    batch = {s: torch.from_numpy(v[:4]).float() for s, v in visual.items()}
    findings = PromptConfig(**compose_config("train", ["prompt=findings"], resolve=False).prompt)
    texts = model.prompts(findings, batch)
    for text, row in zip(texts, classifier.findings(batch), strict=True):
        assert ("suggest: " + (", ".join(f.lower() for f in row) or "no abnormality") + ".") in text
    plain = PromptConfig(**compose_config("train", resolve=False).prompt)
    assert len(set(model.prompts(plain, batch))) == 1
