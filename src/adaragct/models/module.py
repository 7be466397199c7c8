"""LightningModule for phase=base and phase=rag (docs/method.md#model-and-training), plus the warmup + cosine schedule.

The model is built in ``configure_model`` so that FSDP/DeepSpeed can shard it as it is created. Only the
trainable state (LoRA, projector when trained, new-token rows) goes into Lightning's ``.ckpt`` files: the base
LLM is rebuilt from its builder on resume, never pickled. ``save_hyperparameters`` keeps the plain config dicts
only (the ones the specs were read from; the tokenizer and the optimizer and scheduler factories are runtime
objects).

    module = ReportGenerationModule(
        ModelSpec.from_config(cfg.model), PhaseSpec.from_config(cfg.phase), tokenizer,
        optimizer=instantiate(cfg.phase.optimizer), scheduler=instantiate(cfg.phase.scheduler),
    )
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule

from adaragct.models.checkpoint import unwrapped_name
from adaragct.models.loading import build_phase_model
from adaragct.models.loss import report_loss
from adaragct.models.specs import ModelSpec, PhaseSpec
from adaragct.models.visual_gain import batch_gains, gain_probes, row_nll
from adaragct.models.vlm import count_parameters

log = logging.getLogger(__name__)


DEFAULT_VISUAL_GAIN = {"enabled": True, "per_slot": False, "warn_after_steps": 500, "warn_below": 0.001}


def trainable_names(module: torch.nn.Module) -> set[str]:
    """Names of ``module``'s trainable parameters as its state dict spells them, under FSDP wrapping too."""
    return {unwrapped_name(name) for name, param in module.named_parameters() if param.requires_grad}


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR factor at optimizer step ``step`` (0-based): linear warmup, then cosine down to ``min_lr_ratio``.

    Step ``warmup_steps - 1`` is the first at full LR and the last optimizer step (``total_steps - 1``) ends
    exactly at ``min_lr_ratio``: the schedule finishes within the run (the release's did not).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`warmup_cosine` over ``total_steps`` optimizer steps: ``conf/phase/*.yaml: scheduler`` is a
    ``_partial_`` node of it (warmup, floor), completed with the optimizer and the run's length at fit time.

    A warmup as long as the run (debug runs of a few steps with a paper config) is shortened to a tenth of the run,
    with a warning.
    """
    warmup = int(warmup_steps)
    if warmup >= total_steps:
        log.warning(
            "conf/phase: scheduler.warmup_steps=%d >= %d optimizer steps of this run; using %d "
            "(fix: lower phase.scheduler.warmup_steps or raise trainer.max_steps)",
            warmup,
            total_steps,
            total_steps // 10,
        )
        warmup = total_steps // 10
    floor = float(min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup, total_steps, floor)
    )


class ReportGenerationModule(LightningModule):
    """Trains a ``ReportModel`` on report batches (``input_ids``, ``attention_mask``, ``labels``, ``visual``).

    Args:
        model_spec: the model (:class:`~adaragct.models.specs.ModelSpec`; a ``cfg.model`` node is read into one).
        phase_spec: the phase (:class:`~adaragct.models.specs.PhaseSpec`: lora, rag_loss_weight, ...; a
            ``cfg.phase`` node is read into one).
        tokenizer: the tokenizer (runtime object, not a hyper-parameter).
        optimizer: ``partial(torch.optim.AdamW, lr=...)`` from ``cfg.phase.optimizer``.
        scheduler: ``partial(warmup_cosine_schedule, warmup_steps=..., min_lr_ratio=...)`` from
            ``cfg.phase.scheduler``; called with the optimizer and ``total_steps``.
        init_from: phase rag: the phase=base checkpoint to merge.
        device: ``"meta"`` builds without weights (size checks only).
        findings: a finding classifier fitted for this run (:mod:`adaragct.models.findings`), else inherited.
        needs_findings: the prompt names findings (``prompt.findings_sentence``): the model must have a classifier.
        allow_base_mismatch: build on ``init_from``/``projector_from`` even when it was trained on other base
            weights (a warning instead of an error; :mod:`adaragct.models.provenance`).
        visual_gain: ``cfg.visual_gain`` (``enabled``, ``per_slot``, ``warn_after_steps``, ``warn_below``): at every
            validation, log ``val/visual_gain`` (loss with another patient's embeddings minus loss with the
            volume's own, nats per report token; :mod:`adaragct.models.visual_gain`) and warn when it stays ~0.
    """

    def __init__(
        self,
        model_spec: ModelSpec | Mapping[str, Any],
        phase_spec: PhaseSpec | Mapping[str, Any],
        tokenizer: Any,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler],
        init_from: str | None = None,
        device: str | None = None,
        visual_gain: Mapping[str, Any] | None = None,
        findings: Any = None,
        needs_findings: bool = False,
        allow_base_mismatch: bool = False,
    ) -> None:
        super().__init__()
        self.visual_gain = {**DEFAULT_VISUAL_GAIN, **dict(visual_gain or {})}
        self.model_spec, self.phase_spec = (
            ModelSpec.from_config(model_spec),
            PhaseSpec.from_config(phase_spec),
        )
        self.save_hyperparameters(
            {
                "model": self.model_spec.config(),
                "phase": self.phase_spec.config(),
                "init_from": init_from,
                "visual_gain": self.visual_gain,
            }
        )
        self.tokenizer = tokenizer
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.init_from, self.build_device = init_from, device
        self.findings, self.needs_findings = findings, needs_findings
        self.allow_base_mismatch = allow_base_mismatch
        self.model = None
        self.strict_loading = False  # .ckpt files hold the trainable state only
        self._tick: float | None = None
        self._gain_sum, self._gain_tokens = 0.0, 0

    def configure_model(self) -> None:
        if self.model is None:
            self.model = build_phase_model(
                self.model_spec,
                self.phase_spec,
                self.tokenizer,
                device=self.build_device,
                init_from=self.init_from,
                projector_from=self.phase_spec.projector_from,
                findings=self.findings,
                allow_base_mismatch=self.allow_base_mismatch,
            )
            if self.needs_findings and self.model.findings is None:
                raise ValueError(
                    "prompt.findings_sentence is set but neither phase.init_from nor phase.projector_from carries "
                    "a finding classifier (findings.safetensors); fix: train the earlier stage with the same prompt"
                )

    def _step(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        logits = self.model(batch["input_ids"], batch["attention_mask"], batch["visual"])
        loss, stats = report_loss(
            logits,
            batch["labels"],
            self.model.rag_token_id,
            float(self.phase_spec.rag_loss_weight),
        )
        return loss, stats, logits

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss, stats, _ = self._step(batch)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if not torch.isnan(stats["rag_token_acc"]):
            self.log("train/rag_token_acc", stats["rag_token_acc"], batch_size=size)
        now = time.perf_counter()
        if self._tick is not None:
            self.log(
                "train/tokens_per_s",
                batch["attention_mask"].sum().float() / (now - self._tick),
                batch_size=size,
            )
        self._tick = now
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        loss, stats, logits = self._step(batch)
        size = batch["input_ids"].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        if not torch.isnan(stats["rag_token_acc"]):
            self.log("val/rag_token_acc", stats["rag_token_acc"], batch_size=size, sync_dist=True)
        if self.visual_gain["enabled"] and "partner" in batch:
            self._log_visual_gain(batch, logits)

    def _log_visual_gain(self, batch: Mapping[str, Any], logits: torch.Tensor) -> None:
        """``val/visual_gain`` (and ``val/visual_gain_<slot>``): token-weighted over the validation epoch, as
        Lightning averages a logged value by its ``batch_size``, here the batch's report tokens."""
        own, tokens = row_nll(logits, batch["labels"])
        n = int(tokens.sum())
        if n == 0:
            return
        probes = gain_probes(list(self.model.projector), bool(self.visual_gain["per_slot"]))
        for suffix, diff in batch_gains(self.model, batch, own, probes).items():
            self.log(f"val/visual_gain{suffix}", diff.sum() / n, batch_size=n, sync_dist=True)
            if not suffix:
                self._gain_sum, self._gain_tokens = self._gain_sum + float(diff.sum()), self._gain_tokens + n

    def on_validation_epoch_start(self) -> None:
        self._gain_sum, self._gain_tokens = 0.0, 0

    def on_validation_epoch_end(self) -> None:
        """Warn when the model still does not read its image after ``visual_gain.warn_after_steps`` steps."""
        settings = self.visual_gain
        if self.trainer.sanity_checking or not self._gain_tokens:
            return
        gain = self._gain_sum / self._gain_tokens
        if self.global_step >= int(settings["warn_after_steps"]) and gain < float(settings["warn_below"]):
            log.warning(
                "val/visual_gain = %.5f nats/token after %d steps (< %s): the model is not reading its image "
                "(its loss is the same with another patient's embeddings); its reports will not depend on "
                "the volume (docs/visual_dependence.md says what to try)",
                gain,
                self.global_step,
                settings["warn_below"],
            )

    def on_fit_start(self) -> None:
        trainable, total = count_parameters(self.model)
        for logger in self.loggers:
            logger.log_metrics({"params/trainable": trainable, "params/total": total}, step=0)
        self.print(f"parameters: {trainable:,} trainable / {total:,} total ({100 * trainable / total:.2f}%)")

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer over trainable parameters only; the schedule counts optimizer steps.

        PEFT's trainable-token tensors hold the new rows' full values (not deltas), so weight decay would pull
        the embeddings of ``[RAG]`` and the placeholders towards zero: they and biases get no decay.
        """
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        no_decay = [p for n, p in named if "trainable_tokens" in n or n.endswith(".bias")]
        decay = [p for n, p in named if not ("trainable_tokens" in n or n.endswith(".bias"))]
        optimizer = self.optimizer_factory([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
        scheduler = self.scheduler_factory(
            optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only trainable tensors in Lightning's ``.ckpt`` (resume state), never the frozen base."""
        names = {f"model.{n}" for n in trainable_names(self.model)}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in names}
