"""The release's evaluation command, kept so the paper's commands work unchanged (SPEC 7).

Run:
    python -m adaragct.eval.cal_metrics PRED.jsonl --output metrics.json [--labels-csv L] [--bootstrap 1000]
        [--compute-llama-score --judge-model PATH] [--allow-missing] [--labeler rule|radbert ...]

Heavy libraries (torch, transformers) are imported only when a step needs them, so ``--help`` is instant.
Options and output paths are checked before anything is scored (see the exit statuses in ``--help``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from adaragct.errors import USER_ERROR_EXIT, DataError, UsageError, one_line
from adaragct.eval.meteor import METEOR_TIMEOUT_S

EPILOG = f"""outputs: --output names the metrics JSON and the markdown table is written beside it with the suffix
.md (--output m.json -> m.json + m.md); an --output ending in .md names the table and the JSON goes beside it
with the suffix .json (--output m.md -> m.json + m.md). An output that is one of the inputs, a directory, or in
a folder that cannot be written is refused before scoring; files are written to a temporary file and renamed.

exit status: 0 metrics written; {USER_ERROR_EXIT} a bad input file or option, told on one line (file or option,
what is wrong, the fix), nothing written; 1 an unexpected error (a bug: the traceback is printed)."""


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (0 for none, or e.g. 1000)")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error on one line (argparse's default prints the whole 17-line usage first)."""
        self.exit(USER_ERROR_EXIT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the release's ``cal_metrics``."""
    p = _Parser(
        prog="python -m adaragct.eval.cal_metrics",
        description="Score generated CT reports (BLEU, ROUGE-L, METEOR, CIDEr, clinical "
        "P/R/F1, CRG, optional bootstrap CIs and LLM judge).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "predictions", help="predictions JSONL (image, generated_text, reference_text) or VLM3D JSON"
    )
    p.add_argument(
        "--output",
        required=True,
        help="metrics JSON to write; the .md table goes beside it (an --output ending in .md names the table "
        "and the JSON goes beside it, see below)",
    )
    p.add_argument(
        "--labels-csv", default=None, help="ground-truth labels CSV; without it the references are labelled"
    )
    p.add_argument(
        "--references", default=None, help="file with the references when the predictions have none"
    )
    p.add_argument(
        "--label-references",
        action="store_true",
        help="use the labeler on the reference text as ground truth even with --labels-csv",
    )
    p.add_argument("--allow-missing", action="store_true", help="drop volumes missing from the labels CSV")
    p.add_argument(
        "--bootstrap", type=_count, default=0, help="bootstrap resamples for 95%% CIs (0: none; e.g. 1000)"
    )
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    p.add_argument("--labeler", choices=("rule", "radbert"), default="rule", help="report labeler")
    p.add_argument("--radbert-checkpoint", default=None, help="RadBertClassifier.pth (labeler radbert)")
    p.add_argument("--roberta-dir", default=None, help="local RoBERTa directory (labeler radbert)")
    p.add_argument("--compute-llama-score", action="store_true", help="run the LLM judge")
    p.add_argument("--judge-model", default=None, help="local causal LM directory for the judge")
    p.add_argument("--judge-batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    p.add_argument(
        "--meteor-timeout",
        type=_seconds,
        default=METEOR_TIMEOUT_S,
        metavar="SECONDS",
        help="longest wait for one answer of METEOR's Java scorer; past it METEOR is reported as unavailable "
        "(null, with the reason) and the other metrics are written (default %(default)s)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a bad input file or option, told on one line)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.compute_llama_score and not args.judge_model:
        print(
            "error: --compute-llama-score needs --judge-model PATH (a local causal LM directory)",
            file=sys.stderr,
        )
        return USER_ERROR_EXIT
    from adaragct.eval.report import TASK
    from adaragct.eval.runner import EvalOptions, output_paths, run_evaluation

    opts = EvalOptions(
        predictions=args.predictions,
        output=args.output,
        labels_csv=args.labels_csv,
        references=args.references,
        label_references=args.label_references,
        allow_missing=args.allow_missing,
        bootstrap=args.bootstrap,
        seed=args.seed,
        labeler=args.labeler,
        radbert_checkpoint=args.radbert_checkpoint,
        roberta_dir=args.roberta_dir,
        device=args.device,
        judge_model=args.judge_model if args.compute_llama_score else None,
        judge_batch_size=args.judge_batch_size,
        meteor=not args.no_meteor,
        meteor_timeout_s=args.meteor_timeout,
    )
    try:
        metrics = run_evaluation(opts)
    except (DataError, UsageError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return USER_ERROR_EXIT
    json_path, md_path = output_paths(args.output)
    print(
        f"{metrics['num_samples']} volumes: clinical F1 {metrics[f'{TASK}/clinical_f1']:.4f}, "
        f"BLEU-4 {metrics[f'{TASK}/bleu_4']:.4f}, ROUGE-L {metrics[f'{TASK}/rouge_l']:.4f} -> {json_path}, "
        f"{md_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
