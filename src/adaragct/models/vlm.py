"""The report model (docs/method.md#model-and-training): an LLM (with its LoRA) plus the visual projector (its loss: adaragct.models.loss).

Assembled in one place, :mod:`adaragct.models.loading` (fresh per training phase, or from a checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from adaragct.data.prompt import PromptConfig, build_prompt
from adaragct.models.findings import FindingClassifier
from adaragct.models.projector import VisualProjector, project_visual_slots


class ReportModel(nn.Module):
    """LLM + projector: embeds the prompt, swaps the placeholder embeddings for projected CT embeddings.

    Args:
        llm: a causal LM (usually a ``PeftModel``).
        projector: the per-slot projector.
        slot_token_ids: ``{slot: placeholder id}``.
        rag_token_id: id of ``[RAG]`` (loss weight and accuracy).
        findings: the finding classifier whose findings the prompt names (``prompt.findings_sentence``;
            :mod:`adaragct.models.findings`), or ``None`` (the paper's prompt).
    """

    def __init__(
        self,
        llm: nn.Module,
        projector: VisualProjector,
        slot_token_ids: Mapping[str, int],
        rag_token_id: int,
        findings: FindingClassifier | None = None,
    ) -> None:
        super().__init__()
        self.llm, self.projector, self.findings = llm, projector, findings
        self.slot_token_ids, self.rag_token_id = dict(slot_token_ids), rag_token_id
        # what its checkpoints record: fingerprints of the base weights and of the starting checkpoint
        # (:mod:`adaragct.models.provenance`; set by ``build_phase_model``)
        self.provenance: dict | None = None

    def prompts(self, prompt: PromptConfig, visual: Mapping[str, torch.Tensor]) -> list[str]:
        """The prompt text of each volume of a batch: the same for all with the paper's prompt, each volume's own
        findings (read by :attr:`findings`) with ``prompt.findings_sentence``."""
        rows = len(next(iter(visual.values())))
        if prompt.findings_sentence is None:
            return [build_prompt(prompt)] * rows
        if self.findings is None:
            raise ValueError(
                "prompt.findings_sentence is set but the model has no finding classifier (fix: train it with the "
                "same prompt from phase align, whose checkpoint carries findings.safetensors, or set "
                "prompt.findings_sentence=null)"
            )
        return [build_prompt(prompt, found) for found in self.findings.findings(visual)]

    def embed(self, input_ids: torch.Tensor, visual: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, H) input embeddings with the visual tokens in place."""
        embeds = self.llm.get_input_embeddings()(input_ids)
        slots = {slot: self.slot_token_ids[slot] for slot in self.projector}  # the slots that reach the model
        return project_visual_slots(embeds, input_ids, self.projector(visual), slots)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """(B, T, V) logits."""
        embeds = self.embed(input_ids, visual)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as stored elements x 2 (two per byte)."""
    trainable = total = 0
    for p in module.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total
