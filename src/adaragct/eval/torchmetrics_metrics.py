"""In-training metrics as torchmetrics ``Metric``s, so validation in DDP syncs across processes (docs/evaluation.md).

Both metrics keep only *summable* states (sum-reduced on sync): per-finding confusion counts for the clinical F1,
clipped n-gram matches, n-gram counts and lengths for BLEU-4. After a sync, ``compute`` equals scoring all
processes' samples at once, exactly as the offline evaluation does (same formulas as ``clinical.py`` and
``text_metrics.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from adaragct.constants import FINDINGS
from adaragct.eval.clinical import prf_from_counts
from adaragct.eval.labelers import Labeler
from adaragct.eval.text_metrics import BLEU_N, bleu_from_totals, bleu_stats, normalize_text


class ClinicalF1(Metric):
    """Support-weighted clinical F1 (the paper's Clin-F1) of generated reports.

    Args:
        labeler: labels generated reports (the rule labeler by default).

    ``update(generated_texts, target_labels)`` takes the (n, 18) ground-truth 0/1 tensor of the batch.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, labeler: Labeler | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if labeler is None:
            from adaragct.eval.labelers.rules import RuleLabeler

            labeler = RuleLabeler()
        self.labeler = labeler
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(len(FINDINGS), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, generated: Sequence[str], target: torch.Tensor) -> None:
        """Label the generated texts and add their confusion counts."""
        predicted = torch.as_tensor(self.labeler.labels(list(generated)), device=self.tp.device).bool()
        truth = torch.as_tensor(target, device=self.tp.device).bool()
        self.tp += (predicted & truth).sum(0)
        self.fp += (predicted & ~truth).sum(0)
        self.fn += (~predicted & truth).sum(0)

    def compute(self) -> torch.Tensor:
        """Support-weighted F1 over everything seen (all processes after sync)."""
        res = prf_from_counts(self.tp.cpu().numpy(), self.fp.cpu().numpy(), self.fn.cpu().numpy())
        return torch.tensor(float(res["weighted_f1"]), dtype=torch.float64)


class CocoBleu4(Metric):
    """Corpus BLEU-4 identical to pycocoevalcap ``Bleu(4)`` on strip + lower text.

    ``update(generated_texts, reference_texts)``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.zeros(BLEU_N, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("guess", default=torch.zeros(BLEU_N, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("testlen", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("reflen", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, generated: Sequence[str], references: Sequence[str]) -> None:
        """Add the clipped n-gram statistics of a batch."""
        stats = bleu_stats([normalize_text(t) for t in generated], [normalize_text(t) for t in references])
        device = self.correct.device
        self.correct += torch.as_tensor(stats.correct.sum(0), device=device)
        self.guess += torch.as_tensor(stats.guess.sum(0), device=device)
        self.testlen += int(stats.testlen.sum())
        self.reflen += int(stats.reflen.sum())

    def compute(self) -> torch.Tensor:
        """BLEU-4 of everything seen."""
        bleu = bleu_from_totals(
            self.correct.tolist(), self.guess.tolist(), int(self.testlen), int(self.reflen)
        )
        return torch.tensor(float(np.float64(bleu[3])), dtype=torch.float64)
