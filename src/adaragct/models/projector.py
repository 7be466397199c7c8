"""Per-slot visual projector (docs/method.md#model-and-training): each CT embedding becomes one token in the LLM's embedding space.

One 2-layer MLP per slot (``Linear(d_in, H) -> GELU -> Linear(H, H)``) rather than one shared MLP, because the
whole-volume (512-d CT-CLIP) and organ (256-d) embeddings come from different encoders. The state-dict keys are
``{slot}.0.weight``, ``{slot}.0.bias``, ``{slot}.2.weight``, ``{slot}.2.bias``: the release's ``projector.pt``
layout, so its weights load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from adaragct.constants import VISUAL_SLOTS


class VisualProjector(nn.ModuleDict):
    """``{slot: MLP}`` over the visual slots (all five by default).

    Args:
        visual_dims: input dim per slot (``conf/model: visual_dims``).
        hidden_size: the LLM's hidden size.
        slots: the slots that reach the model (``conf/model: visual_slots``), in :data:`VISUAL_SLOTS` order; the
            placeholder of a slot left out keeps its token embedding, which carries no image (an ablation).
    """

    def __init__(
        self, visual_dims: Mapping[str, int], hidden_size: int, slots: Sequence[str] | None = None
    ) -> None:
        slots = list(VISUAL_SLOTS if slots is None else slots)
        unknown = [s for s in slots if s not in VISUAL_SLOTS]
        if unknown or not slots:
            raise ValueError(
                f"conf/model: visual_slots {slots} must be a non-empty subset of {list(VISUAL_SLOTS)}"
            )
        missing = [s for s in slots if s not in visual_dims]
        if missing:
            raise ValueError(f"conf/model: visual_dims lacks {missing} (needed for visual_slots {slots})")
        super().__init__(
            {
                slot: nn.Sequential(
                    nn.Linear(int(visual_dims[slot]), hidden_size),
                    nn.GELU(),
                    nn.Linear(hidden_size, hidden_size),
                )
                for slot in VISUAL_SLOTS
                if slot in slots
            }
        )

    def forward(self, visual: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """``{slot: (B, d_slot)}`` -> ``{slot: (B, H)}``."""
        return {slot: mlp(visual[slot].to(mlp[0].weight.dtype)) for slot, mlp in self.items()}


def placeholder_positions(
    input_ids: torch.Tensor, slot_token_ids: Mapping[str, int]
) -> dict[str, torch.Tensor]:
    """Column of each slot's placeholder in every row; an error unless each row has exactly one of each.

    Silent misplacement (a truncated prompt, a tokenizer that split ``<lung>``) would train the model on the
    wrong image tokens, so it is refused, naming the rows.
    """
    positions = {}
    for slot, token_id in slot_token_ids.items():
        hits = input_ids == token_id
        counts = hits.sum(dim=1)
        if not bool((counts == 1).all()):
            bad = torch.nonzero(counts != 1).flatten().tolist()
            raise ValueError(
                f"rows {bad} have {counts[bad].tolist()} placeholders for slot {slot!r} (token id "
                f"{token_id}); each row needs exactly one (check the prompt and the tokenizer's special tokens)"
            )
        positions[slot] = hits.int().argmax(dim=1)
    return positions


def project_visual_slots(
    inputs_embeds: torch.Tensor,
    input_ids: torch.Tensor,
    projected: Mapping[str, torch.Tensor],
    slot_token_ids: Mapping[str, int],
) -> torch.Tensor:
    """Return ``inputs_embeds`` with each placeholder's embedding replaced by its slot's projection.

    Args:
        inputs_embeds: (B, T, H) token embeddings.
        input_ids: (B, T) ids, used to find the placeholders.
        projected: ``{slot: (B, H)}`` projector outputs.
        slot_token_ids: ``{slot: placeholder token id}``.
    """
    positions = placeholder_positions(input_ids, slot_token_ids)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    out = inputs_embeds.clone()  # out-of-place: the embedding output may be a leaf view needed by autograd
    for slot, cols in positions.items():
        out[rows, cols] = projected[slot].to(out.dtype)
    return out
