"""The experiment tracker (wandb, offline by default): what a train run and the infer runs that score its
checkpoints record there.

    python -m adaragct.train experiment=demo phase=base logger=wandb
    python -m adaragct.infer experiment=demo phase=base retrieval=none logger=wandb    # into the same run
    wandb sync outputs/train/demo_tiny_base/wandb/offline-run-*                        # later, to upload

Train: the WandbLogger takes the config's top-level ``tags`` (``conf/logger/wandb.yaml`` asks for them), and
``adaragct.train.callbacks.TrackedRun`` logs the whole resolved config plus the parameter counts (total, trainable, non-trainable)
as the run's hyper-parameters at fit start (the model is built then, in ``configure_model``), and writes
``<checkpoint_dir>/wandb_run.json`` (:data:`RUN_RECORD`: the run's id, project and save_dir). A rerun that
resumes the train run (``adaragct.train.resume``) logs to the same wandb run id.

Infer: :func:`log_infer` finds that record beside the checkpoint it scores (``ckpt`` is ``<checkpoint_dir>/last``
or a ``step-N`` in it) and resumes the run by its id (``wandb.init(id=..., resume="allow")``, in the train
run's save_dir). Offline, wandb writes the resumed part as a second ``offline-run-*-<id>`` folder there; syncing
the folders puts both parts into the one run. It logs ``infer/<retrieval>/<metric>`` (the scalar
``report_generation/*`` metrics), the per-finding table ``infer/<retrieval>/per_finding`` (finding, precision,
recall, f1, support) with its F1 bar chart ``infer/<retrieval>/per_finding_f1``, and its own resolved config
under ``infer/<retrieval>``. A checkpoint without a record (the release's, or a run without wandb) gets a new
run with ``job_type=infer`` instead, with a warning. Report text is patient data: the table
``infer/<retrieval>/reports`` (volume, generated, reference) is logged only with ``logger.log_report_text=true``.

Evaluate (:func:`log_evaluate`): the same under ``<wandb_prefix>/`` (default ``evaluate``), into the run of
``ckpt=<checkpoint>`` when given, else a run of its own with ``job_type=evaluate``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from adaragct.formats.metrics import (
    PREFIX,  # the scalar metrics logged (adaragct.eval.report; overall/ repeats them)
)

log = logging.getLogger(__name__)

RUN_RECORD = "wandb_run.json"  # in a train run's checkpoint_dir: the wandb run its checkpoints belong to
FINDING_COLUMNS = ("finding", "precision", "recall", "f1", "support")


def wandb_node(cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``logger.wandb`` node of a config (``logger=wandb``), or None."""
    node = (cfg.get("logger") or {}).get("wandb")
    return node if node and "_target_" in node else None


def resumed_run(checkpoint_dir: str | Path) -> dict[str, Any]:
    """WandbLogger arguments for a train run that resumes: its recorded run's id (one run, not one per restart)."""
    record = read_run_record(checkpoint_dir)
    return {"id": record["id"], "resume": "allow"} if record is not None else {}


def read_run_record(ckpt: str | Path) -> dict[str, Any] | None:
    """The wandb run recorded for a checkpoint: ``wandb_run.json`` in ``ckpt`` itself or in the checkpoint_dir
    that holds it (``ckpt`` = ``<checkpoint_dir>/last`` or ``step-N``); None when there is none."""
    ckpt = Path(ckpt)
    for directory in (ckpt, ckpt.resolve().parent):
        if (directory / RUN_RECORD).is_file():
            return json.loads((directory / RUN_RECORD).read_text())
    return None


def _finding_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    detailed = metrics.get(f"{PREFIX}clinical_detailed") or {}
    return [[name, *(values.get(c) for c in FINDING_COLUMNS[1:])] for name, values in detailed.items()]


def _scalars(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    out = {f"{prefix}/num_samples": metrics.get("num_samples")}
    for key, value in metrics.items():
        if key.startswith(PREFIX) and isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}/{key.removeprefix(PREFIX)}"] = value
    return {k: v for k, v in out.items() if v is not None}


def log_infer(cfg: DictConfig, metrics: Mapping[str, Any], retrieval: str) -> str | None:
    """With ``logger=wandb``: log an infer run's metrics (and, if asked, its reports) to the wandb run of the
    checkpoint it scored (the module docstring); returns that run's id, or None without ``logger=wandb``."""
    return log_scores(cfg, metrics, f"infer/{retrieval}", cfg.ckpt, "infer", f"per-finding F1 ({retrieval})")


def log_evaluate(cfg: DictConfig, metrics: Mapping[str, Any]) -> str | None:
    """With ``logger=wandb``: log an evaluate run's metrics under ``<wandb_prefix>/`` to the wandb run of ``ckpt``
    when it names a checkpoint of a train run logged with wandb, else to a run of its own (``job_type=evaluate``:
    evaluate scores any generator's file, which need not come from a checkpoint of ours)."""
    prefix = cfg.get("wandb_prefix") or "evaluate"
    return log_scores(cfg, metrics, prefix, cfg.get("ckpt"), "evaluate", f"per-finding F1 ({prefix})")


def _where(node: Mapping[str, Any], ckpt: str | Path | None, job_type: str, resolved: dict) -> dict[str, Any]:
    """``wandb.init`` arguments: the recorded run of ``ckpt`` (resumed), else a new run of ``job_type``."""
    record = read_run_record(ckpt) if ckpt else None
    if record is not None:
        return {
            "id": record["id"],
            "resume": "allow",
            "project": record["project"],
            "dir": record["save_dir"],
        }
    if ckpt:
        log.warning(
            "ckpt %s: no %s beside it (not a train run logged with logger=wandb); logging to a new wandb run",
            ckpt,
            RUN_RECORD,
        )
    where = {"project": node.get("project"), "dir": node.get("save_dir"), "job_type": job_type}
    return where | {"group": node.get("group"), "tags": list(node.get("tags") or []), "config": resolved}


def log_scores(
    cfg: DictConfig,
    metrics: Mapping[str, Any],
    prefix: str,
    ckpt: str | Path | None,
    job_type: str,
    title: str,
) -> str | None:
    """Log ``metrics`` (an evaluation's JSON) under ``prefix/``: the scalars, the per-finding table and its F1 bar
    chart, the run's resolved config under ``prefix``, and the reports table only with
    ``logger.log_report_text=true``; into ``ckpt``'s recorded train run, else a new run. None without
    ``logger=wandb``."""
    node = wandb_node(cfg)
    if node is None:
        return None
    import wandb

    resolved = OmegaConf.to_container(cfg, resolve=True)
    where = _where(node, ckpt, job_type, resolved)
    Path(where["dir"]).mkdir(parents=True, exist_ok=True)
    run = wandb.init(mode="offline" if node.get("offline", True) else "online", **where)
    try:
        run.config.update({prefix: resolved}, allow_val_change=True)
        findings = wandb.Table(columns=list(FINDING_COLUMNS), data=_finding_rows(metrics))
        logged = {
            **_scalars(metrics, prefix),
            f"{prefix}/per_finding": findings,
            f"{prefix}/per_finding_f1": wandb.plot.bar(findings, "finding", "f1", title=title),
        }
        if (cfg.get("logger") or {}).get("log_report_text", False):
            logged[f"{prefix}/reports"] = _reports_table(cfg.predictions)
        run.log(logged)
        log.info("wandb run %s: logged %s (%s)", run.id, prefix, run.dir)
        return run.id
    finally:
        run.finish()


def _reports_table(predictions: str | Path) -> Any:
    """volume, generated, reference of every prediction (patient data: only with log_report_text=true)."""
    import wandb

    from adaragct.formats.predictions import read_predictions

    preds = read_predictions(predictions)
    references = preds.references or [None] * len(preds)
    rows = [list(row) for row in zip(preds.ids, preds.predictions, references, strict=True)]
    return wandb.Table(columns=["volume", "generated", "reference"], data=rows)
