"""Writes checkpoints of trainable state (``adaragct.models.checkpoint``) during and at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_only

from adaragct.models.checkpoint import save_checkpoint


class TrainableCheckpoint(Callback):
    """Every ``every_n_steps`` optimizer steps and at the end: ``dirpath/step-NNNNNN`` + ``dirpath/last``.

    Args:
        dirpath: the run's checkpoint directory.
        tokenizer: saved beside the weights (inference must tokenise exactly as training did).
        config_yaml: the resolved config, saved as ``config.yaml``.
        every_n_steps: optimizer steps between checkpoints (``None``: only at the end).
    """

    def __init__(
        self, dirpath: str | Path, tokenizer: Any, config_yaml: str, every_n_steps: int | None = None
    ) -> None:
        self.dirpath, self.tokenizer, self.config_yaml, self.every = (
            Path(dirpath),
            tokenizer,
            config_yaml,
            every_n_steps,
        )
        self.saved_step = -1

    @rank_zero_only
    def _save(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step == self.saved_step or step == 0:
            return
        save_checkpoint(self.dirpath, f"step-{step:06d}", pl_module.model, self.tokenizer, self.config_yaml)
        self.saved_step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self._save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module)
