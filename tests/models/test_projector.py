"""The projector replaces exactly the placeholder embeddings, and refuses rows without one of each."""

from __future__ import annotations

import pytest
import torch

from adaragct.constants import VISUAL_SLOTS
from adaragct.models.projector import VisualProjector, project_visual_slots
from tests.models.conftest import VISUAL_DIMS, random_visual

SLOT_IDS = {slot: 100 + i for i, slot in enumerate(VISUAL_SLOTS)}


def test_projector_layout_matches_the_release_keys() -> None:
    projector = VisualProjector(VISUAL_DIMS, hidden_size=12)
    assert set(projector.state_dict()) == {
        f"{s}.{i}.{p}" for s in VISUAL_SLOTS for i in (0, 2) for p in ("weight", "bias")
    }
    assert projector.whole_ct[0].in_features == 16 and projector.lung[0].in_features == 8
    out = projector(random_visual(3))
    assert {k: tuple(v.shape) for k, v in out.items()} == {s: (3, 12) for s in VISUAL_SLOTS}


def test_only_placeholders_are_replaced() -> None:
    # row 0 has the placeholders in order, row 1 shuffled and shifted
    ids = torch.tensor([[1, 100, 101, 102, 103, 104, 2, 3], [5, 6, 104, 102, 7, 100, 103, 101]])
    embeds = torch.randn(2, 8, 12)
    projected = {
        s: torch.full((2, 12), float(i + 1)) * torch.tensor([[1.0], [-1.0]])
        for i, s in enumerate(VISUAL_SLOTS)
    }
    out = project_visual_slots(embeds, ids, projected, SLOT_IDS)
    for row in range(2):
        for col in range(8):
            token = int(ids[row, col])
            if token in SLOT_IDS.values():
                slot = VISUAL_SLOTS[token - 100]
                assert torch.equal(out[row, col], projected[slot][row]), (row, col)
            else:
                assert torch.equal(out[row, col], embeds[row, col]), (row, col)


def test_gradient_reaches_the_projector_not_the_replaced_rows() -> None:
    projector = VisualProjector(VISUAL_DIMS, hidden_size=12)
    ids = torch.tensor([[100, 101, 102, 103, 104, 9]])
    embeds = torch.randn(1, 6, 12, requires_grad=True)
    out = project_visual_slots(embeds, ids, projector(random_visual(1)), SLOT_IDS)
    out.sum().backward()
    assert projector.aorta[2].weight.grad is not None
    assert torch.equal(embeds.grad[0, :5], torch.zeros(5, 12)) and torch.equal(
        embeds.grad[0, 5], torch.ones(12)
    )


@pytest.mark.parametrize("ids", [[[100, 101, 102, 103, 9, 9]], [[100, 100, 101, 102, 103, 104]]])
def test_missing_or_duplicate_placeholder_is_an_error(ids) -> None:
    ids = torch.tensor(ids)
    with pytest.raises(ValueError, match="rows \\[0\\]"):
        project_visual_slots(
            torch.zeros(1, 6, 12), ids, {s: torch.zeros(1, 12) for s in VISUAL_SLOTS}, SLOT_IDS
        )
