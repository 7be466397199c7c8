"""Scoring any generator's file with nothing else, and the release's ``cal_metrics`` command lines (issue 21).

Every flag of the release's ``cal_metrics.py`` is run here and checked to be honoured (in the metrics it writes)
or refused on one line that says what to use instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaragct.compat.cal_metrics import default_output
from adaragct.compat.cal_metrics import main as cal_metrics
from adaragct.constants import FINDINGS
from adaragct.eval.protocol import RELEASE_LABELS_CSV

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TASK = "report_generation"

REPORTS = [
    "Findings: Heart size is normal. No pleural effusion. A 5 mm nodule in the right upper lobe. "
    "Impression: Lung nodule.",
    "Findings: Cardiomegaly. Bilateral pleural effusion. Atelectasis in both lower lobes. "
    "Impression: Cardiomegaly with pleural effusion.",
    "Findings: Emphysema in both upper lobes. Coronary artery wall calcification. Impression: Emphysema.",
    "Findings: No pleural or pericardial effusion. Lungs are clear. Impression: Normal chest CT.",
    "Findings: Hiatal hernia. Consolidation in the left lower lobe. Impression: Pneumonia suspected.",
    "Findings: Mosaic attenuation pattern. Bronchiectasis. Peribronchial thickening. Impression: Airway disease.",
]


def _write_predictions(folder: Path, name: str = "P.jsonl") -> Path:
    """A generator's predictions: each volume gets the next volume's report (so scores are neither 0 nor 1)."""
    path = folder / name
    rows = [
        {"image": f"vol_{i}", "generated_text": REPORTS[(i + 1) % len(REPORTS)], "reference_text": ref}
        for i, ref in enumerate(REPORTS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_labels(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["VolumeName," + ",".join(FINDINGS)]
    for i in range(len(REPORTS)):
        lines.append(f"vol_{i}," + ",".join(str(v) for v in rng.integers(0, 2, len(FINDINGS))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROJECT_ROOT": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_bare_predictions_file_scores_from_an_empty_directory(tmp_path: Path) -> None:
    """The README's two scoring commands, as written, in a directory holding only the predictions file."""
    _write_predictions(tmp_path)
    evaluate = shutil.which("adaragct-evaluate", path=str(Path(sys.executable).parent))
    assert evaluate, "the console script adaragct-evaluate is installed with the package"
    for args in (
        [evaluate, "predictions=P.jsonl"],
        [sys.executable, "-m", "adaragct.eval.cal_metrics", "P.jsonl", "--output", "m.json"],
    ):
        done = _run(args, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "labeler: rule" in done.stdout
        assert "ground truth: the rule labeler on the reference reports" in done.stdout
        assert "comparable to the paper's protocol: no" in done.stdout
        assert (
            "METEOR skipped" not in done.stdout
        )  # METEOR is a main dependency: computed, never a silent n/a
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["protocol"]["ground_truth"] == "labeler_on_reference"
    (run,) = (tmp_path / "outputs" / "evaluate" / "runs").iterdir()
    assert "vol_0" in (run / "view.html").read_text()  # the Hydra app's report viewer page
    assert metrics[f"{TASK}/meteor"] is not None
    table = (tmp_path / "m.md").read_text()
    assert "- ground truth: the rule labeler" in table
    assert "| meteor | METEOR 1.5, pycocoevalcap's Java scorer |" in table  # each metric's implementation


def _readme_block(marker: str) -> list[str]:
    """The shell command lines of the README code block that follows ``marker``."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(marker, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines, current = [], ""
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return lines


def test_the_readme_vlm3d_command_scores_the_challenge_example_as_written(
    vlm3d_dir: Path, tmp_path: Path
) -> None:
    """A copy of the VLM3D example plus a submission in the challenge's layout, scored by the README's command."""
    for name in ("ground_truth.json", "ground_truth.csv"):
        shutil.copy(vlm3d_dir / name, tmp_path / name)
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    reports = truth["generated_reports"]
    submission = {
        **truth,
        "generated_reports": [
            {"input_image_name": r["input_image_name"], "report": reports[(i + 3) % len(reports)]["report"]}
            for i, r in enumerate(reports)
        ],
    }
    (tmp_path / "submission.json").write_text(json.dumps(submission), encoding="utf-8")
    commands = _readme_block("<!-- vlm3d-command -->")
    assert commands and all("../shared" not in c for c in commands)
    for command in commands:
        done = _run(["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)], tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "ground truth: labels CSV ground_truth.csv" in done.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["num_samples"] == len(reports)
    assert metrics["protocol"]["ground_truth_file"] == "ground_truth.csv"


def test_no_readme_command_names_the_shared_folder() -> None:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert blocks
    assert not [b for b in blocks if "../shared" in b]


def test_the_default_output_is_the_releases_path_or_beside_the_predictions(tmp_path: Path) -> None:
    assert default_output("run/infer_oracle_rag/step_3000.jsonl") == Path(
        "run/metrics_oracle_rag/metrics_step_3000.json"
    )
    assert default_output("run/infer/infer_step_12.jsonl") == Path("run/metrics/metrics_step_12.json")
    assert default_output("x/P.jsonl") == Path("x/P_metrics.json")


# ---------------------------------------------------------------- the release's flags, one by one


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release_flags")
    return {"root": root, "pred": _write_predictions(root), "labels": _write_labels(root / "labels.csv")}


@pytest.fixture(scope="module")
def radbert(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    """A checkpoint in CT-RATE's RadBertClassifier.pth layout, from the labeler's own module builder."""
    import torch

    from adaragct.eval.labelers.radbert import build_radbert_module

    torch.manual_seed(3)
    module = build_radbert_module(tiny_roberta_dir)
    with torch.no_grad():
        module.classifier.bias.copy_(torch.linspace(-2, 2, len(FINDINGS)))
    path = tmp_path_factory.mktemp("radbert") / "RadBertClassifier.pth"
    torch.save(module.state_dict(), path)
    return path


def _radbert_flags(checkpoint: Path, roberta_dir: Path) -> list[str]:
    return ["--radbert-checkpoint", str(checkpoint), "--roberta-dir", str(roberta_dir)]


def _score(case: dict[str, Path], tmp_path: Path, *flags: str, meteor: bool = False) -> tuple[int, dict, str]:
    out = tmp_path / "m.json"
    argv = [str(case["pred"]), "--output", str(out), "--no-progress", *flags]
    if not meteor:
        argv.append("--no-meteor")
    code = cal_metrics(argv)
    return (
        code,
        json.loads(out.read_text()) if out.is_file() else {},
        out.with_suffix(".md").read_text() if code == 0 else "",
    )


def test_clinical_labels_csv_and_its_alias_are_the_ground_truth(case, tmp_path, capsys) -> None:
    for flag in ("--clinical-labels-csv", "--labels-csv"):
        code, metrics, _ = _score(case, tmp_path, flag, str(case["labels"]))
        assert code == 0
        assert metrics["protocol"]["ground_truth"] == "labels_csv"
        assert metrics["protocol"]["ground_truth_file"] == str(case["labels"])
    assert f"ground truth: labels CSV {case['labels']}" in capsys.readouterr().out


def test_the_releases_default_labels_csv_is_used_when_it_exists_here(
    case, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    _write_labels(tmp_path / RELEASE_LABELS_CSV, seed=1)
    code, metrics, _ = _score(case, tmp_path)
    assert code == 0
    assert metrics["protocol"]["ground_truth_file"] == str(RELEASE_LABELS_CSV)
    code, metrics, _ = _score(case, tmp_path, "--label-references")
    assert metrics["protocol"]["ground_truth"] == "labeler_on_reference"


def test_no_compute_clinical_efficacy_skips_the_labeler_and_says_so(case, tmp_path, capsys) -> None:
    code, on, _ = _score(case, tmp_path, "--compute-clinical-efficacy")
    assert code == 0 and on[f"{TASK}/clinical_f1"] is not None
    code, off, table = _score(case, tmp_path, "--no-compute-clinical-efficacy", "--bootstrap", "20")
    assert code == 0
    assert off[f"{TASK}/clinical_f1"] is None and off["protocol"]["labeler"] is None
    assert off[f"{TASK}/bleu_4"] == on[f"{TASK}/bleu_4"]
    assert f"{TASK}/bleu_4_ci_lower" in off and f"{TASK}/clinical_f1_ci_lower" not in off
    out = capsys.readouterr().out
    assert "clinical efficacy skipped" in out
    assert "labeler: none" in table


def test_radbert_checkpoint_selects_the_radbert_labeler_and_names_its_hash(
    case, tmp_path, radbert, tiny_roberta_dir, capsys
) -> None:
    from adaragct.ledger import sha256_file

    code, metrics, _ = _score(
        case,
        tmp_path,
        *_radbert_flags(radbert, tiny_roberta_dir),
        "--device",
        "cpu",
    )
    assert code == 0
    assert metrics["labeler"] == "radbert"
    assert metrics["protocol"]["labeler_checkpoint_sha256"] == sha256_file(radbert)
    assert f"labeler: radbert ({radbert}, sha256 {sha256_file(radbert)[:12]})" in capsys.readouterr().out
    code, _, _ = _score(
        case, tmp_path, "--radbert-checkpoint", str(radbert)
    )  # RadBERT needs its RoBERTa folder
    assert code == 2
    assert "--roberta-dir" in capsys.readouterr().err


def test_compute_llama_score_with_llama_model_path_runs_the_judge(
    case, tmp_path, tiny_llama_dir, capsys
) -> None:
    code, metrics, _ = _score(
        case, tmp_path, "--compute-llama-score", "--llama-model-path", str(tiny_llama_dir), "--device", "auto"
    )
    assert code == 0
    assert metrics["llama_score"] is not None and metrics["protocol"]["judge"]["rubric_is_default"]
    assert "judged with adaragct's own rubric" in capsys.readouterr().out
    code, metrics, _ = _score(
        case, tmp_path, "--no-compute-llama-score", "--llama-model-path", str(tiny_llama_dir)
    )
    assert code == 0 and metrics["llama_score"] is None


def test_compute_llama_score_without_a_model_is_refused_on_one_line(case, tmp_path, capsys) -> None:
    code, _, _ = _score(case, tmp_path, "--compute-llama-score")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--llama-model-path" in err
    assert not (tmp_path / "m.json").exists()


def test_meteor_flags_and_the_bootstrap(case, tmp_path, capsys) -> None:
    code, metrics, _ = _score(case, tmp_path, "--bootstrap", "50", meteor=True)
    assert code == 0 and metrics[f"{TASK}/meteor"] is not None
    assert f"{TASK}/clinical_f1_ci_upper" in metrics
    code, metrics, _ = _score(case, tmp_path)
    assert metrics[f"{TASK}/meteor"] is None
    assert "METEOR skipped: not requested" in capsys.readouterr().out


def test_protocol_release_refuses_what_is_not_the_papers_protocol(case, tmp_path, capsys) -> None:
    code, _, _ = _score(case, tmp_path, "--protocol", "release", meteor=True)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not the CT-RATE RadBERT classifier" in err and "--radbert-checkpoint" in err


def test_protocol_release_with_every_choice_is_comparable(
    case, tmp_path, radbert, tiny_roberta_dir, capsys
) -> None:
    code, metrics, _ = _score(
        case,
        tmp_path,
        "--protocol",
        "release",
        *_radbert_flags(radbert, tiny_roberta_dir),
        "--clinical-labels-csv",
        str(case["labels"]),
        meteor=True,
    )
    assert code == 0, capsys.readouterr().err
    assert metrics["protocol"]["comparable_to_paper"] is True
    assert "comparable to the paper's protocol: yes" in capsys.readouterr().out


def test_compute_green_is_refused_with_what_to_run_instead(case, tmp_path, capsys) -> None:
    for flags in (("--compute-green",), ("--compute-green", "--green-model-path", str(tmp_path))):
        code, _, _ = _score(case, tmp_path, *flags)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "GREEN is not computed by adaragct" in err and "python -m adaragct.eval.green" in err
    code, metrics, _ = _score(case, tmp_path, "--no-compute-green", "--green-model-path", str(tmp_path))
    assert code == 0 and "report_generation/green_mean" not in metrics  # the release's default: off


def test_the_judge_rubric_from_files_is_recorded_and_makes_the_protocol_comparable(
    case, tmp_path, tiny_llama_dir, radbert, tiny_roberta_dir, capsys
) -> None:
    system = tmp_path / "system.txt"
    system.write_text("You grade chest CT reports.\n")
    question = tmp_path / "question.txt"
    question.write_text("Reference: {reference}\nCandidate: {generated}\nScore 0-10:\n")
    release = [
        "--protocol",
        "release",
        *_radbert_flags(radbert, tiny_roberta_dir),
    ]
    release += ["--clinical-labels-csv", str(case["labels"]), "--compute-llama-score"]
    release += ["--llama-model-path", str(tiny_llama_dir), "--judge-max-new-tokens", "4"]
    code, _, _ = _score(case, tmp_path, *release, meteor=True)  # our rubric is not the release's prompt
    assert code == 2 and "the judge uses our rubric" in capsys.readouterr().err
    cache = tmp_path / "answers.jsonl"
    rubric = ["--judge-system-prompt-file", str(system), "--judge-question-file", str(question)]
    rubric += ["--judge-cache", str(cache)]
    code, metrics, _ = _score(case, tmp_path, *release, *rubric, meteor=True)
    assert code == 0, capsys.readouterr().err
    assert metrics["llama_score_rubric"] == "custom" and metrics["protocol"]["comparable_to_paper"]
    assert len(cache.read_text().splitlines()) == len(REPORTS)
    code, again, _ = _score(case, tmp_path, *release, *rubric, meteor=True)
    assert again["llama_score_num_cached"] == len(REPORTS) and again["llama_score"] == metrics["llama_score"]
