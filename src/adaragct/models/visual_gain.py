"""Visual gain: how much a report model's loss depends on its own CT embeddings (nats per report token).

    gain = NLL(report | another patient's embeddings) - NLL(report | its own embeddings), per labelled token

A LLaVA-style model can fit report language so well that it never learns to read its image tokens; its loss and
its BLEU then look healthy while every volume gets the same few reports. The gain is the direct measurement: ~0
means the model does not read its image, whatever else it scores. Embeddings come from a patient-level
derangement (:func:`adaragct.ids.patient_derangement`: a second reconstruction of the same scan carries the same
findings, so it is never the stand-in), the prompt and target stay the volume's own. With ``slots`` one slot at a
time is swapped, which says which embedding the model reads.

Used by the training module (``val/visual_gain`` at every validation) and by :func:`measure_visual_gain` on a
split with a bootstrap interval over volumes (the demo's ``visual_gain_<stage>.json``;
``python -m adaragct.demo visual_gain.per_slot=true`` adds the per-slot values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adaragct.constants import IGNORE_INDEX, VISUAL_SLOTS


def row_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed next-token NLL over labelled positions and the number of those positions: (B,), (B,)."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        shift_logits.transpose(1, 2), shift_labels, ignore_index=IGNORE_INDEX, reduction="none"
    )
    valid = shift_labels != IGNORE_INDEX
    return (ce * valid).sum(dim=1), valid.sum(dim=1)


def swap_slots(
    visual: Mapping[str, torch.Tensor], partner: Mapping[str, torch.Tensor], slots: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``visual`` with the embeddings of ``slots`` taken from ``partner`` (another patient's volume per row)."""
    return {s: (partner[s] if s in slots else visual[s]) for s in visual}


def gain_probes(slots: Sequence[str], per_slot: bool) -> list[tuple[str, tuple[str, ...]]]:
    """``(metric suffix, slots swapped)``: all slots at once (``""``), then each slot alone when ``per_slot``."""
    probes = [("", tuple(slots))]
    if per_slot and len(slots) > 1:
        probes += [(f"_{s}", (s,)) for s in slots]
    return probes


@torch.no_grad()
def batch_gains(
    model: Any,
    batch: Mapping[str, Any],
    own_nll: torch.Tensor,
    probes: Sequence[tuple[str, tuple[str, ...]]],
) -> dict[str, torch.Tensor]:
    """Per-row NLL difference (partner minus own) for each probe of a batch that carries ``partner``: the same
    targets with another patient's image (``input_ids``/``attention_mask``/``labels``, whose prompt names that
    volume's findings when the prompt has a findings sentence, and ``visual``).

    The first probe (suffix ``""``) swaps the whole image, findings words included; a per-slot probe swaps that
    slot's embedding alone and keeps the volume's own prompt."""
    partner = batch["partner"]
    out = {}
    for suffix, slots in probes:
        if not suffix:
            logits = model(partner["input_ids"], partner["attention_mask"], partner["visual"])
            nll = row_nll(logits, partner["labels"])[0]
        else:
            visual = swap_slots(batch["visual"], partner["visual"], slots)
            nll = row_nll(model(batch["input_ids"], batch["attention_mask"], visual), batch["labels"])[0]
        out[suffix] = nll - own_nll
    return out


@dataclass(frozen=True)
class VisualGain:
    """Visual gain on a split: the point estimate, its bootstrap interval over volumes, per-slot gains."""

    gain: float
    ci_lower: float
    ci_upper: float
    loss: float
    tokens: int
    volumes: int
    per_slot: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "visual_gain": self.gain,
            "visual_gain_ci_lower": self.ci_lower,
            "visual_gain_ci_upper": self.ci_upper,
            "loss": self.loss,
            "tokens": self.tokens,
            "volumes": self.volumes,
            "visual_gain_per_slot": self.per_slot,
        }


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, num_resamples: int, seed: int
) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``sum(numerator) / sum(denominator)`` over resampled rows."""
    from adaragct.eval.bootstrap import resample_weights

    weights = resample_weights(len(numerator), num_resamples, seed)
    ratios = (weights @ numerator) / np.maximum(weights @ denominator, 1.0)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


@torch.no_grad()
def measure_visual_gain(
    model: Any,
    tokenizer: Any,
    prompt: Any,
    volumes: Sequence[Any],
    *,
    num_derangements: int = 2,
    per_slot: bool = True,
    batch_size: int = 16,
    num_resamples: int = 1000,
    seed: int = 0,
) -> VisualGain:
    """Visual gain of ``model`` on ``volumes`` (reports as plain targets), averaged over patient derangements.

    Args:
        model: a :class:`adaragct.models.vlm.ReportModel` (eval mode).
        tokenizer: its tokenizer.
        prompt: the :class:`adaragct.data.prompt.PromptConfig` the model was trained with (a findings sentence
            is filled by the model's finding classifier, from whichever embeddings the row is given).
        volumes: :class:`adaragct.data.cohort.Volume` records (id, report, embeddings).
        num_derangements: patient-level derangements averaged (seeds ``seed .. seed + n - 1``).
        per_slot: also swap one slot at a time (one forward per slot and derangement).
        num_resamples: bootstrap resamples of the volumes for the interval.
    """
    from adaragct.ids import patient_derangement

    ids = [v.volume_id for v in volumes]
    perms = [patient_derangement(ids, seed + k) for k in range(num_derangements)]
    if not volumes or any(p is None for p in perms):
        raise ValueError(f"visual gain needs volumes of at least two patients ({len(volumes)} volumes given)")
    probes = gain_probes(list(model.projector), per_slot)
    device = next(model.parameters()).device
    dtype = next(model.projector.parameters()).dtype
    own, tokens = np.zeros(len(volumes)), np.zeros(len(volumes))
    diffs = {suffix: np.zeros(len(volumes)) for suffix, _ in probes}
    for start in range(0, len(volumes), batch_size):
        rows = list(range(start, min(len(volumes), start + batch_size)))
        batch = _batch(model, tokenizer, prompt, volumes, rows, rows, device, dtype)
        logits = model(batch["input_ids"], batch["attention_mask"], batch["visual"])
        nll, count = row_nll(logits, batch["labels"])
        own[rows], tokens[rows] = nll.cpu().numpy(), count.cpu().numpy()
        for perm in perms:
            batch["partner"] = _batch(
                model, tokenizer, prompt, volumes, rows, [perm[r] for r in rows], device, dtype
            )
            for suffix, diff in batch_gains(model, batch, nll, probes).items():
                diffs[suffix][rows] += diff.cpu().numpy() / len(perms)
    total = float(tokens.sum())
    lo, hi = ratio_interval(diffs[""], tokens, num_resamples, seed)
    return VisualGain(
        gain=float(diffs[""].sum() / total),
        ci_lower=lo,
        ci_upper=hi,
        loss=float(own.sum() / total),
        tokens=int(total),
        volumes=len(volumes),
        per_slot={suffix[1:]: float(d.sum() / total) for suffix, d in diffs.items() if suffix},
    )


def _batch(
    model: Any,
    tokenizer: Any,
    prompt: Any,
    volumes: Sequence[Any],
    targets: Sequence[int],
    images: Sequence[int],
    device: Any,
    dtype: Any,
) -> dict[str, Any]:
    """The reports of ``targets`` read with the images of ``images`` (embeddings, and the prompt they fill)."""
    from adaragct.data.prompt import encode_example, pad_examples, target_segments

    visual = {
        s: torch.from_numpy(np.stack([np.asarray(volumes[r].visual[s], np.float32) for r in images])).to(
            device, dtype
        )
        for s in VISUAL_SLOTS
    }
    texts = model.prompts(prompt, visual)
    examples = [
        encode_example(tokenizer, text, target_segments([volumes[r].report], {}))
        for text, r in zip(texts, targets, strict=True)
    ]
    input_ids, attention, labels = pad_examples(examples, tokenizer.pad_token_id)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention.to(device),
        "labels": labels.to(device),
        "visual": visual,
    }
