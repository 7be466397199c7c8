"""The offline rule labeler: phrasing-level behaviour and agreement with 800 hand-labelled CT-RATE reports."""

from __future__ import annotations

import numpy as np
import pytest

from adaragct.constants import FINDINGS
from adaragct.eval.clinical import compute_clinical_metrics
from adaragct.eval.labelers import Labeler, build_labeler
from adaragct.eval.labelers.rules import RuleLabeler


def _positive(text: str) -> set[str]:
    row = RuleLabeler().labels([text])[0]
    return {f for f, v in zip(FINDINGS, row, strict=True) if v}


def test_is_a_labeler_and_returns_int8_in_findings_order() -> None:
    labeler = build_labeler("rule")
    assert isinstance(labeler, Labeler)
    out = labeler.labels(["Cardiomegaly.", "Normal study."])
    assert out.shape == (2, 18) and out.dtype == np.int8
    assert out[0, FINDINGS.index("Cardiomegaly")] == 1 and out[1].sum() == 0
    assert labeler.labels([]).shape == (0, 18)


@pytest.mark.parametrize(
    "text",
    [
        "Pleural effusion-thickening was not observed.",
        "Pericardial effusion-thickening was not detected.",
        "No pleural or pericardial effusion was detected.",
        "No enlarged lymph nodes in prevascular, pre-paratracheal, subcarinal or bilateral hilar-axillary "
        "pathological dimensions were detected.",
        "Aeration of both lung parenchyma is normal and no nodular or infiltrative lesion is detected.",
        "Heart contour and size are normal.",
        "Thoracic esophagus calibration was normal and no significant tumoral wall thickening was detected.",
        "Mediastinal structures cannot be evaluated optimally because contrast material is not given.",
        "Emphysema is observed under the skin extending to the axilla.",
    ],
)
def test_negated_or_normal_phrasings_give_no_finding(text: str) -> None:
    assert _positive(text) == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Minimal pericardial effusion is observed.", {"Pericardial effusion"}),
        (
            "Pleural effusion-thickening was not observed, but atelectasis is seen in the left lower lobe.",
            {"Atelectasis"},
        ),
        ("No pleural effusion; consolidation in the right lower lobe.", {"Consolidation"}),
        (
            "Calcified atheroma plaques in the thoracic aorta and coronary arteries.",
            {"Arterial wall calcification", "Coronary artery wall calcification"},
        ),
        ("The cardiothoracic index increased in favor of the heart.", {"Cardiomegaly"}),
        ("Sliding type hiatal hernia is observed.", {"Hiatal hernia"}),
        (
            "Lymph nodes that did not reach pathological dimensions were observed in the mediastinum.",
            {"Lymphadenopathy"},
        ),
        ("Early viral pneumonia with ground glass densities cannot be excluded.", {"Lung opacity"}),
        ("A port catheter extends to the right atrium.", {"Medical material"}),
        ("Mosaic attenuation areas are observed in both lungs.", {"Mosaic attenuation pattern"}),
        (
            "Bronchiectatic changes and peribronchial thickening in both lungs.",
            {"Bronchiectasis", "Peribronchial thickening"},
        ),
        ("Interlobular septal thickness increases in both lungs.", {"Interlobular septal thickening"}),
        ("Linear fibroatelectatic sequelae in the middle lobe.", {"Pulmonary fibrotic sequela"}),
        ("A 4 mm nodule in the right upper lobe. Nodule in the left thyroid lobe.", {"Lung nodule"}),
        ("Paraseptal emphysema in both upper lobes.", {"Emphysema"}),
        # the "ectasis" of atelectasis before a bronchial word is not bronchiectasis
        ("Atelectasis and peribronchial thickening.", {"Atelectasis", "Peribronchial thickening"}),
        ("Ectasia of the segmental bronchi in the left lower lobe.", {"Bronchiectasis"}),
        # nor is the "septal" of paraseptal emphysema a septal thickening
        (
            "Paraseptal emphysema and peribronchial thickening in both lungs.",
            {"Emphysema", "Peribronchial thickening"},
        ),
    ],
)
def test_positive_phrasings(text: str, expected: set[str]) -> None:
    assert _positive(text) == expected


def test_support_weighted_f1_on_hand_labelled_reports(manual_labels) -> None:
    """The acceptance bar of issue 3: support-weighted F1 >= 0.95 on the 800 CT-RATE hand-labelled reports."""
    truth = manual_labels[list(FINDINGS)].to_numpy()
    predicted = RuleLabeler().labels(manual_labels["report_text"].tolist())
    res = compute_clinical_metrics(predicted, truth)
    print(
        f"\nrule labeler on {len(truth)} reports: weighted F1 {res.weighted['f1']:.4f}, "
        f"micro F1 {res.micro['f1']:.4f}, macro F1 {res.macro['f1']:.4f}"
    )
    print(f"{'finding':38s} {'P':>6s} {'R':>6s} {'F1':>6s} {'support':>7s}")
    for finding, row in res.per_finding.items():
        print(
            f"{finding:38s} {row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f} {row['support']:7d}"
        )
    assert res.weighted["f1"] >= 0.95
    assert min(row["f1"] for row in res.per_finding.values()) >= 0.85
