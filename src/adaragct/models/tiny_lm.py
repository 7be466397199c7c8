"""Pretrain the tiny Llama as a plain language model on report text: the demo's stand-in for Llama's weights.

The paper's recipe freezes a *pretrained* LLM and trains a projector and LoRA on top. A randomly initialised
tiny model cannot play that part (its frozen random embeddings and LM head leave LoRA little to work with), so the
prepare stage first teaches it the language of the training reports, then saves it like any Hugging Face
model directory (weights + tokenizer), which ``conf/model/tiny.yaml`` points at.

With ``prompt=findings`` (the demo's) the documents are the prompt's last words naming a report's findings, then
the report (:func:`adaragct.data.prompt.findings_document`): the LM learns to follow findings given as words, the
stand-in for an LLM that uses what its prompt tells it (docs/visual_dependence.md).

    pretrain_tiny_lm(documents, "data/demo/tokenizer", "data/demo/tiny_lm", steps=700)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _batches(ids: list[list[int]], batch_size: int, pad_id: int, generator: torch.Generator):
    """Endless batches, each epoch reshuffled with documents of similar length together (transformers' length
    grouping: mega-batches sorted by length), so little of a batch is padding."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = [len(row) for row in ids]
    while True:
        order = torch.tensor(get_length_grouped_indices(lengths, batch_size, generator=generator))
        for chunk in order.split(batch_size):
            rows = [ids[i] for i in chunk.tolist()]
            width = max(map(len, rows))
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            for r, row in enumerate(rows):
                input_ids[r, : len(row)] = torch.tensor(row)
                labels[r, : len(row)] = torch.tensor(row)
            yield input_ids, (labels != -100).long(), labels


def pretrain_tiny_lm(
    texts: Sequence[str],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 3e-3,
    warmup: int = 20,
    seed: int = 0,
    size: str = "tiny",
) -> dict[str, float]:
    """Train a tiny Llama (``builders.tiny_config(size)``) on ``texts`` (each followed by the end token) in
    length-grouped batches of ``batch_size``, with linear warmup and a cosine to 10%; save it.

    Returns the first and last training loss. The model and its tokenizer are written to ``out_dir``
    atomically, with the special tokens (docs/method.md#model-and-training) already in the vocabulary.
    """
    from transformers import LlamaForCausalLM

    from adaragct.io import atomic_dir
    from adaragct.models.builders import ensure_special_tokens, load_tokenizer, tiny_config

    tokenizer = load_tokenizer(tokenizer_dir)
    ensure_special_tokens(tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(len(tokenizer), size))
    end = tokenizer.eos_token or ""
    ids = [tokenizer.encode(t.strip() + end, add_special_tokens=False) for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        ),
    )
    batches = _batches(ids, batch_size, tokenizer.pad_token_id, torch.Generator().manual_seed(seed))
    losses = []
    model.train()
    for step in range(steps):
        input_ids, attention, labels = next(batches)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            log.info("tiny LM pretraining step %d/%d loss %.3f", step + 1, steps, losses[-1])
    with atomic_dir(out_dir) as tmp:
        model.eval().save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return {
        "first_loss": round(losses[0], 4),
        "last_loss": round(sum(losses[-10:]) / min(10, len(losses)), 4),
    }
