"""Hydra app of the evaluate stage: predictions file -> metrics JSON + markdown table (docs/method.md, docs/evaluation.md).

Run (any predictions file, nothing else needed; ground truth from labelling the references):
    python -m adaragct.evaluate predictions=P.jsonl [labels_csv=L] [bootstrap.num_resamples=1000]
        [judge.model_path=DIR] [labeler.name=radbert labeler.radbert_checkpoint=C labeler.roberta_dir=R]
        [protocol=release] [compare_with=P2.jsonl]

Outputs land in ``${paths.output_dir}`` (``outputs/evaluate/runs/<time>_<pid>/``). A bad input file or option is told on
one line before anything is scored, exit status 2 (``adaragct.errors.user_errors_exit``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from adaragct import CONF_DIR, artifacts
from adaragct.errors import DataError, UsageError, user_errors_exit

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
    from adaragct.eval.runner import EvalOptions, check_options, run_evaluation
    from adaragct.io import write_json

    opts = EvalOptions(
        predictions=cfg.predictions,
        output=cfg.output.metrics_json,
        markdown=cfg.output.markdown,
        labels_csv=cfg.labels_csv,
        references=cfg.references,
        label_references=cfg.label_references,
        allow_missing=cfg.allow_missing,
        bootstrap=cfg.bootstrap.num_resamples,
        seed=cfg.bootstrap.seed,
        labeler=cfg.labeler.name,
        radbert_checkpoint=cfg.labeler.radbert_checkpoint,
        roberta_dir=cfg.labeler.roberta_dir,
        device=cfg.labeler.device,
        judge_model=cfg.judge.model_path,
        judge_batch_size=cfg.judge.batch_size,
        meteor=cfg.meteor,
        meteor_timeout_s=cfg.meteor_timeout_s,
        compute_clinical=cfg.compute_clinical,
        protocol=cfg.protocol,
        progress=cfg.progress,
        judge_options={k: v for k, v in cfg.judge.items() if k not in ("model_path", "batch_size")},
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
            cfg.labeler.name,
            checkpoint=cfg.labeler.radbert_checkpoint,
            roberta_dir=cfg.labeler.roberta_dir,
            device=cfg.labeler.device,
        )
        comparison = compare_predictions(
            cfg.predictions,
            cfg.compare_with,
            truth,
            labeler,
            num_resamples=max(cfg.bootstrap.num_resamples, 1000),
            seed=cfg.bootstrap.seed,
        )
        write_json(cfg.output.comparison_json, comparison)
        log.info("wrote %s", cfg.output.comparison_json)
    from adaragct.eval.report import console_report
    from adaragct.eval.runner import output_paths
    from adaragct.tracking import log_evaluate

    log_evaluate(cfg, metrics)  # logger=wandb: into ckpt's train run, else a run of its own

    print("\n".join(console_report(metrics, *output_paths(cfg.output.metrics_json, cfg.output.markdown))))
    if cfg.view:
        from adaragct.show import show

        view = artifacts.beside(cfg.output.metrics_json, "view")
        print(
            f"view: {show(cfg.predictions, view, metrics=cfg.output.metrics_json, labels_csv=cfg.labels_csv)}"
        )
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> dict:
    """Console entry point (``adaragct-evaluate``)."""
    with user_errors_exit():
        return run(cfg)


if __name__ == "__main__":
    main()
