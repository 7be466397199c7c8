"""Bottleneck metrics on matrices with known spectra, and the analyze command on the demo cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaragct.analysis.bottleneck import effective_rank, participation_ratio, variance_shares
from adaragct.apps.analyze import run_analyze
from tests.conftest import compose_config


def test_known_spectra() -> None:
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(4000, 16))
    assert variance_shares(iso, (2,))[2] == pytest.approx(2 / 16, abs=0.02)
    assert effective_rank(iso) == pytest.approx(16, rel=0.05)
    assert participation_ratio(iso) == pytest.approx(16, rel=0.05)
    spiky = iso * np.array([10.0, 10.0] + [1.0] * 14)
    assert variance_shares(spiky, (2,))[2] == pytest.approx(200 / 214, abs=0.02)
    assert participation_ratio(spiky) < 3


def test_analyze_on_demo(small_demo: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = compose_config(
        "analyze",
        [
            f"paths.data_dir={Path(small_demo['root']).parent}",
            f"out_dir={tmp_path}",
            f"paths.output_dir={tmp_path}",
            "min_positives=3",
        ],
        resolve=True,
    )
    report = run_analyze(cfg)
    assert 0.85 <= report["spectrum"]["whole_ct"]["variance_share"][2] <= 0.95
    assert report["spectrum"]["lung"]["variance_share"][2] < 0.2
    lung = report["probe_auc"]["lung"]
    whole = report["probe_auc"]["whole_ct"]
    shared = [
        f for f in ("Emphysema", "Lung nodule", "Atelectasis", "Lung opacity") if f in lung and f in whole
    ]
    assert shared and np.mean([lung[f] for f in shared]) > np.mean([whole[f] for f in shared])
    assert {p.name for p in tmp_path.iterdir()} >= {
        "bottleneck.json",
        "bottleneck.md",
        "cumulative_variance.png",
        "probe_auc.png",
    }
    assert "top-2 principal components hold" in capsys.readouterr().out


def test_analyze_any_npz(small_demo: dict, tmp_path: Path) -> None:
    npz = small_demo["organ_embeddings"]["valid"]
    cfg = compose_config("analyze", [f"npz={npz}", f"out_dir={tmp_path}", f"paths.output_dir={tmp_path}"])
    report = run_analyze(cfg)
    assert set(report["spectrum"]) == {"lung", "heart", "esophagus", "aorta"}
    assert "probe_auc" not in report
