"""The report model: an LLM (with its LoRA) plus the visual projector, assembled per training stage (SPEC 4).

    model = build_stage_model(cfg.model, cfg.stage, tokenizer)            # stage base: projector + LoRA r=128
    model = build_stage_model(cfg.model, cfg.stage, tokenizer,            # stage rag: merged base + LoRA r=32
                              init_from="outputs/train/demo_tiny_base/last")

New-token rows (the five placeholders, the task token, the context delimiters and ``[RAG]``) are trained through
PEFT's ``trainable_token_indices`` on ``embed_tokens`` and ``lm_head``, not through a gradient mask on the full
matrices: only the ~9 rows get parameters, gradients and AdamW state (a gradient mask keeps 2 x 128k x 4096
gradients and optimizer moments for an 8B, ~12 GB, and AdamW's decoupled weight decay would still shrink every
masked row), and the rows are saved inside the PEFT adapter and merged by ``merge_and_unload``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaragct.constants import RAG_TOKEN, SLOT_TOKENS
from adaragct.data.prompt import IGNORE_INDEX
from adaragct.models.projector import VisualProjector, project_visual_slots


class ReportModel(nn.Module):
    """LLM + projector: embeds the prompt, swaps the placeholder embeddings for projected CT embeddings.

    Args:
        llm: a causal LM (usually a ``PeftModel``).
        projector: the per-slot projector.
        slot_token_ids: ``{slot: placeholder id}``.
        rag_token_id: id of ``[RAG]`` (loss weight and accuracy).
    """

    def __init__(
        self, llm: nn.Module, projector: VisualProjector, slot_token_ids: Mapping[str, int], rag_token_id: int
    ) -> None:
        super().__init__()
        self.llm, self.projector = llm, projector
        self.slot_token_ids, self.rag_token_id = dict(slot_token_ids), rag_token_id

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


def resolve_builder(dotted: str):
    """``adaragct.models.builders.llama3_1_8b`` -> the function (``conf/model: builder``)."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def lora_config(lora: Mapping[str, Any], new_token_ids: list[int] | None):
    """A PEFT LoraConfig from ``conf/stage: lora`` (+ trainable new-token rows in embed_tokens and lm_head)."""
    from peft import LoraConfig

    tokens = {"embed_tokens": list(new_token_ids), "lm_head": list(new_token_ids)} if new_token_ids else None
    return LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["alpha"]),
        lora_dropout=float(lora.get("dropout", 0.0)),
        target_modules=list(lora["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
        trainable_token_indices=tokens,
    )


def build_stage_model(
    model_cfg: Mapping[str, Any],
    stage_cfg: Mapping[str, Any],
    tokenizer,
    *,
    device: str | torch.device | None = None,
    init_from: str | Path | None = None,
) -> ReportModel:
    """Build the LLM from its builder, merge a base checkpoint (stage rag), add a fresh LoRA, set trainability.

    Args:
        model_cfg: ``cfg.model`` (builder, path, dtype, quantization, gradient_checkpointing, visual_dims,
            visual_slots).
        stage_cfg: ``cfg.stage`` (lora, train_projector, train_new_token_rows).
        tokenizer: the model's tokenizer (special tokens are added if missing).
        device: ``"meta"`` to build without weights (size checks).
        init_from: a stage=base checkpoint directory (ours or the release's base dir) to merge and freeze.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    from adaragct.models.builders import new_token_ids
    from adaragct.models.checkpoint import merge_base_checkpoint

    builder = resolve_builder(model_cfg["builder"])
    llm = builder(
        tokenizer,
        path=model_cfg.get("path"),
        device=device,
        dtype=model_cfg.get("dtype", "float32"),
        quantization=model_cfg.get("quantization"),
        gradient_checkpointing=bool(model_cfg.get("gradient_checkpointing", False)),
    )
    projector = VisualProjector(
        model_cfg["visual_dims"], llm.config.hidden_size, model_cfg.get("visual_slots")
    )
    projector.to(
        device=llm.get_input_embeddings().weight.device,
        dtype=getattr(torch, model_cfg.get("dtype", "float32")),
    )
    if init_from is not None:
        llm = merge_base_checkpoint(llm, projector, init_from)
    if model_cfg.get("quantization"):
        llm = prepare_model_for_kbit_training(
            llm, use_gradient_checkpointing=bool(model_cfg.get("gradient_checkpointing"))
        )
    llm.requires_grad_(False)
    ids = new_token_ids(tokenizer) if stage_cfg.get("train_new_token_rows", True) else None
    llm = get_peft_model(llm, lora_config(stage_cfg["lora"], ids))
    projector.requires_grad_(bool(stage_cfg.get("train_projector", True)))
    slot_ids = {slot: tokenizer.convert_tokens_to_ids(tok) for slot, tok in SLOT_TOKENS.items()}
    return ReportModel(llm, projector, slot_ids, tokenizer.convert_tokens_to_ids(RAG_TOKEN))


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as stored elements x 2 (two per byte)."""
    trainable = total = 0
    for p in module.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total
