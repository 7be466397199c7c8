"""GREEN: the refusal adaragct prints for --compute-green, and the RadEval script it points to.

The script runs end to end only where RadEval is importable (it cannot share adaragct's environment, see
adaragct/eval/green.py), so that test is skipped when ``radeval`` is absent, which is the case in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adaragct.errors import one_line
from adaragct.eval.green import RADEVAL_PIN, RADEVAL_SCRIPT, green_unavailable_reason, green_usage_error


def test_refusal_is_one_line_with_the_reason_and_the_fix() -> None:
    reason = green_unavailable_reason()
    assert "\n" not in reason and reason.startswith("GREEN is not computed by adaragct: ")
    for finding in ("green-score 0.0.12", "Python 3.12.1", RADEVAL_PIN, "torchvision", "numpy 2", "NLTK"):
        assert finding in reason
    error = green_usage_error()
    text = one_line(error)
    assert text == str(error) and text.startswith("--compute-green: GREEN is not computed by adaragct")
    assert "reference_text and generated_text" in error.fix and "python -m adaragct.eval.green" in error.fix
    assert str(green_usage_error("compute_green=true")).startswith("compute_green=true: ")


def test_module_prints_the_script_and_it_compiles(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "adaragct.eval.green"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out == RADEVAL_SCRIPT
    compile(out, "green_radeval.py", "exec")
    assert 'row["reference_text"]' in out and 'row["generated_text"]' in out and "batch_size = 16" in out


@pytest.mark.slow
def test_radeval_script_scores_a_predictions_file(tiny_llama_dir, tmp_path: Path) -> None:
    """A tiny random Llama as the GREEN model: its answers hold no counts, so every score is 0 (~1 min on CPU)."""
    pytest.importorskip(
        "radeval.metrics.green_score.green", reason=f"needs {RADEVAL_PIN} (not an adaragct extra)"
    )
    rows = [
        {
            "image": "valid_1_a_1.nii.gz",
            "generated_text": "no pleural effusion .",
            "reference_text": "no effusion .",
        },
        {
            "image": "valid_2_a_1.nii.gz",
            "generated_text": "nodule in the right lung",
            "reference_text": "nodule",
        },
    ]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    script = tmp_path / "green_radeval.py"
    script.write_text(RADEVAL_SCRIPT, encoding="utf-8")
    out = tmp_path / "green.json"
    subprocess.run(
        [sys.executable, str(script), str(predictions), str(tiny_llama_dir), str(out), "--cpu"],
        cwd=tmp_path,
        check=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert json.loads(out.read_text()) == {
        "report_generation/green_mean": 0.0,
        "report_generation/green_std": 0.0,
    }
    table = pd.read_csv(tmp_path / "green.json.per_sample.csv")
    assert list(table.columns[:5]) == ["image", "reference", "predictions", "green_analysis", "green_score"]
    assert table["image"].tolist() == ["valid_1_a_1.nii.gz", "valid_2_a_1.nii.gz"]
    assert table["green_score"].tolist() == [0, 0]
