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


def test_whole_ct_alone_reaches_the_model_and_organ_placeholders_keep_their_token(
    tokenizer_dir, tokenizer
) -> None:
    """model.visual_slots=[whole_ct] (the bottleneck ablation): only the CT-CLIP slot is projected; the organ
    placeholders stay their token embedding, so the organ embeddings cannot change the model's input."""
    from adaragct.constants import SLOT_TOKENS
    from adaragct.models.loading import build_phase_model
    from tests.models.conftest import model_cfg, phase_cfg

    model = build_phase_model(
        model_cfg(tokenizer_dir, visual_slots=["whole_ct"]), phase_cfg("base"), tokenizer
    )
    assert list(model.projector) == ["whole_ct"]
    ids = torch.tensor([[tokenizer.convert_tokens_to_ids(SLOT_TOKENS[s]) for s in VISUAL_SLOTS]])
    visual, other = random_visual(1, seed=0), random_visual(1, seed=1)
    with torch.no_grad():
        a = model.embed(ids, visual)
        b = model.embed(ids, {**other, "whole_ct": visual["whole_ct"]})
        tokens = model.llm.get_input_embeddings()(ids)
    assert torch.equal(a, b)  # organ embeddings change nothing
    assert torch.equal(a[0, 1:], tokens[0, 1:]) and not torch.equal(a[0, 0], tokens[0, 0])
    with pytest.raises(ValueError, match="visual_slots"):
        VisualProjector(VISUAL_DIMS, 12, ["liver"])


def test_tiny_large_is_two_to_four_times_tiny() -> None:
    from transformers import LlamaForCausalLM

    from adaragct.models.builders import tiny_config

    with torch.device("meta"):
        small, large = (LlamaForCausalLM(tiny_config(1024, size)) for size in ("tiny", "tiny_large"))
    ratio = sum(p.numel() for p in large.parameters()) / sum(p.numel() for p in small.parameters())
    assert 2.0 <= ratio <= 4.0, ratio
