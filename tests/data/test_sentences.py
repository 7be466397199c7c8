"""Sentence splitting and organ/normality tagging (docs/formats.md#organs-and-sentences), on hand-written cases and the 800 real reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from adaragct.constants import ORGANS, RADGENOME_ORGANS
from adaragct.data.sentences import (
    ORGAN_KEYWORDS,
    SentenceTag,
    organ_of_text,
    organ_share_table,
    split_sentences,
    tag_report,
    tag_sentence,
)


def test_split_keeps_decimals_sizes_and_abbreviations() -> None:
    text = (
        "Findings: A 1.5 cm nodule in the right upper lobe. A 3x4 mm nodule was reported by Dr. Smith. "
        "The aorta measures 4.2 cm."
    )
    assert split_sentences(text) == [
        "A 1.5 cm nodule in the right upper lobe.",
        "A 3x4 mm nodule was reported by Dr. Smith.",
        "The aorta measures 4.2 cm.",
    ]


def test_split_drops_headers_list_numbers_and_empty_fragments() -> None:
    text = "Findings:\nImpression: 1. Emphysema. 2) Atelectasis in the left lower lobe.\n . ;\nImpression:\n"
    assert split_sentences(text) == ["Emphysema.", "Atelectasis in the left lower lobe."]
    assert split_sentences("") == []
    assert split_sentences(" ... ") == []


def test_split_treats_ctrate_quote_as_section_boundary() -> None:
    text = 'Vertebral corpus heights are preserved. " Thoracic CT examination within normal limits'
    assert split_sentences(text) == [
        "Vertebral corpus heights are preserved.",
        "Thoracic CT examination within normal limits",
    ]


@pytest.mark.parametrize(
    ("sentence", "organs", "normal"),
    [
        ("Centrilobular emphysema is seen in both upper lobes.", ("lung",), False),
        ("Aeration of both lung parenchyma is normal.", ("lung",), True),
        ("Trachea and both main bronchi are patent.", ("lung",), True),
        ("Mild cardiomegaly is present.", ("heart",), False),
        ("Coronary artery calcifications are noted.", ("heart",), False),
        ("A small hiatal hernia is observed.", ("esophagus",), False),
        ("Thoracic esophagus calibration is normal.", ("esophagus",), True),
        ("Calcific atheroma plaques are observed in the thoracic aorta.", ("aorta",), False),
        ("Thoracic aorta diameter is normal.", ("aorta",), True),
        ("Bone structures in the study area are natural.", ("other",), True),
        ("A 12 mm hypodense lesion is seen in the liver.", ("other",), False),
        ("A calcified nodule is seen in the left lobe of the thyroid.", ("other",), False),
    ],
)
def test_each_organ(sentence: str, organs: tuple[str, ...], normal: bool) -> None:
    tag = tag_sentence(sentence)
    assert tag.organs == organs
    assert tag.normal is normal


@pytest.mark.parametrize(
    "sentence",
    [
        "Pleural effusion-thickening was not observed.",
        "Pericardial effusion-thickening was not detected.",
        "No enlarged lymph nodes were detected in prevascular, subcarinal or bilateral hilar-axillary pathological dimensions.",
        "No lymph node was observed in both supraclavicular fossae and both axillae in pathological size and appearance.",
        "Thoracic CT examination within normal limits.",
        "The heart and the aorta are normal.",
        "Aeration is normal and no nodular or infiltrative lesion is detected in the lung parenchyma.",
        "The trachea is patent.",
        "The lungs are unremarkable.",
    ],
)
def test_negations_are_normal(sentence: str) -> None:
    assert tag_sentence(sentence).normal


@pytest.mark.parametrize(
    "sentence",
    [
        "Emphysema is present and no pleural effusion was detected.",
        "Nodules without calcification were observed in the right lung.",
        "The liver is larger than normal.",
        "Pleural effusion was not observed; there is atelectasis in the left lower lobe.",
        "Bilateral pleural effusion measuring 2 cm is observed.",
    ],
)
def test_findings_are_abnormal(sentence: str) -> None:
    assert not tag_sentence(sentence).normal


def test_multi_organ_sentences() -> None:
    assert tag_sentence("The heart and the aorta are normal.").organs == ("heart", "aorta")
    tag = tag_sentence("Emphysema in both lungs and mild cardiomegaly.")
    assert tag.organs == ("lung", "heart")
    assert tag_sentence("Pleural and pericardial effusion were not detected.").organs == ("lung", "heart")


def test_radgenome_regions() -> None:
    assert tag_sentence("Trachea and both main bronchi are open.").radgenome == ("trachea and bronchi",)
    assert tag_sentence("Pleural effusion was not observed.").radgenome == ("pleura",)
    assert tag_sentence("No enlarged mediastinal lymph nodes.").radgenome == ("mediastinum",)
    assert tag_sentence("Vertebral corpus heights are preserved.").radgenome == ("bone",)
    assert tag_sentence("The adrenal glands are normal.").radgenome == ("abdomen",)
    assert tag_sentence("The examination was compared with the prior one.") == SentenceTag(
        ("other",), ("other",), True
    )


def test_organ_of_text_counts_keywords() -> None:
    assert organ_of_text("Calcific plaques in the aorta and the aortic arch; the heart is normal.") == "aorta"
    assert organ_of_text("The heart is enlarged. Coronary calcification. The aorta is normal.") == "heart"
    assert organ_of_text("A small hiatal hernia") == "esophagus"
    assert organ_of_text("Right lower lobe atelectasis") == "lung"
    assert organ_of_text("Clinical correlation is recommended.") == "other"
    assert organ_of_text("The heart and the lungs") == "lung"  # tie -> earlier organ in ORGANS


def test_keyword_tables_cover_every_organ() -> None:
    assert set(ORGAN_KEYWORDS) == set(ORGANS)
    assert all(ORGAN_KEYWORDS[organ] for organ in ORGANS)


def test_tag_report_keeps_order() -> None:
    tagged = tag_report(
        "Findings: The heart is normal. No pleural effusion. Impression: Small hiatal hernia."
    )
    assert [t.organs for _, t in tagged] == [("heart",), ("lung",), ("esophagus",)]
    assert [t.normal for _, t in tagged] == [True, True, False]


@pytest.fixture(scope="module")
def real_reports(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "ctrate_manual_labels" / "train.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def real_tagged(real_reports: pd.DataFrame) -> list[list[tuple[str, SentenceTag]]]:
    return [tag_report(report) for report in real_reports["report_text"]]


def test_real_reports_organ_shares(real_tagged: list[list[tuple[str, SentenceTag]]]) -> None:
    """Loose bounds on the 800 hand-labelled CT-RATE reports.

    About 20 sentences per report (docs/formats.md#ct-rate-layout). A CT-RATE report spends roughly half its sentences on the lymph
    nodes, upper abdomen and bones (the "other" organ) and a third on the lungs; measured: lung 0.33, heart 0.11,
    esophagus 0.05, aorta 0.10, only-other 0.46. The bounds leave room for keyword changes but fail if a table
    breaks (e.g. only-other near 1, or no esophagus sentence found).
    """
    table = organ_share_table(real_tagged)
    assert table["reports"] == 800
    assert 15 <= table["sentences"] / table["reports"] <= 30
    assert table["only_other"] < 0.55
    assert table["lung"] > 0.25
    assert table["heart"] > 0.06
    assert table["aorta"] > 0.05
    assert table["esophagus"] > 0.02
    assert 0.4 < table["normal"] < 0.8


def test_real_reports_every_sentence_tagged(real_tagged: list[list[tuple[str, SentenceTag]]]) -> None:
    for tagged in real_tagged:
        for sentence, tag in tagged:
            assert sentence.strip() and any(c.isalpha() for c in sentence)
            assert tag.organs and set(tag.organs) <= set(ORGANS)
            assert tag.radgenome and set(tag.radgenome) <= set(RADGENOME_ORGANS)
            assert "other" not in tag.organs or tag.organs == ("other",)


def test_real_reports_negated_findings_match_labels(
    real_reports: pd.DataFrame, real_tagged: list[list[tuple[str, SentenceTag]]]
) -> None:
    """Reports labelled without pleural effusion must not have an abnormal sentence mentioning pleural effusion
    in most cases; those labelled with it must have one. A broken negation rule fails one side."""
    has_abnormal = pd.Series(
        [
            any("effusion" in s.lower() and "pleura" in s.lower() and not t.normal for s, t in tagged)
            for tagged in real_tagged
        ],
        index=real_reports.index,
    )
    label = real_reports["Pleural effusion"].astype(float).astype(int) == 1
    assert has_abnormal[~label].mean() < 0.1
    assert has_abnormal[label].mean() > 0.5
