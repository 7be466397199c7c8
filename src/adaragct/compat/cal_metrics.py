"""The release's evaluation command, kept so the paper's commands work unchanged (docs/configs.md): its flags and
their mapping onto :mod:`adaragct.eval.runner`. The command's path, ``adaragct.eval.cal_metrics``, forwards here.

Run (any predictions file, nothing else needed):
    python -m adaragct.eval.cal_metrics PRED.jsonl [--output metrics.json]
The release's command lines, verbatim:
    python -m adaragct.eval.cal_metrics PRED.jsonl --output M --radbert-checkpoint C [--roberta-dir R]
        [--clinical-labels-csv L] [--compute-llama-score --llama-model-path J] [--bootstrap 1000] [--device cuda]
The paper's protocol in one word: ``--protocol release`` (see ``adaragct/eval/protocol.py``).

Every flag of the release's ``cal_metrics.py`` is accepted with its meaning and default, except where a default of
the release cannot work anywhere but on its authors' machines (placeholder paths: ``/path/to/...``); the table
in ``--help`` says what each does here. Heavy libraries (torch, transformers) are imported only when a step needs
them, so ``--help`` is instant. Options and output paths are checked before anything is scored.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from adaragct.cli import OneLineParser, count, seconds
from adaragct.errors import USER_ERROR_EXIT, DataError, UsageError, one_line
from adaragct.eval.meteor import METEOR_TIMEOUT_S
from adaragct.eval.protocol import PROTOCOLS, RELEASE_LABELS_CSV

EPILOG = f"""ground truth: --clinical-labels-csv (alias --labels-csv) when given; else the release's default
{RELEASE_LABELS_CSV} when it exists in the current directory; else the labeler run on the reference reports. The
console, the JSON ("protocol") and the table say which, with the labeler, and whether the result is comparable to
the paper's protocol.

outputs: --output names the metrics JSON and the markdown table is written beside it with the suffix .md
(--output m.json -> m.json + m.md); an --output ending in .md names the table and the JSON goes beside it with
the suffix .json. Without --output: the release's path when the file name holds step_N
(<dir>/../metrics[_X]/metrics_step_N.json for <dir> = infer[_X]), else <predictions stem>_metrics.json beside
the predictions. An output that is one of the inputs, a directory, or in a folder that cannot be written is
refused before scoring; files are written to a temporary file and renamed.

exit status: 0 metrics written; {USER_ERROR_EXIT} a bad input file or option, told on one line (file or option,
what is wrong, the fix), nothing written; 1 an unexpected error (a bug: the traceback is printed)."""


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the release's ``cal_metrics`` (its flags, plus ours)."""
    p = OneLineParser(
        prog="python -m adaragct.eval.cal_metrics",
        description="Score generated CT reports (BLEU, ROUGE-L, METEOR, CIDEr, clinical "
        "P/R/F1, CRG, optional bootstrap CIs and LLM judge).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bool_flag = argparse.BooleanOptionalAction
    p.add_argument(
        "predictions", help="predictions JSONL (image, generated_text, reference_text) or VLM3D JSON"
    )
    p.add_argument("--output", default=None, help="metrics JSON to write (default: see below)")
    p.add_argument(
        "--clinical-labels-csv",
        "--labels-csv",
        dest="labels_csv",
        default=None,
        help=f"ground-truth labels CSV (CT-RATE or VLM3D layout; release default {RELEASE_LABELS_CSV} when it "
        "exists, else the references are labelled)",
    )
    p.add_argument(
        "--references", default=None, help="file with the references when the predictions have none (VLM3D)"
    )
    p.add_argument(
        "--label-references",
        action="store_true",
        help="use the labeler on the reference text as ground truth even with a labels CSV",
    )
    p.add_argument("--allow-missing", action="store_true", help="drop volumes missing from the labels CSV")
    p.add_argument(
        "--compute-clinical-efficacy",
        action=bool_flag,
        default=True,
        help="label the reports and compute clinical P/R/F1 (release default: on)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="ours",
        help="release: the paper's protocol (RadBERT, the labels CSV, METEOR, the judge with the release's "
        "prompt), refused unless all are given; ours: score with what is given (default)",
    )
    p.add_argument(
        "--bootstrap", type=count, default=0, help="bootstrap resamples for 95%% CIs (0: none; e.g. 1000)"
    )
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    p.add_argument(
        "--labeler",
        choices=("rule", "radbert"),
        default=None,
        help="report labeler (default: radbert when --radbert-checkpoint is given, else rule)",
    )
    p.add_argument(
        "--radbert-checkpoint",
        default=None,
        help="CT-RATE RadBertClassifier.pth (selects the radbert labeler)",
    )
    p.add_argument(
        "--roberta-dir",
        default=None,
        help="local directory of the RoBERTa RadBERT was trained on (config + tokenizer; nothing is downloaded)",
    )
    p.add_argument(
        "--compute-llama-score",
        action=bool_flag,
        default=False,
        help="run the LLM judge (release default: off)",
    )
    p.add_argument(
        "--llama-model-path",
        "--judge-model",
        dest="judge_model",
        default=None,
        help="local causal LM directory for the judge (e.g. Meta-Llama-3-70B-Instruct)",
    )
    p.add_argument("--judge-batch-size", type=int, default=4)
    p.add_argument(
        "--judge-system-prompt-file",
        default=None,
        help="UTF-8 file with the judge's system prompt (the release's llama_score.py text; default: none)",
    )
    p.add_argument(
        "--judge-question-file",
        default=None,
        help="UTF-8 file with the judge's question, with {reference} and {generated} (default: our own rubric, "
        "which is not the paper's: the score is then not comparable to its 7.75)",
    )
    p.add_argument("--judge-max-new-tokens", type=int, default=256, help="judge answer budget")
    p.add_argument(
        "--judge-device-map",
        default=None,
        choices=("auto", "balanced", "balanced_low_0", "sequential"),
        help="spread the judge over every visible GPU (accelerate), e.g. a 70B judge: auto",
    )
    p.add_argument("--judge-dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument(
        "--judge-cache", default=None, help="JSONL of finished judge answers; rerun with it to resume"
    )
    p.add_argument(
        "--compute-green",
        action=bool_flag,
        default=False,
        help="GREEN score (release default: off; see --help)",
    )
    p.add_argument("--green-model-path", default=None, help="GREEN model directory (with --compute-green)")
    p.add_argument(
        "--device",
        default="auto",
        help="device for RadBERT and the judge (release default cuda; auto: cuda when available, else cpu)",
    )
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (said on the console)")
    p.add_argument(
        "--meteor-timeout",
        type=seconds,
        default=METEOR_TIMEOUT_S,
        metavar="SECONDS",
        help="longest wait for one answer of METEOR's Java scorer; past it METEOR is reported as unavailable "
        "(null, with the reason) and the other metrics are written (default %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def default_output(predictions: str | Path) -> Path:
    """The metrics JSON when ``--output`` is omitted: the release's path for ``.../infer[_X]/..step_N..jsonl``
    (``.../metrics[_X]/metrics_step_N.json``), else ``<stem>_metrics.json`` beside the predictions (the release
    refuses such a name; scoring any file needs one)."""
    predictions = Path(predictions)
    step = re.search(r"step_(\d+)", predictions.stem)
    if step is None:
        return predictions.with_name(f"{predictions.stem}_metrics.json")
    folder = predictions.parent.name
    metrics_dir = "metrics" + (folder[len("infer") :] if folder.startswith("infer_") else "")
    return predictions.parent.parent / metrics_dir / f"metrics_step_{int(step.group(1))}.json"


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _labels_csv(args: argparse.Namespace) -> str | None:
    """The labels CSV: the flag, else the release's default path when it exists here, else none."""
    if args.labels_csv is not None:
        return args.labels_csv
    if args.compute_clinical_efficacy and RELEASE_LABELS_CSV.is_file():
        return str(RELEASE_LABELS_CSV)
    return None


def _refusals(args: argparse.Namespace) -> None:
    """Options that cannot work, refused with what to do instead."""
    if args.compute_llama_score and not args.judge_model:
        raise UsageError(
            "--compute-llama-score",
            "needs the judge model, and the release's default (/path/to/Meta-Llama-3-70B-Instruct) is a placeholder",
            "pass --llama-model-path DIR (a local causal LM directory, e.g. Meta-Llama-3-70B-Instruct)",
        )
    if args.compute_green:
        from adaragct.eval.green import green_usage_error

        raise green_usage_error("--compute-green")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad input file or option, told on one line)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from adaragct.eval.report import console_report
    from adaragct.eval.runner import EvalOptions, output_paths, run_evaluation

    try:
        _refusals(args)
        labeler = args.labeler or ("radbert" if args.radbert_checkpoint else "rule")
        output = args.output or default_output(args.predictions)
        opts = EvalOptions(
            predictions=args.predictions,
            output=output,
            labels_csv=_labels_csv(args),
            references=args.references,
            label_references=args.label_references,
            allow_missing=args.allow_missing,
            bootstrap=args.bootstrap,
            seed=args.seed,
            labeler=labeler,
            radbert_checkpoint=args.radbert_checkpoint,
            roberta_dir=args.roberta_dir,
            device=_device(args.device),
            judge_model=args.judge_model if args.compute_llama_score else None,
            judge_batch_size=args.judge_batch_size,
            meteor=not args.no_meteor,
            meteor_timeout_s=args.meteor_timeout,
            compute_clinical=args.compute_clinical_efficacy,
            protocol=args.protocol,
            progress=not args.no_progress,
            judge_options={
                "system_prompt_file": args.judge_system_prompt_file,
                "question_file": args.judge_question_file,
                "max_new_tokens": args.judge_max_new_tokens,
                "device_map": args.judge_device_map,
                "dtype": args.judge_dtype,
                "cache_path": args.judge_cache,
            },
        )
        metrics = run_evaluation(opts)
    except (DataError, UsageError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return USER_ERROR_EXIT
    print("\n".join(console_report(metrics, *output_paths(output))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
