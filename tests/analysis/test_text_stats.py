"""Report-text statistics: hand-made sets with known answers, the sources, the analyze command, and CT-RATE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaragct.analysis.text_sources import ctrate_report_set, load_report_set, manual_report_set
from adaragct.analysis.text_stats import (
    BANDS,
    Band,
    band_check,
    format_table,
    nearest_partners,
    pair_scores,
    random_partners,
    recurring_share,
    report_stats,
)
from adaragct.apps.analyze import run_text_stats
from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from tests.conftest import compose_config

REPORTS = (
    "The heart is normal. No effusion is seen.",
    "The heart is normal. A nodule is seen in the right lobe.",
    'Lungs are clear. " Normal study.',
)


def _labels(*rows: tuple[int, ...]) -> np.ndarray:
    out = np.zeros((len(rows), len(FINDINGS)), dtype=np.int8)
    for i, row in enumerate(rows):
        out[i, list(row)] = 1
    return out


def test_counts_and_recurrence_of_a_hand_made_set() -> None:
    stats = report_stats(REPORTS, _labels((), (9,), (9, 10)))
    assert stats["reports"] == 3
    assert stats["words_per_report"] == pytest.approx((8 + 12 + 6) / 3)
    assert stats["sentences_per_report"] == pytest.approx(6 / 3)  # the CT-RATE quote ends a sentence
    assert stats["recurring_share"] == pytest.approx(2 / 6)  # "The heart is normal." in two reports
    assert stats["positives_per_report"] == pytest.approx(1.0)
    assert stats["unique_sentences"] == 5


def test_recurrence_counts_other_reports_only() -> None:
    assert recurring_share([["a.", "a."], ["b."]]) == 0.0  # repeated inside one report is not recurring
    assert recurring_share([["a.", "b."], ["a."], ["a.", "c."]]) == pytest.approx(3 / 5)
    assert recurring_share([]) == 0.0


def test_pair_scores_by_hand() -> None:
    # each against the other: 1- to 4-gram matches 4/5, 3/4, 2/3, 1/2 both ways; LCS 4 of 5 tokens
    normalized = ["a b c d e", "a b c d f"]
    bleu4, rouge = pair_scores(normalized, np.array([1, 0]))
    assert bleu4 == pytest.approx((0.8 * 0.75 * (2 / 3) * 0.5) ** 0.25, abs=1e-6)
    assert rouge == pytest.approx(0.8)
    assert pair_scores(["x y z w", "x y z w"], np.array([1, 0])) == pytest.approx((1.0, 1.0))


def test_random_partners_are_other_reports_and_seeded() -> None:
    a = random_partners(50, np.random.default_rng(3))
    assert (a != np.arange(50)).all() and ((a >= 0) & (a < 50)).all()
    assert (a == random_partners(50, np.random.default_rng(3))).all()
    assert len(set(a.tolist())) > 20  # spread over the set, not a fixed shift
    assert (random_partners(2, np.random.default_rng(0)) == [1, 0]).all()
    with pytest.raises(ValueError, match="at least 2"):
        random_partners(1, np.random.default_rng(0))


def test_nearest_partners_by_hamming_with_seeded_ties() -> None:
    labels = _labels((0, 1), (0, 1, 2), (5,), (5, 6), (5, 7))
    # 0 <-> 1 (distance 1); 2's nearest are 3 and 4 (1 each); 3's nearest is 2 (1) over 4 (2)
    draws = {tuple(nearest_partners(labels, np.random.default_rng(s), block=2)) for s in range(20)}
    for p in draws:
        assert p[0] == 1 and p[1] == 0 and p[3] == 2 and p[4] == 2
    assert {p[2] for p in draws} == {3, 4}  # the tie is broken both ways across seeds
    again = nearest_partners(labels, np.random.default_rng(7), block=3)
    assert (again == nearest_partners(labels, np.random.default_rng(7), block=1024)).all()


def test_label_nearest_pairs_score_higher_when_text_follows_labels() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(60, 18)).astype(np.int8)
    words = [f"finding{j} present" for j in range(18)]
    reports = [" ".join(w for w, y in zip(words, row, strict=True) if y) + " end." for row in labels]
    stats = report_stats(reports, labels)
    assert stats["nearest_bleu4"] > stats["random_bleu4"] + 0.05
    assert stats["nearest_rouge_l"] > stats["random_rouge_l"] + 0.05


def test_band_check_and_table() -> None:
    reference = {"words_per_report": 200.0, "recurring_share": 0.5}
    bands = {"words_per_report": Band(0.15, relative=True), "recurring_share": Band(0.1)}
    out = band_check(reference, {"words_per_report": 229.0, "recurring_share": 0.39}, bands)
    assert out["words_per_report"] == {"low": 170.0, "high": 230.0, "pass": True}
    assert out["recurring_share"]["pass"] is False
    too_long = band_check(reference, {"words_per_report": 231.0, "recurring_share": 0.6}, bands)
    assert too_long["words_per_report"]["pass"] is False
    assert set(BANDS) == {
        "words_per_report",
        "sentences_per_report",
        "recurring_share",
        "random_bleu4",
        "random_rouge_l",
        "nearest_bleu4",
        "nearest_rouge_l",
    }
    stats = report_stats(REPORTS, _labels((), (9,), (9, 10)))
    table = format_table(["a", "b"], [stats, stats], band_check(stats, stats))
    assert "7/7 figures inside their band" in table and "FAIL" not in table
    assert "recurring sentence share" in table and "0.333" in table


def _manual_csv(path: Path, reports: tuple[str, ...], labels: np.ndarray) -> Path:
    frame = pd.DataFrame(labels, columns=list(FINDINGS))
    frame.insert(0, "report_text", list(reports))
    frame.insert(0, "AccessionNo", [f"train_{i}" for i in range(len(reports))])
    frame.to_csv(path, index=False)
    return path


def test_sources(tmp_path: Path) -> None:
    labels = _labels((), (9,), (9, 10))
    manual = manual_report_set(_manual_csv(tmp_path / "manual.csv", REPORTS, labels))
    assert manual.reports == REPORTS and (manual.labels == labels).all()
    # CT-RATE pair: the two reconstructions of train_1_a share a report and collapse to one row
    ids = ["train_1_a_1.nii.gz", "train_1_a_2.nii.gz", "train_2_a_1.nii.gz"]
    findings = ["The heart is normal.", "The heart is normal.", "Lungs are clear."]
    pd.DataFrame(
        {
            "VolumeName": ids,
            "ClinicalInformation_EN": "",
            "Technique_EN": "",
            "Findings_EN": findings,
            "Impressions_EN": ["Normal.", "Normal.", "Normal study."],
        }
    ).to_csv(tmp_path / "reports.csv", index=False)
    pair_labels = pd.DataFrame(_labels((2,), (2,), ()), columns=list(FINDINGS))
    pair_labels.insert(0, "VolumeName", ids)
    pair_labels.to_csv(tmp_path / "labels.csv", index=False)
    pair = load_report_set([str(tmp_path / "reports.csv"), str(tmp_path / "labels.csv")], None)
    assert pair.reports == ("The heart is normal. Normal.", "Lungs are clear. Normal study.")
    assert pair.labels[:, 2].tolist() == [1, 0]
    pair_labels.iloc[:2].to_csv(tmp_path / "short_labels.csv", index=False)
    with pytest.raises(DataError, match="have no labels"):
        ctrate_report_set(tmp_path / "reports.csv", tmp_path / "short_labels.csv")
    with pytest.raises(DataError, match="report_text"):
        manual_report_set(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="data=demo"):
        load_report_set("demo", None)
    assert len(manual.subsample(2, seed=0).reports) == 2 and manual.subsample(None, 0) is manual


def test_analyze_text_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = _labels((), (9,), (9, 10))
    csv = _manual_csv(tmp_path / "manual.csv", REPORTS, labels)
    cfg = compose_config(
        "analyze",
        [
            f"text.a={csv}",
            "text.b=demo",
            "data.generator.n_train_patients=30",
            "data.generator.n_valid_patients=10",
            f"out_dir={tmp_path}/run",
            f"paths.output_dir={tmp_path}/run",
        ],
    )
    result = run_text_stats(cfg)
    names = [s["name"] for s in result["sets"]]
    assert names == ["manual.csv", "demo"] and result["sets"][1]["reports"] == 40
    assert set(result["bands"]) == set(BANDS)
    assert json.loads((tmp_path / "run" / "text_stats.json").read_text())["sets"][0]["reports"] == 3
    out = capsys.readouterr().out
    assert "band (demo vs manual.csv)" in out and "figures inside their band" in out
    # the demo source is deterministic under the generator seed
    again = load_report_set("demo", {**cfg.data.generator})
    assert again.reports == load_report_set("demo", {**cfg.data.generator}).reports


@pytest.fixture(scope="module")
def real_stats(shared_data: Path) -> dict[str, float]:
    real = manual_report_set(shared_data / "ctrate_manual_labels" / "train.csv")
    return report_stats(real.reports, real.labels)


def test_reproduces_the_issue_figures_on_ctrate(real_stats: dict[str, float]) -> None:
    """Issue 14 measured 276 words, 20.9 sentences, 53% recurring, random pair 0.145 / 0.247, nearest 0.18 / 0.29.

    Sentences: our splitter also ends a sentence at CT-RATE's bare quote, which gives 21.9 (a split at ``.?!`` +
    space only gives the issue's 20.9). Random pairs vary by ~0.003 between seeds.
    """
    assert real_stats["reports"] == 800
    assert real_stats["words_per_report"] == pytest.approx(276, abs=0.5)
    assert real_stats["sentences_per_report"] == pytest.approx(21.85, abs=0.05)
    assert real_stats["recurring_share"] == pytest.approx(0.53, abs=0.005)
    assert real_stats["random_bleu4"] == pytest.approx(0.145, abs=0.006)
    assert real_stats["random_rouge_l"] == pytest.approx(0.247, abs=0.006)
    assert real_stats["nearest_bleu4"] == pytest.approx(0.18, abs=0.01)
    assert real_stats["nearest_rouge_l"] == pytest.approx(0.29, abs=0.01)


def test_default_demo_is_inside_every_band(real_stats: dict[str, float]) -> None:
    """Issue 14: the default demo cohort reads like CT-RATE (the table is printed when a figure leaves its band)."""
    generator = compose_config("analyze", resolve=False).data.generator
    demo = load_report_set("demo", {**generator})
    bands = band_check(real_stats, report_stats(demo.reports, demo.labels))
    assert all(b["pass"] for b in bands.values()), format_table(
        ["real", "demo"], [real_stats, report_stats(demo.reports, demo.labels)], bands
    )
