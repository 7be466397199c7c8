"""val/visual_gain (issue 20): ~0 for a model that never saw its images matched to its reports, clearly positive for
one trained on a toy task where the image decides the text; and the split measurement with its interval."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.models.conftest import VISUAL_DIMS, data_node, train_config

REPORTS = ("Mild emphysema is present in both lungs.", "The lungs are clear.")
# a short prompt: the toy trains in seconds (the placeholders are all it needs)
SHORT_PROMPT = [
    "prompt.system=Radiologist.",
    "prompt.embeddings_sentence='{whole_ct}{lung}{heart}{esophagus}{aorta}'",
    "prompt.question=Report.",
]


def write_toy_cohort(root: Path, *, shuffled: bool, n_patients: int = 80) -> dict:
    """Reports decided by one bit that the lung embedding carries (strongly); ``shuffled``: the embeddings are
    permuted across patients, so no report can be told from its own image."""
    rng = np.random.default_rng(0)
    bits = rng.random(n_patients) < 0.5
    ids = [f"train_{p}_a_1" for p in range(n_patients)]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "VolumeName": ids,
            "ClinicalInformation_EN": "",
            "Technique_EN": "",
            "Findings_EN": [REPORTS[0] if b else REPORTS[1] for b in bits],
            "Impressions_EN": "",
        }
    ).to_csv(root / "reports.csv", index=False)
    organs = {
        o: rng.standard_normal((n_patients, VISUAL_DIMS[o])).astype(np.float32)
        for o in ("lung", "heart", "esophagus", "aorta")
    }
    organs["lung"][:, 0] += np.where(bits, 4.0, -4.0)
    whole = rng.standard_normal((n_patients, VISUAL_DIMS["whole_ct"])).astype(np.float32)
    order = rng.permutation(n_patients) if shuffled else np.arange(n_patients)
    np.savez(root / "whole.npz", sample_ids=np.array(ids), ct_clip_max=whole[order])
    np.savez(root / "organs.npz", sample_ids=np.array(ids), **{o: v[order] for o, v in organs.items()})
    return data_node("toy", root, root / "reports.csv", root / "whole.npz", root / "organs.npz")


def _train(root: Path, data: dict, lm_dir: Path) -> list[dict[str, str]]:
    from adaragct.apps.train import run as train

    cfg = train_config(
        root,
        data,
        lm_dir,
        "experiment=tiny",
        "phase=base",
        "trainer.max_steps=200",
        "trainer.val_check_interval=100",
        "trainer.accumulate_grad_batches=1",
        "datamodule.batch_size=8",
        "datamodule.val_fraction=0.25",
        "phase.scheduler.warmup_steps=5",
        "phase.optimizer.lr=3e-3",
        *SHORT_PROMPT,
    )
    train(cfg)
    (log,) = (root / "run" / "csv").glob("version_*/metrics.csv")
    with open(log) as handle:
        return [row for row in csv.DictReader(handle) if row.get("val/visual_gain")]


@pytest.fixture(scope="module")
def toy_lm(tmp_path_factory, tokenizer_dir) -> Path:
    """The tiny LM pretrained on the two reports (as prepare pretrains it on a cohort's): it writes either, and
    only the image can tell it which."""
    from adaragct.models.tiny_lm import pretrain_tiny_lm

    out = tmp_path_factory.mktemp("toy_lm")
    pretrain_tiny_lm(list(REPORTS) * 8, tokenizer_dir, out, steps=60, batch_size=16, lr=3e-3)
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory, toy_lm) -> dict[str, list[dict[str, str]]]:
    out = {}
    for name in ("image_decides", "shuffled"):
        root = tmp_path_factory.mktemp(name)
        out[name] = _train(root, write_toy_cohort(root / "data", shuffled=name == "shuffled"), toy_lm)
    return out


def test_visual_gain_is_logged_at_every_validation_with_per_slot_values(logs) -> None:
    for rows in logs.values():
        assert [int(r["step"]) for r in rows] == [
            99,
            199,
        ]  # both validations (the sanity check is not logged)
        assert all(r["val/visual_gain_lung"] and r["val/visual_gain_whole_ct"] for r in rows)


def test_visual_gain_is_positive_when_the_image_decides_the_text(logs) -> None:
    last = logs["image_decides"][-1]
    assert float(last["val/visual_gain"]) > 0.05  # of ~0.07 nats/token that one bit is worth here
    assert float(last["val/visual_gain_lung"]) > 0.05  # and it is the lung slot that carries it
    assert abs(float(last["val/visual_gain_heart"])) < 0.01


def test_visual_gain_is_zero_when_training_never_matched_images_to_reports(logs) -> None:
    assert abs(float(logs["shuffled"][-1]["val/visual_gain"])) < 0.01
