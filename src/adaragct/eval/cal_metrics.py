"""The release's evaluation command, kept so the paper's commands work unchanged (SPEC 7).

Run:
    python -m adaragct.eval.cal_metrics PRED.jsonl --output metrics.json [--labels-csv L] [--bootstrap 1000]
        [--compute-llama-score --judge-model PATH] [--allow-missing] [--labeler rule|radbert ...]

Heavy libraries (torch, transformers) are imported only when a step needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys

from adaragct.errors import DataError


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the release's ``cal_metrics``."""
    p = argparse.ArgumentParser(
        prog="python -m adaragct.eval.cal_metrics",
        description="Score generated CT reports (BLEU, ROUGE-L, METEOR, CIDEr, clinical "
        "P/R/F1, CRG, optional bootstrap CIs and LLM judge).",
    )
    p.add_argument(
        "predictions", help="predictions JSONL (image, generated_text, reference_text) or VLM3D JSON"
    )
    p.add_argument(
        "--output", required=True, help="metrics JSON to write (a .md table is written next to it)"
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
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for 95%% CIs (e.g. 1000)")
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    p.add_argument("--labeler", choices=("rule", "radbert"), default="rule", help="report labeler")
    p.add_argument("--radbert-checkpoint", default=None, help="RadBertClassifier.pth (labeler radbert)")
    p.add_argument("--roberta-dir", default=None, help="local RoBERTa directory (labeler radbert)")
    p.add_argument("--compute-llama-score", action="store_true", help="run the LLM judge")
    p.add_argument("--judge-model", default=None, help="local causal LM directory for the judge")
    p.add_argument("--judge-batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (it needs Java)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input files, with the file, field and fix)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.compute_llama_score and not args.judge_model:
        print(
            "error: --compute-llama-score needs --judge-model PATH (a local causal LM directory)",
            file=sys.stderr,
        )
        return 2
    from adaragct.eval.report import TASK
    from adaragct.eval.runner import EvalOptions, run_evaluation

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
    )
    try:
        metrics = run_evaluation(opts)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{metrics['num_samples']} volumes: clinical F1 {metrics[f'{TASK}/clinical_f1']:.4f}, "
        f"BLEU-4 {metrics[f'{TASK}/bleu_4']:.4f}, ROUGE-L {metrics[f'{TASK}/rouge_l']:.4f} -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
