"""Repetition penalty over ragged per-row token sets.

Same arithmetic as transformers' ``RepetitionPenaltyLogitsProcessor`` (a seen token's logit is divided by the
penalty when positive, multiplied when negative), but driven by a (B, V) "seen" mask instead of a rectangular
``input_ids`` tensor: rows of an adaptive batch have different output lengths, and a row's look-ahead probe is
added and later removed again, which a mask does in O(1) per token.
"""

from __future__ import annotations

import torch


class SeenTokens:
    """A (B, V) boolean mask of the tokens each row has produced."""

    def __init__(self, batch_size: int, vocab_size: int, device: torch.device) -> None:
        self.mask = torch.zeros((batch_size, vocab_size), dtype=torch.bool, device=device)

    def add(self, row: int, token_id: int) -> None:
        self.mask[row, token_id] = True

    def reset_row(self, row: int, token_ids: list[int]) -> None:
        """Rebuild one row from its tokens (after a probe is rolled back)."""
        self.mask[row].zero_()
        if token_ids:
            self.mask[row, torch.tensor(token_ids, device=self.mask.device)] = True

    def select(self, rows: torch.Tensor) -> None:
        self.mask = self.mask[rows]

    def extend(self, n: int) -> None:
        """Append ``n`` rows that have seen nothing (rows joining a running batch)."""
        self.mask = torch.cat([self.mask, self.mask.new_zeros((n, self.mask.shape[1]))])

    def apply(self, logits: torch.Tensor, penalty: float) -> torch.Tensor:
        """Penalised copy of ``logits`` (B, V)."""
        if penalty == 1.0:
            return logits
        seen = self.mask[:, : logits.shape[-1]]
        penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
        return torch.where(seen, penalised, logits)
