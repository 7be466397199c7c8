"""LightningDataModule for stage=base and stage=rag (SPEC 2.5).

Each sample is (5-slot visual input, prompt, target). For stage=rag every sample rolls one context source
(none / oracle / retrieved) and rewrites at most ``max_sentences`` of its sentences as
``[RAG]<|ret_start|>{contexts}<|ret_end|> {sentence}``. Rolls are drawn from ``(seed, epoch, index)``, so a run
is reproducible and each epoch sees fresh context draws.

    dm = ReportDataModule(data_cfg, tokenizer, prompt, batch_size=8, stage_contexts=cfg.stage.contexts)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningDataModule
from torch.utils.data import DataLoader, Dataset

from adaragct.constants import IGNORE_INDEX, VISUAL_SLOTS
from adaragct.data.bundle import context_key, read_contexts
from adaragct.data.cohort import Volume, load_split, patient_split
from adaragct.data.index_files import index_file
from adaragct.data.prompt import PromptConfig, build_prompt, encode_example, target_segments
from adaragct.data.sentences import split_sentences

log = logging.getLogger(__name__)
CONTEXT_SOURCES = ("none", "oracle", "retrieved")


class ContextRoll:
    """Chooses, per sample, a context source and which sentences get a ``[RAG]`` span.

    Args:
        sources: ``{"oracle": {vid: {context_key: [texts]}}, "retrieved": {...}}``.
        none_prob: probability of no contexts at all.
        oracle_ratio: among samples with contexts, the share drawn from the oracle source.
        max_sentences: at most this many sentences per report get a span.
        per_sentence: contexts per span (shuffled, space-joined).
    """

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, Mapping[str, list[str]]]],
        none_prob: float = 0.0,
        oracle_ratio: float = 0.7,
        max_sentences: int = 4,
        per_sentence: int = 3,
    ) -> None:
        if not (0.0 <= none_prob <= 1.0 and 0.0 <= oracle_ratio <= 1.0):
            raise ValueError("conf/stage: contexts.none_prob and contexts.oracle_ratio must be in [0, 1]")
        self.sources, self.none_prob, self.oracle_ratio = sources, none_prob, oracle_ratio
        self.max_sentences, self.per_sentence = max_sentences, per_sentence

    def source_probs(self) -> dict[str, float]:
        with_ctx = 1.0 - self.none_prob
        return {
            "none": self.none_prob,
            "oracle": with_ctx * self.oracle_ratio,
            "retrieved": with_ctx * (1.0 - self.oracle_ratio),
        }

    def __call__(
        self, volume_id: str, sentences: Sequence[str], rng: np.random.Generator
    ) -> tuple[str, dict[int, list[str]]]:
        probs = self.source_probs()
        source = str(rng.choice(CONTEXT_SOURCES, p=[probs[s] for s in CONTEXT_SOURCES]))
        if source == "none":
            return source, {}
        table = self.sources[source].get(volume_id, {})
        candidates = [i for i, s in enumerate(sentences) if table.get(context_key(s))]
        if not candidates:
            return source, {}
        chosen = rng.choice(candidates, size=min(self.max_sentences, len(candidates)), replace=False)
        contexts = {}
        for i in sorted(int(c) for c in chosen):
            texts = list(table[context_key(sentences[i])][: self.per_sentence])
            rng.shuffle(texts)
            contexts[i] = texts
        return source, contexts


class ReportDataset(Dataset):
    """Tokenised (visual, prompt, target) samples; contexts are rolled per item when ``roll`` is given."""

    def __init__(
        self,
        volumes: Sequence[Volume],
        tokenizer,
        prompt: PromptConfig,
        max_length: int,
        roll: ContextRoll | None = None,
        seed: int = 0,
    ) -> None:
        self.volumes, self.tokenizer, self.max_length, self.roll, self.seed = (
            volumes,
            tokenizer,
            max_length,
            roll,
            seed,
        )
        self.prompt_text = build_prompt(prompt)
        self.sentences = [split_sentences(v.report) for v in volumes] if roll is not None else None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self.volumes[index]
        source, contexts = "none", {}
        if self.roll is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sentences = self.sentences[index]
            source, contexts = self.roll(volume.volume_id, sentences, rng)
        else:
            sentences = [volume.report]  # stage base: the report as one segment (tokenised as a whole)
        input_ids, labels = encode_example(
            self.tokenizer, self.prompt_text, target_segments(sentences, contexts)
        )
        if len(input_ids) > self.max_length:
            raise ValueError(
                f"volume {volume.volume_id}: {len(input_ids)} tokens > datamodule.max_length="
                f"{self.max_length}; raise datamodule.max_length (samples are never silently cut)"
            )
        return {
            "volume_id": volume.volume_id,
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "visual": {
                slot: torch.from_numpy(np.asarray(volume.visual[slot], dtype=np.float32))
                for slot in VISUAL_SLOTS
            },
            "context_source": source,
            "n_contexts": len(contexts),
        }


def collate(batch: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad to the longest sample; padding is masked in ``attention_mask`` and ignored in ``labels``."""
    length = max(len(item["input_ids"]) for item in batch)
    input_ids = torch.full((len(batch), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        input_ids[row, :n], labels[row, :n], attention[row, :n] = item["input_ids"], item["labels"], 1
    return {
        "volume_id": [item["volume_id"] for item in batch],
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "visual": {slot: torch.stack([item["visual"][slot] for item in batch]) for slot in VISUAL_SLOTS},
        "context_source": [item["context_source"] for item in batch],
    }


class _Collator:
    """Picklable collate function (worker processes need to pickle it)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate(batch, self.pad_token_id)


class ReportDataModule(LightningDataModule):
    """Training volumes split by patient into train/val; stage=rag adds the context roll.

    Args:
        data_cfg: a ``conf/data`` node (paths of reports, embeddings and context files).
        tokenizer: the model's tokenizer (special tokens of SPEC 4 already added).
        prompt: prompt texts.
        batch_size, num_workers, max_length, val_fraction, split_seed: see ``conf/datamodule``.
        stage_contexts: ``cfg.stage.contexts`` for stage=rag, ``None`` for stage=base.
        seed: seeds the context rolls.
        visual_dims: expected input dims per slot (checked on load).
    """

    def __init__(
        self,
        data_cfg: Mapping[str, Any],
        tokenizer,
        prompt: PromptConfig,
        *,
        batch_size: int = 8,
        num_workers: int = 0,
        max_length: int = 1024,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        stage_contexts: Mapping[str, Any] | None = None,
        seed: int = 0,
        visual_dims: Mapping[str, int] | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.data_cfg, self.tokenizer, self.prompt = data_cfg, tokenizer, prompt
        self.batch_size, self.num_workers, self.max_length = batch_size, num_workers, max_length
        self.val_fraction, self.split_seed, self.seed = val_fraction, split_seed, seed
        self.stage_contexts, self.visual_dims, self.pin_memory = stage_contexts, visual_dims, pin_memory
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer has no pad token; the model builder must add one")
        self.train_set: ReportDataset | None = None
        self.val_set: ReportDataset | None = None

    def _roll(self) -> ContextRoll | None:
        if not self.stage_contexts:
            return None
        ctx = dict(self.stage_contexts)
        sources = {
            "oracle": read_contexts(index_file(self.data_cfg, "oracle_contexts"))
            if ctx.get("oracle_ratio", 0) > 0
            else {},
            "retrieved": read_contexts(index_file(self.data_cfg, "retrieved_contexts"))
            if ctx.get("oracle_ratio", 0) < 1
            else {},
        }
        return ContextRoll(
            sources,
            none_prob=ctx.get("none_prob", 0.0),
            oracle_ratio=ctx.get("oracle_ratio", 0.7),
            max_sentences=ctx.get("max_sentences", 4),
            per_sentence=ctx.get("per_sentence", 3),
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        volumes = load_split(self.data_cfg, "train", self.visual_dims)
        train_idx, val_idx = patient_split([v.volume_id for v in volumes], self.val_fraction, self.split_seed)
        roll = self._roll()

        def subset(indices: list[int]) -> ReportDataset:
            items = [volumes[i] for i in indices]
            return ReportDataset(items, self.tokenizer, self.prompt, self.max_length, roll, self.seed)

        # validation rolls contexts too (same mixture), with its own fixed draws: val loss tracks the rag task
        self.train_set, self.val_set = subset(train_idx), subset(val_idx)
        log.info("datamodule: %d train / %d val volumes (patient-level split)", len(train_idx), len(val_idx))

    def set_epoch(self, epoch: int) -> None:
        """New context draws each epoch (workers are re-created per epoch and pick this up)."""
        if self.train_set is not None:
            self.train_set.epoch = epoch

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=_Collator(self.tokenizer.pad_token_id),
            generator=generator,
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)


class ContextEpochCallback(Callback):
    """Tells the datamodule the epoch so each epoch rolls fresh contexts."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if isinstance(datamodule, ReportDataModule):
            datamodule.set_epoch(trainer.current_epoch)
