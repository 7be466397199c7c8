"""What a report is generated from: each volume's prompt with its projected embeddings in the placeholders.

:func:`volume_prefixes` is what ``infer`` feeds the generator a batch at a time; :func:`generate_reports` decodes a
list of volumes in memory (the in-training validation of :mod:`adaragct.train.clinical_validation`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from adaragct.constants import VISUAL_SLOTS


def prompt_prefixes(
    model, tokenizer, prompt, visual: dict, global_reports: list[list[str]] | None = None
) -> list[tuple[Any, Any]]:
    """``(prefix embeddings (T, H), attention mask (T,))`` of each volume of a batch: its prompt (which names its
    findings when ``prompt.findings_sentence`` is set) with the projected embeddings in the placeholders, after
    the volume's global-context reports when ``global_reports`` gives them (one list per volume)."""
    from adaragct.data.prompt import with_global_context

    device = next(model.parameters()).device
    out = []
    texts = model.prompts(prompt, visual)
    if global_reports is not None:
        texts = [with_global_context(t, r) for t, r in zip(texts, global_reports, strict=True)]
    for j, text in enumerate(texts):
        ids = torch.tensor(tokenizer.encode(text, add_special_tokens=False), device=device)
        with torch.no_grad():
            prefix = model.embed(ids[None], {s: v[j : j + 1] for s, v in visual.items()})[0]
        out.append((prefix, torch.ones_like(ids)))
    return out


def volume_prefixes(
    model, tokenizer, prompt, volumes: Sequence[Any], global_reports: list[list[str]] | None = None
) -> Iterator[tuple[Any, Any, str]]:
    """``(prefix, mask, volume_id)`` of each of ``volumes`` (one batch: their embeddings are projected together)."""
    device = next(model.parameters()).device
    dtype = next(model.projector.parameters()).dtype
    visual = {
        s: torch.from_numpy(np.stack([v.visual[s] for v in volumes])).to(device, dtype) for s in VISUAL_SLOTS
    }
    for (prefix, mask), volume in zip(
        prompt_prefixes(model, tokenizer, prompt, visual, global_reports), volumes, strict=True
    ):
        yield prefix, mask, volume.volume_id


def generate_reports(
    model, tokenizer, prompt, volumes: Sequence[Any], settings, batch_size: int, retriever=None
) -> list[Any]:
    """The :class:`~adaragct.generation.adaptive.RowOutput` of each of ``volumes``, in their order (greedy; no
    retrieval when ``retriever`` is None: a ``[RAG]`` is then handled as ``settings.ignored_rag`` says)."""
    from adaragct.generation.adaptive import AdaptiveGenerator

    generator = AdaptiveGenerator(model.llm, tokenizer, retriever, settings)

    def items():
        for i in range(0, len(volumes), batch_size):
            yield from volume_prefixes(model, tokenizer, prompt, volumes[i : i + batch_size])

    outputs: list[Any] = [None] * len(volumes)
    for index, out in generator.generate_stream(items(), batch_size, refill=True):
        outputs[index] = out
    return outputs
