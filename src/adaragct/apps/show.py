"""Show what a run wrote, and why: one HTML page per predictions file (no server, no network).

    adaragct-show outputs/demo/rag_adaptive/predictions.jsonl \\
        --metrics outputs/demo/rag_adaptive/metrics.json \\
        --labels-csv data/demo/ctrate/multi_abnormality_labels/valid_predicted_labels.csv \\
        --output outputs/demo/rag_adaptive/view.html
    python -m adaragct.show PRED.jsonl            # writes view.html beside PRED.jsonl

The page lists the volumes (search; filter by finding and result, by number of retrievals) and shows, per volume,
the generated and reference reports side by side, a mark at the start of each sentence rewritten after a ``[RAG]``,
the probe, organ, retrieved sentences (score, sentence id, training volume) and draft acceptance of each retrieval,
and the 18 findings of both reports (the rule labeler) against the ground truth (``--labels-csv``; without it,
the reference report's labels). Traces written before the generator recorded ``char_offset`` are placed with
``--tokenizer CKPT`` exactly, else estimated (``adaragct.viewer.positions``).

exit status: 0 page written; 2 a bad input file or option, told on one line (nothing written); 1 a bug.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from adaragct import artifacts
from adaragct.cli import OneLineParser
from adaragct.errors import USER_ERROR_EXIT, DataError, UsageError, one_line


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="adaragct-show",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("predictions", help="predictions JSONL written by adaragct-infer (or any scored layout)")
    p.add_argument("--metrics", default=None, help="the run's metrics JSON, shown in the page's header")
    p.add_argument(
        "--labels-csv", default=None, help="ground-truth labels of the 18 findings (CT-RATE layout)"
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="checkpoint folder that wrote the predictions: places [RAG] exactly in traces without char_offset",
    )
    p.add_argument(
        "--output", default=None, help=f"HTML file to write (default: {artifacts.BESIDE['view']} beside PRED)"
    )
    return p


def show(
    predictions: str | Path,
    output: str | Path | None = None,
    *,
    metrics: str | Path | None = None,
    labels_csv: str | Path | None = None,
    tokenizer: str | None = None,
) -> Path:
    """Write the viewer page of ``predictions`` (default ``view.html`` beside it); returns its path.

    The call for a stage that has just written a predictions file (infer, evaluate, the demo)."""
    from adaragct.io import check_output_file
    from adaragct.viewer import build_view, write_view

    output = Path(artifacts.beside(predictions, "view") if output is None else output)
    check_output_file(output, inputs=(predictions, metrics, labels_csv), field="--output")
    return write_view(
        build_view(predictions, metrics=metrics, labels_csv=labels_csv, tokenizer=tokenizer), output
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point (``adaragct-show``); returns the exit status."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        path = show(
            args.predictions,
            args.output,
            metrics=args.metrics,
            labels_csv=args.labels_csv,
            tokenizer=args.tokenizer,
        )
    except (DataError, UsageError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return USER_ERROR_EXIT
    size = path.stat().st_size / 1e6
    print(f"viewer: {path} ({size:.1f} MB, {time.perf_counter() - start:.1f} s); open it in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
