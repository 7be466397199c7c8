"""Hydra app of the evaluate stage: predictions file -> metrics JSON + markdown table (docs/method.md, docs/evaluation.md).

Run (any predictions file, nothing else needed; ground truth from labelling the references):
    python -m adaragct.evaluate predictions=P.jsonl [labels_csv=L] [scoring.bootstrap.num_resamples=1000]
        [scoring.judge.model_path=DIR] [scoring.labeler.name=radbert scoring.labeler.radbert_checkpoint=C
        scoring.labeler.roberta_dir=R] [scoring.protocol=release] [compare_with=P2.jsonl]

How to score is the ``scoring`` node (``conf/scoring/default.yaml``, shared with infer and the demo); what to
score and where to write it are this app's own keys (``conf/evaluate.yaml``).

Outputs land in ``${paths.output_dir}`` (``outputs/evaluate/runs/<time>_<pid>/``). A bad input file or option is told on
one line before anything is scored, exit status 2 (``adaragct.errors.user_errors_exit``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from adaragct import artifacts
from adaragct.apps._app import hydra_app, prologue
from adaragct.errors import DataError, UsageError

log = logging.getLogger(__name__)


def _check_comparison(cfg: DictConfig) -> None:
    """``compare_with`` needs the labels CSV and an existing file; checked before the first file is scored."""
    if cfg.labels_csv is None:
        raise UsageError(
            f"compare_with={cfg.compare_with}",
            "needs labels_csv (the ground truth shared by both files), which is null",
            "pass labels_csv=PATH, or drop compare_with",
        )
    if not Path(cfg.compare_with).is_file():
        raise DataError(
            cfg.compare_with, "compare_with", "does not exist", "pass the second predictions file to compare"
        )


def run(cfg: DictConfig) -> dict:
    """1. build options from the config, 2. check them, 3. score, 4. optionally compare, 5. write outputs."""
    from adaragct.eval.runner import check_options, run_evaluation, scoring_options
    from adaragct.io import write_json

    prologue(cfg, "evaluate")
    opts = scoring_options(
        cfg.scoring,
        cfg.predictions,
        cfg.output.metrics_json,
        labels_csv=cfg.labels_csv,
        references=cfg.references,
        markdown=cfg.output.markdown,
    )
    if cfg.compare_with:
        _check_comparison(cfg)
        check_options(opts, more_outputs=(Path(cfg.output.comparison_json),), more_inputs=(cfg.compare_with,))
    metrics = run_evaluation(opts)
    if cfg.compare_with:
        from adaragct.eval.compare import compare_predictions
        from adaragct.eval.labelers import build_labeler
        from adaragct.formats.tables import read_labels_csv

        labels = read_labels_csv(cfg.labels_csv)
        truth = {vid: row for vid, row in zip(labels.index, labels.to_numpy(), strict=True)}
        labeler = build_labeler(
            opts.labeler, checkpoint=opts.radbert_checkpoint, roberta_dir=opts.roberta_dir, device=opts.device
        )
        comparison = compare_predictions(
            cfg.predictions,
            cfg.compare_with,
            truth,
            labeler,
            num_resamples=max(opts.bootstrap, 1000),
            seed=opts.seed,
        )
        write_json(cfg.output.comparison_json, comparison)
        log.info("wrote %s", cfg.output.comparison_json)
    from adaragct.eval.report import console_report
    from adaragct.eval.runner import output_paths
    from adaragct.tracking import log_evaluate

    log_evaluate(cfg, metrics)  # logger=wandb: into ckpt's train run, else a run of its own

    print("\n".join(console_report(metrics, *output_paths(cfg.output.metrics_json, cfg.output.markdown))))
    if cfg.view:
        from adaragct.apps.show import show

        view = artifacts.beside(cfg.output.metrics_json, "view")
        print(
            f"view: {show(cfg.predictions, view, metrics=cfg.output.metrics_json, labels_csv=cfg.labels_csv)}"
        )
    return metrics


main = hydra_app("evaluate", run)


if __name__ == "__main__":
    main()
