"""The training loss (docs/method.md#model-and-training): next-token cross-entropy over the report, with the
``[RAG]`` targets weighted by ``phase.rag_loss_weight`` — what teaches the model to ask for retrieval."""

from __future__ import annotations

import torch
from torch import nn

from adaragct.constants import IGNORE_INDEX


def report_loss(
    logits: torch.Tensor, labels: torch.Tensor, rag_token_id: int, rag_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Next-token cross-entropy over labelled positions, ``[RAG]`` targets weighted by ``rag_weight``.

    The mean is weighted (sum of w * ce / sum of w), so ``rag_weight=1`` is the plain token mean and a larger
    weight shifts the objective towards asking for retrieval at the right place.

    Returns:
        The loss and stats: ``rag_token_acc`` (share of ``[RAG]`` targets predicted by argmax; NaN when the
        batch has none) and ``tokens`` (labelled tokens).
    """
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    ce = nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    valid = shift_labels != IGNORE_INDEX
    is_rag = shift_labels == rag_token_id
    weights = valid.float() + is_rag.float() * (rag_weight - 1.0)
    loss = (ce * weights).sum() / weights.sum().clamp_min(1.0)
    with torch.no_grad():
        hits = (shift_logits.argmax(dim=-1) == rag_token_id) & is_rag
        acc = hits.sum().float() / is_rag.sum() if bool(is_rag.any()) else torch.tensor(float("nan"))
    return loss, {"rag_token_acc": acc, "tokens": valid.sum()}
