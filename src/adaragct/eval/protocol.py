"""What an evaluation used, and whether its numbers can be compared with the paper's (docs/evaluation.md, docs/configs.md).

Two ways of scoring the same predictions give different numbers: on the VLM3D example, clinical F1 is 0.6000 with
ground truth from the labels CSV and 0.5833 with the references labelled by the same labeler. So every evaluation
names, on the console and in its metrics JSON (``protocol`` block) and markdown table:

* the labeler (``rule``, or ``radbert`` with the checkpoint file and its SHA-256);
* the ground-truth source (a labels CSV, with its path and SHA-256, or the labeler run on the references);
* the implementation of each metric;
* whether the result is comparable to the paper's protocol, and if not, every reason.

The paper's protocol is the release's ``cal_metrics.py``: predictions labelled by the CT-RATE RadBERT classifier,
ground truth from ``data/annotations/valid_predicted_labels.csv`` (CT-RATE's ``valid_predicted_labels.csv``),
METEOR computed, and the LLaMA score judged with the prompt of the release's ``llama_score.py`` (which we do not
ship: a user supplies it). ``protocol="release"`` (``--protocol release``) makes those choices in one word and
refuses to run without them; ``protocol="ours"`` (the default) scores any file with what is at hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaragct.errors import DataError, UsageError

PROTOCOLS = ("ours", "release")
# the release's default --clinical-labels-csv, relative to the directory the command runs in
RELEASE_LABELS_CSV = Path("data/annotations/valid_predicted_labels.csv")

IMPLEMENTATIONS = {
    "bleu_1..4": "corpus BLEU of pycocoevalcap (identical numbers: adaragct/eval/text_metrics.py)",
    "bleu_sacre": "sacrebleu corpus_bleu",
    "rouge_l": "ROUGE-L of pycocoevalcap (identical numbers: adaragct/eval/text_metrics.py)",
    "cider": "CIDEr-D of pycocoevalcap (identical numbers: adaragct/eval/text_metrics.py)",
    "meteor": "METEOR 1.5, pycocoevalcap's Java scorer",
    "clinical": "support-weighted P/R/F1 over the 18 CT-RATE findings (sklearn average='weighted')",
    "llama_score": "LLM judge, 0-10 per report, mean (adaragct/eval/judge.py)",
}


def release_protocol_problems(
    *,
    labeler: str,
    radbert_checkpoint: str | Path | None,
    labels_csv: str | Path | None,
    label_references: bool,
    meteor: bool,
    compute_clinical: bool,
    judge_model: str | Path | None,
    judge_rubric_is_default: bool,
) -> list[str]:
    """Why these options are not the release's protocol (empty: they are)."""
    problems = []
    if not compute_clinical:
        problems.append("clinical efficacy is off (the paper reports it)")
    elif labeler != "radbert" or radbert_checkpoint is None:
        problems.append(f"the labeler is {labeler!r}, not the CT-RATE RadBERT classifier")
    if compute_clinical and (labels_csv is None or label_references):
        problems.append("ground truth is the labeler on the references, not the labels CSV")
    if not meteor:
        problems.append("METEOR is off")
    if judge_model is not None and judge_rubric_is_default:
        problems.append("the judge uses our rubric, not the prompt of the release's llama_score.py")
    return problems


def check_release_protocol(**options: Any) -> None:
    """Refuse options that are not the release's protocol (``--protocol release``), all reasons at once."""
    problems = release_protocol_problems(**options)
    if problems:
        raise UsageError(
            "protocol release",
            "; ".join(problems),
            "pass --radbert-checkpoint C --roberta-dir R (scoring.labeler.radbert_checkpoint, scoring.labeler.roberta_dir) and "
            f"the labels CSV (default {RELEASE_LABELS_CSV}), keep METEOR on, and give the judge the release's "
            "prompt (scoring.judge.system_prompt_file / scoring.judge.question_file), or drop --protocol release",
        )
    csv = options["labels_csv"]
    if csv is not None and not Path(csv).is_file():
        raise DataError(
            csv,
            "labels CSV",
            "does not exist",
            "pass CT-RATE's valid_predicted_labels.csv (--clinical-labels-csv / labels_csv=PATH)",
        )


def _sha256(path: str | Path) -> str:
    from adaragct.ledger import sha256_file

    return sha256_file(Path(path))


def describe(
    *,
    labeler: str | None,
    radbert_checkpoint: str | Path | None,
    ground_truth: str | None,
    labels_csv: str | Path | None,
    meteor_unavailable: str | None,  # why METEOR failed when it was asked for (None: computed or not asked)
    problems: list[str],
    judge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``protocol`` block of the metrics JSON: what was used and whether it is the paper's protocol."""
    block: dict[str, Any] = {
        "labeler": labeler,
        "labeler_checkpoint": None if radbert_checkpoint is None else str(radbert_checkpoint),
        "labeler_checkpoint_sha256": None,
        "ground_truth": ground_truth,
        "ground_truth_file": None,
        "ground_truth_sha256": None,
        "implementations": dict(IMPLEMENTATIONS),
    }
    if labeler == "radbert" and radbert_checkpoint is not None:
        block["labeler_checkpoint_sha256"] = _sha256(radbert_checkpoint)
    if ground_truth == "labels_csv" and labels_csv is not None:
        block["ground_truth_file"] = str(labels_csv)
        block["ground_truth_sha256"] = _sha256(labels_csv)
    if meteor_unavailable:  # asked for, but it could not run
        problems = [*problems, f"METEOR was not computed ({meteor_unavailable})"]
    if judge is not None:
        block["judge"] = judge
    block["comparable_to_paper"] = not problems
    block["not_comparable_because"] = list(problems)
    return block


def console_lines(block: dict[str, Any]) -> list[str]:
    """What the console says about the protocol (labeler, ground truth, comparability)."""
    labeler = block["labeler"]
    if labeler is None:
        lines = ["labeler: none (clinical efficacy off)"]
    elif labeler == "radbert":
        sha = (block["labeler_checkpoint_sha256"] or "")[:12]
        lines = [f"labeler: radbert ({block['labeler_checkpoint']}, sha256 {sha})"]
    else:
        lines = ["labeler: rule (adaragct's offline rule labeler)"]
    truth = block["ground_truth"]
    if truth == "labels_csv":
        sha = (block["ground_truth_sha256"] or "")[:12]
        lines.append(f"ground truth: labels CSV {block['ground_truth_file']} (sha256 {sha})")
    elif truth == "labeler_on_reference":
        lines.append(f"ground truth: the {labeler} labeler on the reference reports (no labels CSV given)")
    lines.append(
        "metrics: BLEU-1..4, ROUGE-L, CIDEr-D as pycocoevalcap computes them, METEOR 1.5 (pycocoevalcap's Java "
        "scorer), sacreBLEU, support-weighted clinical P/R/F1 over the 18 CT-RATE findings"
    )
    if block["comparable_to_paper"]:
        lines.append("comparable to the paper's protocol: yes")
    else:
        lines.append(
            "comparable to the paper's protocol: no (" + "; ".join(block["not_comparable_because"]) + ")"
        )
    judge = block.get("judge")
    if judge is not None and judge.get("rubric_is_default"):
        lines.append("LLaMA score: judged with adaragct's own rubric, not comparable to the paper's 7.75")
    return lines
