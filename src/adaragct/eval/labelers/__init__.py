"""Report labelers: text -> 0/1 matrix (n, 18) of the CT-RATE findings, behind one small Protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from adaragct.errors import UsageError


@runtime_checkable
class Labeler(Protocol):
    """Anything that labels reports with the 18 findings.

    ``labels`` returns an int8 array of shape (len(texts), 18), columns in ``adaragct.constants.FINDINGS`` order.
    """

    name: str

    def labels(self, texts: Sequence[str]) -> np.ndarray: ...


def build_labeler(
    kind: str,
    *,
    checkpoint: str | Path | None = None,
    roberta_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 16,
) -> Labeler:
    """Build a labeler by name: ``rule`` (offline, default) or ``radbert`` (the CT-RATE classifier).

    Args:
        kind: ``rule`` or ``radbert``.
        checkpoint: ``RadBertClassifier.pth`` (radbert only).
        roberta_dir: local RoBERTa directory with config and tokenizer (radbert only).
        device: torch device for radbert.
        batch_size: radbert inference batch size.
    """
    if kind == "rule":
        from adaragct.eval.labelers.rules import RuleLabeler

        return RuleLabeler()
    if kind == "radbert":
        if checkpoint is None or roberta_dir is None:
            raise UsageError(
                "labeler radbert",
                "needs a checkpoint (RadBertClassifier.pth) and a local RoBERTa directory (roberta_dir)",
                "pass both (--radbert-checkpoint C --roberta-dir R, or scoring.labeler.radbert_checkpoint=C "
                "scoring.labeler.roberta_dir=R), or use the rule labeler to score offline without them",
            )
        from adaragct.eval.labelers.radbert import RadBertLabeler

        return RadBertLabeler(checkpoint, roberta_dir, device=device, batch_size=batch_size)
    raise UsageError(f"labeler {kind!r}", "is not a labeler", "choose 'rule' or 'radbert'")
