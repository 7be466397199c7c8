"""Writes checkpoints of trainable state (``adaragct.models.checkpoint``) during and at the end of training.

The state is gathered through the strategy (``strategy.lightning_module_state_dict()``) on every rank, then
written by rank 0. Under DDP or one device that is each rank's own copy. Under ``strategy=fsdp`` each rank holds
a shard only, and the gather is a collective: Lightning's FSDP strategy assembles the full state dict on rank 0
(on the CPU; the other ranks get an empty one), the same gather its own resume checkpoint makes at the same steps.
Only the checkpoint's tensors are kept from it (trainable parameters + the projector).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

from adaragct.artifacts import BEST
from adaragct.io import write_json
from adaragct.models.checkpoint import point, save_checkpoint
from adaragct.models.module import trainable_names
from adaragct.tracking import RUN_RECORD

log = logging.getLogger(__name__)


def checkpoint_state(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint of ours, keyed by ``ReportModel`` names, from the LightningModule's full state
    dict (keys ``model.<name>``): the trainable parameters and the projector (frozen in phase rag, still saved)."""
    keep = trainable_names(model)
    mine = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return {k: v for k, v in mine.items() if k in keep or k.startswith("projector.")}


class TrainableCheckpoint(Callback):
    """Every ``every_n_steps`` optimizer steps and at the end: ``dirpath/step-NNNNNN`` + ``dirpath/last``; with
    ``monitor``, also ``dirpath/best`` -> the checkpoint of the validation with the best value of that metric so
    far, and ``dirpath/best.json`` (step, metric, value).

    Args:
        dirpath: the run's checkpoint directory.
        tokenizer: saved beside the weights (inference must tokenise exactly as training did).
        config_yaml: the resolved config, saved as ``config.yaml``.
        every_n_steps: optimizer steps between checkpoints (``None``: only at the end).
        monitor: a logged validation metric (``val/clin_f1``: :mod:`adaragct.train.clinical_validation`); ``None``:
            no ``best``.
        mode: ``max`` or ``min``: which values of ``monitor`` are better.
    """

    def __init__(
        self,
        dirpath: str | Path,
        tokenizer: Any,
        config_yaml: str,
        every_n_steps: int | None = None,
        monitor: str | None = None,
        mode: str = "max",
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"best_checkpoint.mode must be 'max' or 'min', got {mode!r}")
        self.dirpath, self.tokenizer, self.config_yaml, self.every = (
            Path(dirpath),
            tokenizer,
            config_yaml,
            every_n_steps,
        )
        self.monitor, self.mode = monitor, mode
        self.saved_step = -1
        self.best: dict[str, Any] | None = None  # {"step", "monitor", "value"} of ``best`` (checkpointed)
        self._warned = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")

    def _save(self, trainer, pl_module) -> None:
        """Called on every rank (the gather is a collective under FSDP); rank 0 writes."""
        step = trainer.global_step
        if step == self.saved_step or step == 0:
            return
        state = trainer.strategy.lightning_module_state_dict()
        if trainer.is_global_zero:
            tensors = checkpoint_state(state, pl_module.model)
            save_checkpoint(
                self.dirpath, f"step-{step:06d}", pl_module.model, self.tokenizer, self.config_yaml, tensors
            )
        self.saved_step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self._save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        """Point ``best`` at this step's checkpoint (written now if it is not yet) when ``monitor`` improved."""
        if trainer.sanity_checking or not self.monitor or trainer.global_step == 0:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or math.isnan(float(value)):
            if not self._warned:
                log.warning(
                    "best_checkpoint.monitor=%s was not logged at this validation (logged: %s): no `best` "
                    "checkpoint (callbacks=none drops val/clin_f1; set best_checkpoint.monitor=val/loss "
                    "best_checkpoint.mode=min, or null)",
                    self.monitor,
                    sorted(k for k in trainer.callback_metrics if k.startswith("val/")),
                )
                self._warned = True
            return
        value = float(value)
        if self.best is not None and not (
            value > self.best["value"] if self.mode == "max" else value < self.best["value"]
        ):
            return
        self._save(trainer, pl_module)
        self.best = {"step": trainer.global_step, "monitor": self.monitor, "value": value}
        if trainer.is_global_zero:
            name = f"step-{trainer.global_step:06d}"
            write_json(self.dirpath / "best.json", {**self.best, "checkpoint": name})
            point(self.dirpath, BEST, name)
            log.info(
                "best %s = %.4f at step %d -> %s",
                self.monitor,
                value,
                trainer.global_step,
                self.dirpath / BEST,
            )


class TrackedRun(Callback):
    """At fit start, for each WandbLogger: the resolved config + parameter counts as hyper-parameters, and
    (rank 0) the run's id in ``<checkpoint_dir>/wandb_run.json`` for infer to find.

    Args:
        checkpoint_dir: the train run's checkpoint directory.
        config: the resolved run config (``OmegaConf.to_container(cfg, resolve=True)``).
    """

    def __init__(self, checkpoint_dir: str | Path, config: dict[str, Any]) -> None:
        self.checkpoint_dir, self.config = Path(checkpoint_dir), config

    def on_fit_start(self, trainer, pl_module) -> None:
        from lightning.pytorch.loggers import WandbLogger

        from adaragct.models.vlm import count_parameters

        trainable, total = count_parameters(pl_module.model)
        counts = {"total": total, "trainable": trainable, "non_trainable": total - trainable}
        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            logger.log_hyperparams({**self.config, "model/params": counts})
            if trainer.is_global_zero:
                run = logger.experiment
                record = {
                    "id": run.id,
                    "project": run.project,
                    "save_dir": str(Path(logger.save_dir).resolve()),
                }
                write_json(self.checkpoint_dir / RUN_RECORD, record)
                log.info(
                    "wandb run %s (%s) recorded in %s", run.id, run.dir, self.checkpoint_dir / RUN_RECORD
                )


def finish_runs(loggers: list[Any]) -> None:
    """Finish the wandb run of each WandbLogger (its files are complete then; a later infer may resume it)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
