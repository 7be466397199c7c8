"""Copy baselines: the copied report is the one of the training volume chosen by hand, and the file scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaragct.constants import ORGAN_SLOTS
from adaragct.data.cohort import Volume
from adaragct.data.datasets import load_split
from adaragct.experiments.baselines import copy_sources, write_copy_predictions
from adaragct.formats.predictions import read_predictions


def _volume(vid: str, report: str, whole: list[float], organs: list[list[float]]) -> Volume:
    visual = {"whole_ct": np.array(whole, dtype=np.float32)}
    visual.update({s: np.array(o, dtype=np.float32) for s, o in zip(ORGAN_SLOTS, organs, strict=True)})
    return Volume(vid, report, visual)


E = [[1, 0], [0, 1], [1, 1], [-1, 0]]  # organ vectors reused below


def _tiny_cohort() -> tuple[list[Volume], list[Volume]]:
    train = [
        # whole-CT close to the query's, organs far from it
        _volume("train_1_a_1", "report one.", [1.0, 0.1, 0.0], [E[3], E[3], E[3], E[3]]),
        # whole-CT far, organs equal to the query's in 3 of 4 organs
        _volume("train_2_a_1", "report two.", [-1.0, 0.0, 1.0], [E[0], E[1], E[2], E[3]]),
        # whole-CT orthogonal, organs equal in 2 of 4 organs
        _volume("train_3_a_1", "report three.", [0.0, 0.0, 1.0], [E[0], E[1], E[3], E[3]]),
    ]
    query = _volume("valid_1_a_1", "the reference.", [2.0, 0.1, 0.0], [E[0], E[1], E[2], E[0]])
    return train, [query]


def test_nearest_by_hand_uncentred() -> None:
    train, valid = _tiny_cohort()
    idx, score = copy_sources("nearest_ct", train, valid, center=False)
    cos = [np.dot(v.visual["whole_ct"], valid[0].visual["whole_ct"]) for v in train]
    cos = [
        c / np.linalg.norm(v.visual["whole_ct"]) / np.linalg.norm(valid[0].visual["whole_ct"])
        for c, v in zip(cos, train, strict=True)
    ]
    assert idx.tolist() == [0] and score[0] == pytest.approx(max(cos), abs=1e-6)
    idx, score = copy_sources("nearest_organs", train, valid, center=False)
    # train 2: organ cosines 1, 1, 1, -1 -> mean 0.5; train 3: 1, 1, -1/sqrt2, -1 -> lower; train 1: all <= 0
    assert idx.tolist() == [1] and score[0] == pytest.approx(0.5, abs=1e-9)


def test_nearest_centred_on_the_training_mean() -> None:
    train, valid = _tiny_cohort()
    mean = np.mean([v.visual["whole_ct"] for v in train], axis=0)
    q = valid[0].visual["whole_ct"] - mean
    cos = [
        np.dot(v.visual["whole_ct"] - mean, q)
        / np.linalg.norm(v.visual["whole_ct"] - mean)
        / np.linalg.norm(q)
        for v in train
    ]
    idx, score = copy_sources("nearest_ct", train, valid, center=True)
    assert idx[0] == int(np.argmax(cos)) and score[0] == pytest.approx(max(cos), abs=1e-6)


def test_random_is_seeded_and_unknown_names_fail() -> None:
    train, valid = _tiny_cohort()
    a, _ = copy_sources("random", train, valid * 50, seed=3)
    b, _ = copy_sources("random", train, valid * 50, seed=3)
    c, _ = copy_sources("random", train, valid * 50, seed=4)
    assert a.tolist() == b.tolist() != c.tolist() and set(a.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"baselines\.rows"):
        copy_sources("nearest_lung", train, valid)


def test_written_predictions_copy_the_nearest_report(small_demo: dict, tmp_path: Path) -> None:
    """On the small demo cohort read through load_split: each record copies the brute-force nearest report."""
    train, valid = load_split(small_demo, "train"), load_split(small_demo, "valid")
    path = write_copy_predictions(tmp_path / "p.jsonl", "nearest_organs", train, valid)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["image"] for r in records] == [v.volume_id for v in valid]
    means = {s: np.mean([t.visual[s] for t in train], axis=0, dtype=np.float64) for s in ORGAN_SLOTS}

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x)

    for record, query in zip(records, valid, strict=True):
        scores = [
            np.mean([unit(t.visual[s] - means[s]) @ unit(query.visual[s] - means[s]) for s in ORGAN_SLOTS])
            for t in train
        ]
        best = int(np.argmax(scores))
        assert record["source_image"] == train[best].volume_id
        assert record["generated_text"] == train[best].report and record["reference_text"] == query.report
        assert record["source_score"] == pytest.approx(scores[best], abs=1e-6)
    preds = read_predictions(path)  # the evaluation's reader takes it as any predictions file
    assert preds.ids == [v.volume_id for v in valid] and preds.predictions[0] == records[0]["generated_text"]
