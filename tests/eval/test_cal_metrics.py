"""The release's command and the Hydra app end to end, on real reports; bad inputs give file + field + fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adaragct.compat.cal_metrics import main as cal_metrics
from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from adaragct.eval.runner import EvalOptions, evaluate_predictions
from adaragct.formats.predictions import attach_references, read_predictions

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TASK = "report_generation"
RELEASE_KEYS = [
    f"{TASK}/{k}"
    for k in (
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "bleu_sacre",
        "rouge_l",
        "meteor",
        "cider",
        "clinical_precision",
        "clinical_recall",
        "clinical_f1",
    )
]


@pytest.fixture
def release_case(tmp_path: Path, manual_labels: pd.DataFrame) -> tuple[Path, Path]:
    """60 real reports in the release JSONL layout (prediction = another report) and their labels CSV."""
    sub = manual_labels.iloc[:60]
    rows = []
    for i, (acc, ref) in enumerate(zip(sub["AccessionNo"], sub["report_text"], strict=True)):
        pred = sub["report_text"].iloc[(i + 1) % len(sub)] if i % 3 else ref
        rows.append(
            {
                "image": f"{acc}.nii.gz",
                "generated_text": pred,
                "reference_text": ref,
                "task_type": "report_generation",
                "retrieval_count": 0,
            }
        )
    rows[5]["generated_text"] = ""  # an empty generation is scored and counted
    labels = sub[["AccessionNo", *FINDINGS]]
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    return write_jsonl(tmp_path / "pred.jsonl", rows), labels_csv


def test_seed_command_writes_release_keys_and_cis_contain_estimates(release_case, tmp_path) -> None:
    pred, labels = release_case
    out = tmp_path / "metrics.json"
    assert (
        cal_metrics([str(pred), "--output", str(out), "--labels-csv", str(labels), "--bootstrap", "1000"])
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["num_samples"] == 60
    for key in RELEASE_KEYS:
        assert key in metrics and f"overall/{key.split('/')[1]}" in metrics
    assert set(metrics[f"{TASK}/clinical_detailed"]) == set(FINDINGS)
    assert set(metrics[f"{TASK}/clinical_detailed"]["Cardiomegaly"]) == {
        "precision",
        "recall",
        "f1",
        "support",
    }
    assert metrics["llama_score"] is None and metrics[f"{TASK}/num_empty_predictions"] == 1
    for m in ("bleu_1", "bleu_4", "rouge_l", "clinical_precision", "clinical_recall", "clinical_f1"):
        lo, hi = metrics[f"{TASK}/{m}_ci_lower"], metrics[f"{TASK}/{m}_ci_upper"]
        assert lo <= metrics[f"{TASK}/{m}"] <= hi and lo < hi, m
        assert metrics[f"{TASK}/{m}_bootstrap_std"] > 0
    # a third of the predictions are the reference itself: clearly better than chance, below perfect
    assert 0.4 < metrics[f"{TASK}/clinical_f1"] < 1.0
    # and what they owe to their volumes shows: another patient's labels fit them far worse
    owed = metrics[f"{TASK}/clinical_f1_owed"]
    assert owed == pytest.approx(metrics[f"{TASK}/clinical_f1"] - metrics[f"{TASK}/clinical_f1_deranged"])
    assert (
        0.03
        < metrics[f"{TASK}/clinical_f1_owed_ci_lower"]
        < owed
        < metrics[f"{TASK}/clinical_f1_owed_ci_upper"]
    )
    written = {json.loads(line)["generated_text"].strip().lower() for line in pred.read_text().splitlines()}
    assert metrics[f"{TASK}/distinct_reports"] == len(written) > 30
    table = (tmp_path / "metrics.md").read_text()
    assert table.count("|") > 50 and "| clinical_f1_owed |" in table
    assert f"| distinct_reports | {len(written)} |" in table


def test_help_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys, runpy; sys.argv=['x','--help']\n"
        "try:\n runpy.run_module('adaragct.eval.cal_metrics', run_name='__main__')\n"
        "except SystemExit: pass\nprint('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--labels-csv" in res.stdout and res.stdout.strip().endswith("False False")


def test_missing_label_ids_error_then_allow_missing(release_case, tmp_path) -> None:
    pred, labels = release_case
    frame = pd.read_csv(labels).iloc[3:]  # drop 3 volumes from the ground truth
    frame.to_csv(labels, index=False)
    with pytest.raises(DataError, match=r"3 of 60 predicted volumes are missing, first: \['train_1'"):
        evaluate_predictions(EvalOptions(pred, tmp_path / "m.json", labels_csv=labels, meteor=False))
    metrics = evaluate_predictions(
        EvalOptions(pred, tmp_path / "m.json", labels_csv=labels, meteor=False, allow_missing=True)
    )
    assert metrics["num_samples"] == 57 and metrics["num_dropped_missing_labels"] == 3
    assert cal_metrics([str(pred), "--output", str(tmp_path / "x.json"), "--labels-csv", str(labels)]) == 2


def test_malformed_jsonl_names_the_line(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"image": "a", "generated_text": "x", "reference_text": "y"}\n{"image": "b", \n')
    with pytest.raises(DataError, match="line 2"):
        read_predictions(path)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"generated_text": "x", "reference_text": "y"}, "image"),
        ({"image": "a", "reference_text": "y"}, "generated_text"),
        ({"image": "a", "generated_text": 3, "reference_text": "y"}, "generated_text"),
    ],
)
def test_missing_or_bad_fields(tmp_path, row, field) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"image": "z", "generated_text": "x", "reference_text": "y"}, row]
    )
    with pytest.raises(DataError, match=f"record 2 field '{field}'"):
        read_predictions(path)


def test_missing_references_and_duplicate_ids(tmp_path) -> None:
    no_refs = write_jsonl(tmp_path / "a.jsonl", [{"image": "a", "prediction": "x"}])
    with pytest.raises(DataError, match="reference_text"):
        evaluate_predictions(EvalOptions(no_refs, tmp_path / "m.json", meteor=False))
    dups = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"image": "v_1.nii.gz", "prediction": "x", "reference": "y"},
            {"image": "/d/v_1", "prediction": "x", "reference": "y"},
        ],
    )
    with pytest.raises(DataError, match="1 duplicate volume ids"):
        read_predictions(dups)


def test_vlm3d_layout_with_references_from_second_file(vlm3d_dir, tmp_path) -> None:
    truth = json.loads((vlm3d_dir / "ground_truth.json").read_text())
    truth["generated_reports"][0]["report"] = "Findings: Normal study. Impression: Normal."
    pred = tmp_path / "submission.json"
    pred.write_text(json.dumps(truth))
    preds = attach_references(read_predictions(pred), vlm3d_dir / "ground_truth.json")
    assert len(preds) == 10 and preds.references[0].startswith("Findings:")
    metrics = evaluate_predictions(
        EvalOptions(
            pred,
            tmp_path / "m.json",
            references=vlm3d_dir / "ground_truth.json",
            labels_csv=vlm3d_dir / "ground_truth.csv",
            meteor=False,
        )
    )
    assert metrics["num_samples"] == 10
    nodule = metrics[f"{TASK}/clinical_detailed"]["Lung nodule"]
    # 6 volumes have a nodule; the one we replaced by a normal report is the only miss
    assert nodule["support"] == 6 and nodule["recall"] == pytest.approx(5 / 6) and nodule["precision"] == 1.0


def test_hydra_app_writes_outputs(release_case, tmp_path) -> None:
    pred, labels = release_case
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaragct.evaluate",
            f"predictions={pred}",
            f"labels_csv={labels}",
            f"paths.root_dir={tmp_path}",
            "scoring.meteor=false",
            "scoring.bootstrap.num_resamples=50",
            f"compare_with={pred}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    runs = list((tmp_path / "outputs" / "evaluate" / "runs").iterdir())
    files = {p.name for p in runs[0].iterdir()}
    assert {"metrics.json", "metrics.md", "comparison.json"} <= files
    comparison = json.loads((runs[0] / "comparison.json").read_text())
    assert comparison["clinical_f1"]["difference"] == 0.0 and comparison["clinical_f1"]["p_value"] == 1.0
