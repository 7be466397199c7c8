"""Repetition penalty over ragged per-row token sets, and the greedy choice it feeds.

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
        return _penalise(logits, self.mask[:, : logits.shape[-1]], penalty)

    def apply_draft(
        self, row: int, logits: torch.Tensor, draft: tuple[int, ...], penalty: float
    ) -> torch.Tensor:
        """Penalised copy of one row's ``logits`` (n+1, V) at the positions of a draft of n tokens: position i has
        seen the row's tokens plus ``draft[:i]`` (what the row will have written if the draft holds up to there)."""
        n, vocab = len(draft), logits.shape[-1]
        seen = self.mask[row, :vocab].expand(n + 1, vocab).clone()
        if n:
            position, earlier = torch.tril_indices(n + 1, n, -1, device=seen.device)
            seen[position, torch.tensor(draft, device=seen.device)[earlier]] = True
        return _penalise(logits, seen, penalty)


def _penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def greedy_candidates(scores: torch.Tensor, rag_id: int, bias: float) -> list[tuple[int, bool, bool]]:
    """Per row of ``scores`` (N, V): the best token other than ``[RAG]``, and whether ``[RAG]`` beats it with
    ``bias`` added to its score / without. With these a row's greedy choice is exactly ``argmax`` of its scores
    after the bias (first index among ties, as ``argmax``), for whichever of its states (bias, ``[RAG]`` barred)
    the row is in, without another pass over the vocabulary."""
    rag = scores[:, rag_id].clone()
    others = scores.clone()
    others[:, rag_id] = float("-inf")
    best_score, best = others.max(dim=-1)
    biased = rag + bias

    def wins(value: torch.Tensor) -> torch.Tensor:
        return (value > best_score) | ((value == best_score) & (best > rag_id))

    return list(zip(*torch.stack([best, wins(biased).long(), wins(rag).long()]).tolist(), strict=True))
