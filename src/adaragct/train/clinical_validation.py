"""Clinical metrics while training: ``val/clin_f1`` and ``val/bleu4`` of reports generated during validation.

The validation loss says how well the model predicts the reference's tokens, not whether its own reports name the
right findings: a checkpoint chosen by loss is not the one with the best clinical F1. This callback, every
``every_n_validations`` validations, generates a report for each of a fixed subset of the validation volumes (the
first ``num_volumes`` in the datamodule's order: the same volumes at every validation and in every run) and logs

- ``val/clin_f1``: the support-weighted F1 of the 18 findings (:class:`~adaragct.eval.torchmetrics_metrics.ClinicalF1`,
  the generated reports labelled by the rule labeler; the truth from ``data.train_labels_csv`` when set, else the
  same labeler on the reference reports, as ``evaluate`` does without a labels CSV);
- ``val/bleu4``: pycocoevalcap's corpus BLEU-4 (:class:`~adaragct.eval.torchmetrics_metrics.CocoBleu4`).

and, with ``reports_dir``, writes the reports as ``<reports_dir>/step-NNNNNN.jsonl`` in the predictions format,
so ``adaragct-evaluate predictions=...`` and ``adaragct-show`` read what the model wrote at that validation.

Both are torchmetrics objects: under DDP each rank decodes its share of the subset and ``compute`` sums the counts
over ranks, so the value equals scoring the whole subset at once. Decoding is greedy and plain (no retrieval: the
index's retriever is an inference-time object; a ``[RAG]`` is suppressed as ``generation.ignored_rag=suppress`` does),
so in phase rag the figure is the model's report without retrieval; ``infer`` measures the adaptive loop.
Generation draws no random numbers, and it runs inside :func:`torch.random.fork_rng` besides, so training with this
callback gives the same weights as training without it.

Under a sharded strategy (fsdp, deepspeed) a rank holds part of the weights and every forward is a collective, but
ranks decode reports of different lengths: the callback warns once and logs nothing there rather than hang.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback

log = logging.getLogger(__name__)


class ClinicalValidation(Callback):
    """Generate for a fixed validation subset every ``every_n_validations`` validations; log clinical F1 and BLEU-4.

    Args:
        num_volumes: the first this many validation volumes (all of them when larger than the split, or null).
        every_n_validations: run at every n-th validation (1: each; sanity checks do not count).
        batch_size: rows decoded together.
        max_new_tokens: the longest report, in tokens (``conf/infer.yaml``'s 600 by default).
        repetition_penalty: as ``generation.repetition_penalty`` of ``conf/infer.yaml``.
        reports_dir: where each validation's reports go (``step-NNNNNN.jsonl``, written by rank 0 with every
            rank's reports, atomically); null: not written.
    """

    def __init__(
        self,
        num_volumes: int | None = 32,
        every_n_validations: int = 1,
        batch_size: int = 16,
        max_new_tokens: int = 600,
        repetition_penalty: float = 1.2,
        reports_dir: str | None = None,
    ) -> None:
        if num_volumes is not None and int(num_volumes) < 1:
            raise ValueError(
                f"callbacks.clinical_metrics.num_volumes must be at least 1 or null, got {num_volumes}"
            )
        if int(every_n_validations) < 1 or int(batch_size) < 1 or int(max_new_tokens) < 1:
            raise ValueError(
                "callbacks.clinical_metrics: every_n_validations, batch_size and max_new_tokens must be at least 1, "
                f"got {every_n_validations}, {batch_size}, {max_new_tokens}"
            )
        self.num_volumes = None if num_volumes is None else int(num_volumes)
        self.every, self.batch_size = int(every_n_validations), int(batch_size)
        self.max_new_tokens, self.repetition_penalty = int(max_new_tokens), float(repetition_penalty)
        self.reports_dir = Path(reports_dir) if reports_dir else None
        self.validations = 0  # non-sanity validations seen (checkpointed: a resumed run keeps the rhythm)
        self._warned = False

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))

    def _sharded(self, trainer) -> bool:
        from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

        if not isinstance(trainer.strategy, FSDPStrategy | DeepSpeedStrategy):
            return False
        if not self._warned:
            log.warning(
                "callbacks.clinical_metrics: val/clin_f1 and val/bleu4 are not computed under strategy=%s (each "
                "rank holds a shard of the weights and reports differ in length; decoding would hang): score "
                "checkpoints with infer + evaluate, or train with strategy=ddp",
                type(trainer.strategy).__name__,
            )
            self._warned = True
        return True

    def _subset(self, trainer) -> list[Any]:
        volumes = list(trainer.datamodule.val_set.volumes)
        return volumes[: self.num_volumes] if self.num_volumes else volumes

    def _truth(self, trainer, volumes: list[Any]) -> np.ndarray:
        """(n, 18) ground truth of ``volumes``: the labels CSV of the data config, else the rule labeler on the
        references."""
        datamodule = trainer.datamodule
        if datamodule.data_cfg.get("train_labels_csv"):
            return datamodule.train_labels(volumes)
        from adaragct.eval.labelers.rules import RuleLabeler

        return np.asarray(RuleLabeler().labels([v.report for v in volumes]), dtype=np.int8)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if self.validations % self.every or self._sharded(trainer):
            return
        from adaragct.eval.torchmetrics_metrics import ClinicalF1, CocoBleu4
        from adaragct.generation.adaptive import GenerationSettings
        from adaragct.generation.prefixes import generate_reports

        subset = self._subset(trainer)
        if not subset:  # a score of no reports would read as F1 0
            if not self._warned:
                log.warning("callbacks.clinical_metrics: the validation split is empty: no val/clin_f1")
                self._warned = True
            return
        mine = subset[trainer.global_rank :: trainer.world_size]
        settings = GenerationSettings(
            max_new_tokens=self.max_new_tokens, repetition_penalty=self.repetition_penalty, top_k=1
        )
        start = time.perf_counter()
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        model, training = pl_module.model, pl_module.model.training
        model.eval()  # greedy decoding without dropout, whatever hook order the loop has
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                outputs = generate_reports(
                    model, pl_module.tokenizer, trainer.datamodule.prompt, mine, settings, self.batch_size
                )
        finally:
            model.train(training)
        clin, bleu = ClinicalF1().to(pl_module.device), CocoBleu4().to(pl_module.device)
        texts = [out.text for out in outputs]
        if mine:
            clin.update(texts, torch.tensor(self._truth(trainer, mine)))
            bleu.update(texts, [v.report for v in mine])
        values = {"val/clin_f1": clin.compute(), "val/bleu4": bleu.compute()}  # summed over ranks first
        if self.reports_dir is not None:
            self._write(trainer, subset, mine, outputs, settings)
        for name, value in values.items():
            pl_module.log(name, value.float(), sync_dist=False)  # already the value over all ranks
        log.info(
            "clinical validation at step %d on %d volumes (%.1f s): clin_f1 %.4f, bleu4 %.4f",
            trainer.global_step,
            len(subset),
            time.perf_counter() - start,
            float(values["val/clin_f1"]),
            float(values["val/bleu4"]),
        )

    def _write(self, trainer, subset: list[Any], mine: list[Any], outputs: list[Any], settings) -> None:
        """``<reports_dir>/step-NNNNNN.jsonl``: every rank's reports, in the subset's order, written by rank 0."""
        from adaragct.generation.predictions import prediction_record
        from adaragct.io import atomic_open

        records = [
            prediction_record(out, v.report, settings, "none") for out, v in zip(outputs, mine, strict=True)
        ]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        if not trainer.is_global_zero:
            return
        order = {v.volume_id: i for i, v in enumerate(subset)}
        records.sort(key=lambda r: order[r.image])
        path = self.reports_dir / f"step-{trainer.global_step:06d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            handle.writelines(r.to_json() + "\n" for r in records)
        log.info("validation reports -> %s", path)
