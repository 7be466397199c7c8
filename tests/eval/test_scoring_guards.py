"""Scoring never destroys an input, never hangs, and tells every fixable problem on one line before any scoring
(issue 24). Each test reproduces one finding of the issue with the real commands and real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaragct.compat.cal_metrics import main as cal_metrics
from adaragct.errors import UsageError
from adaragct.eval.runner import EvalOptions, check_options, output_paths

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TASK = "report_generation"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def pred(tmp_path: Path) -> Path:
    rows = [
        {"image": "a", "generated_text": "the lungs are clear .", "reference_text": "lungs are clear ."},
        {"image": "b", "generated_text": "no effusion", "reference_text": "no pleural effusion"},
    ]
    return write_jsonl(tmp_path / "pred.jsonl", rows)


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def one_error_line(err: str) -> str:
    """The whole stderr is one ``error: ...`` line; returns it."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        ("error: ", "python -m adaragct.eval.cal_metrics: error:")
    ), err
    return lines[0]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adaragct.eval.cal_metrics", *args],
        capture_output=True,
        text=True,
        timeout=300,  # before issue 24 a report with a newline hung here for ever
        cwd=PROJECT_ROOT,
    )


# ---- 1. METEOR: hostile text is scored, or METEOR is reported unavailable with its reason; never a hang


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")
def test_newline_and_lone_surrogate_reports_are_scored_and_the_command_exits(tmp_path: Path) -> None:
    rows = [
        {
            "image": "a",
            "generated_text": "Findings: lungs clear.\nImpression: normal.",
            "reference_text": "normal",
        },
        {"image": "b", "generated_text": "\ud800 no effusion", "reference_text": "no effusion\r\n|||"},
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert "\\ud800" in path.read_text()  # valid JSON for a lone surrogate
    res = run_cli(str(path), "--output", str(tmp_path / "m.json"))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 < metrics[f"{TASK}/meteor"] <= 1 and metrics[f"{TASK}/meteor_unavailable"] is None


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")
def test_meteor_past_its_time_limit_is_null_with_the_reason(pred: Path, tmp_path: Path) -> None:
    res = run_cli(str(pred), "--output", str(tmp_path / "m.json"), "--meteor-timeout", "0.05")
    assert res.returncode == 0, res.stderr
    assert "METEOR unavailable, reported as null: the Java scorer gave no answer within 0.05 s" in res.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (
        metrics[f"{TASK}/meteor"] is None
        and "no answer within 0.05 s" in metrics[f"{TASK}/meteor_unavailable"]
    )
    assert metrics[f"{TASK}/bleu_4"] is not None  # the other metrics are written
    assert "METEOR unavailable: the Java scorer gave no answer" in (tmp_path / "m.md").read_text()


# ---- 2. no data loss: an output is never an input, the JSON and the table never the same file


def test_output_equal_to_the_predictions_is_refused_untouched(pred: Path, tmp_path: Path, capsys) -> None:
    before = snapshot(pred)
    (tmp_path / "link.json").symlink_to(pred)
    for output in (pred, tmp_path / "link.json"):
        assert cal_metrics([str(pred), "--output", str(output), "--no-meteor"]) == 2
        assert "is also an input" in one_error_line(capsys.readouterr().err)
    assert snapshot(pred) == before and not (tmp_path / "pred.md").exists()


def test_output_naming_the_markdown_table_keeps_both_files(pred: Path, tmp_path: Path) -> None:
    assert output_paths("m.md") == (Path("m.json"), Path("m.md"))
    assert output_paths("m.json") == (Path("m.json"), Path("m.md"))
    assert output_paths("metrics") == (Path("metrics"), Path("metrics.md"))
    assert cal_metrics([str(pred), "--output", str(tmp_path / "m.md"), "--no-meteor"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["num_samples"] == 2
    assert (tmp_path / "m.md").read_text().startswith("# Evaluation (2 volumes")
    # the Hydra app names both; the same file twice is refused
    opts = EvalOptions(pred, tmp_path / "x.json", markdown=tmp_path / "x.json")
    with pytest.raises(UsageError, match=r"x\.json: are the same file"):
        check_options(opts)


def test_output_that_is_a_directory_or_under_a_file_is_refused_before_reading(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\n")  # never read: the outputs are checked first
    (tmp_path / "out").mkdir()
    assert cal_metrics([str(bad), "--output", str(tmp_path / "out"), "--no-meteor"]) == 2
    assert "out: output file: is a directory" in one_error_line(capsys.readouterr().err)
    assert cal_metrics([str(bad), "--output", str(bad / "m.json"), "--no-meteor"]) == 2
    assert "bad.jsonl: output file: is a file, so" in one_error_line(capsys.readouterr().err)


def test_read_only_output_folder_is_refused_before_reading(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\n")  # never read: the outputs are checked first
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    command = [
        sys.executable,
        "-m",
        "adaragct.eval.cal_metrics",
        str(bad),
        "--output",
        str(folder / "m.json"),
    ]
    if os.geteuid() == 0:  # root writes anywhere; drop the capability that lets it (CI runs as root)
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder cannot be made")
        command = ["setpriv", "--bounding-set", "-dac_override", *command]
    res = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    folder.chmod(0o755)
    assert res.returncode == 2
    assert "ro: output file: folder is not writable" in one_error_line(res.stderr)
    assert list(folder.iterdir()) == []


# ---- 3. every fixable problem is one line, exit status 2, before any scoring


def test_non_utf8_predictions_name_line_and_byte(tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"image": "a", "generated_text": "x", "reference_text": "y"}\n{"image": "b\xe9"}\n')
    assert cal_metrics([str(path), "--output", str(tmp_path / "m.json"), "--no-meteor"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(
        "p.jsonl: line 2 byte 13: is not UTF-8 text (byte 0xe9) (fix: save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 IN > OUT))"
    )


def test_empty_labels_csv_is_one_line(pred: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "labels.csv").write_bytes(b"")
    argv = [str(pred), "--output", str(tmp_path / "m.json"), "--labels-csv", str(tmp_path / "labels.csv")]
    assert cal_metrics([*argv, "--no-meteor"]) == 2
    assert "labels.csv: file: is empty (no header, no rows)" in one_error_line(capsys.readouterr().err)


def test_radbert_without_its_files_is_one_line(pred: Path, tmp_path: Path, capsys) -> None:
    assert (
        cal_metrics([str(pred), "--output", str(tmp_path / "m.json"), "--labeler", "radbert", "--no-meteor"])
        == 2
    )
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: labeler radbert: needs a checkpoint") and "--radbert-checkpoint" in line
    assert not (tmp_path / "m.json").exists()


def test_missing_judge_model_is_one_line_before_scoring(pred: Path, tmp_path: Path, capsys) -> None:
    argv = [str(pred), "--output", str(tmp_path / "m.json"), "--compute-llama-score"]
    # a METEOR limit no JVM meets: had scoring started, its warning would be on stderr
    argv += ["--judge-model", str(tmp_path / "nope"), "--meteor-timeout", "0.01"]
    assert cal_metrics(argv) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {tmp_path / 'nope'}: judge model: does not exist (fix: pass a local causal LM directory written "
        "by save_pretrained (--judge-model, judge.model_path))"
    )
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("option", [["--bootstrap", "-5"], ["--meteor-timeout", "0"]])
def test_negative_counts_are_usage_errors(pred: Path, tmp_path: Path, capsys, option: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cal_metrics([str(pred), "--output", str(tmp_path / "m.json"), *option])
    assert stop.value.code == 2
    assert f"argument {option[0]}: " in one_error_line(capsys.readouterr().err)
    with pytest.raises(UsageError, match="bootstrap = -5: is negative"):  # the API refuses it too
        check_options(EvalOptions(pred, tmp_path / "m.json", bootstrap=-5))


def test_empty_references_are_counted_and_warned(tmp_path: Path, caplog) -> None:
    rows = [
        {"image": "a", "generated_text": "lungs clear", "reference_text": "  "},
        {"image": "b", "generated_text": "", "reference_text": "no effusion"},
        {"image": "c", "generated_text": "heart normal", "reference_text": "heart normal"},
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert cal_metrics([str(path), "--output", str(tmp_path / "m.json"), "--no-meteor"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics[f"{TASK}/num_empty_references"] == 1 and metrics[f"{TASK}/num_empty_predictions"] == 1
    assert "1 of 3 references in" in caplog.text and "1 of 3 predictions in" in caplog.text
    assert "| empty references | 1 |" in (tmp_path / "m.md").read_text()


def test_hydra_app_prints_one_line_and_validates_before_writing(pred: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"image": "\xff"}\n')
    cases = [
        ([f"predictions={bad}", "labels_csv=null"], "bad.jsonl: line 1 byte 12: is not UTF-8 text"),
        (
            [f"predictions={pred}", f"compare_with={pred}", "labels_csv=null"],
            f"compare_with={pred}: needs labels_csv",
        ),
    ]
    for overrides, message in cases:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "adaragct.evaluate",
                *overrides,
                f"paths.root_dir={tmp_path}",
                "scoring.meteor=false",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=PROJECT_ROOT,
        )
        assert res.returncode == 2, res.stderr[-2000:]
        assert message in one_error_line(res.stderr)
    assert not list(tmp_path.glob("outputs/evaluate/runs/*/metrics.*"))  # validated before writing


def test_vlm3d_file_without_reports_is_a_data_error(tmp_path: Path, capsys) -> None:
    # found by the fuzz suite: it reached sacreBLEU and died there with an IndexError
    path = tmp_path / "submission.json"
    path.write_text(
        json.dumps({"name": "x", "type": "report_generation", "generated_reports": [], "version": "1"})
    )
    argv = [str(path), "--output", str(tmp_path / "m.json"), "--references", str(path), "--no-meteor"]
    assert cal_metrics(argv) == 2
    assert "submission.json: key 'generated_reports': is an empty list" in one_error_line(
        capsys.readouterr().err
    )
