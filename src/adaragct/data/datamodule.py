"""LightningDataModule for phase=base and phase=rag (docs/method.md#training-batches).

Each sample is (5-slot visual input, prompt, target). For phase=rag every sample rolls one context source
(none / oracle / retrieved) and rewrites at most ``max_sentences`` of its sentences as
``[RAG]<|ret_start|>{contexts}<|ret_end|> {sentence}``. Rolls are drawn from ``(seed, epoch, index)``, so a run
is reproducible and each epoch sees fresh context draws. The training loader is a
:class:`~adaragct.data.resumable.ResumableDataLoader`: it tells the dataset the epoch before each pass, and
Lightning checkpoints its position, so a run resumed mid-epoch reads what the uninterrupted run would have.

    dm = ReportDataModule(data_cfg, tokenizer, prompt, LoaderSpec.from_config(cfg.datamodule),
                          contexts=PhaseSpec.from_config(cfg.phase).contexts, seed=cfg.seed, ...)

Every setting comes from the config (``conf/datamodule``, ``conf/phase/rag.yaml: contexts``) through
:class:`~adaragct.data.specs.LoaderSpec` and :class:`~adaragct.data.specs.ContextMix`: none is restated here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from adaragct.constants import FINDINGS, VISUAL_SLOTS
from adaragct.data.cohort import Volume, patient_split
from adaragct.data.datasets import load_split
from adaragct.data.index_files import index_file
from adaragct.data.prompt import PromptConfig, build_prompt, encode_example, pad_examples, target_segments
from adaragct.data.resumable import ResumableDataLoader
from adaragct.data.sentences import split_sentences
from adaragct.data.specs import ContextMix, LoaderSpec
from adaragct.errors import DataError
from adaragct.formats.contexts import context_key, read_contexts
from adaragct.ids import patient_derangement

log = logging.getLogger(__name__)
CONTEXT_SOURCES = ("none", "oracle", "retrieved")


class ContextRoll:
    """Chooses, per sample, a context source and which sentences get a ``[RAG]`` span.

    Args:
        sources: ``{"oracle": {vid: {context_key: [texts]}}, "retrieved": {...}}``.
        mix: the source probabilities and span counts (``conf/phase/rag.yaml: contexts``; checked there).
    """

    def __init__(self, sources: Mapping[str, Mapping[str, Mapping[str, list[str]]]], mix: ContextMix) -> None:
        self.sources, self.none_prob, self.oracle_ratio = sources, mix.none_prob, mix.oracle_ratio
        self.max_sentences, self.per_sentence = mix.max_sentences, mix.per_sentence

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


def visual_tensors(volume: Volume) -> dict[str, torch.Tensor]:
    """A volume's embeddings as float32 tensors, one per slot."""
    return {
        slot: torch.from_numpy(np.asarray(volume.visual[slot], dtype=np.float32)) for slot in VISUAL_SLOTS
    }


class ReportDataset(Dataset):
    """Tokenised (visual, prompt, target) samples; contexts are rolled per item when ``roll`` is given.

    ``findings`` (``{volume_id: [finding names]}``, from the labels CSV) fills the prompt's findings sentence when
    ``prompt.findings_sentence`` is set (:mod:`adaragct.models.findings`). ``partners`` (validation): for each
    sample, the index of another patient's volume; the sample then also carries ``partner``, the same target read
    with that volume's image (its embeddings, and its findings in the prompt), for ``val/visual_gain``
    (:mod:`adaragct.models.visual_gain`).
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        tokenizer,
        prompt: PromptConfig,
        max_length: int,
        roll: ContextRoll | None = None,
        seed: int = 0,
        partners: Sequence[int] | None = None,
        findings: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.volumes, self.tokenizer, self.max_length, self.roll, self.seed = (
            volumes,
            tokenizer,
            max_length,
            roll,
            seed,
        )
        self.partners = partners
        self.prompt_texts = [
            build_prompt(prompt, None if findings is None else findings[v.volume_id]) for v in volumes
        ]
        self.sentences = [split_sentences(v.report) for v in volumes] if roll is not None else None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.volumes)

    def set_epoch(self, epoch: int) -> None:
        """New context draws each epoch (the training loader calls this before each pass; worker processes are
        started per pass, so they pick it up)."""
        self.epoch = epoch

    def lengths(self) -> list[int]:
        """Tokens of each sample without context spans (what length grouping sorts by; phase rag adds spans)."""
        return [
            len(self.tokenizer.encode(p + v.report, add_special_tokens=False))
            for p, v in zip(self.prompt_texts, self.volumes, strict=True)
        ]

    def _encode(
        self, volume: Volume, prompt_text: str, segments: Sequence[Any]
    ) -> tuple[list[int], list[int]]:
        input_ids, labels = encode_example(self.tokenizer, prompt_text, segments)
        if len(input_ids) > self.max_length:
            raise ValueError(
                f"volume {volume.volume_id}: {len(input_ids)} tokens > datamodule.max_length="
                f"{self.max_length}; raise datamodule.max_length (samples are never silently cut)"
            )
        return input_ids, labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self.volumes[index]
        source, contexts = "none", {}
        if self.roll is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            sentences = self.sentences[index]
            source, contexts = self.roll(volume.volume_id, sentences, rng)
        else:
            sentences = [volume.report]  # phase base: the report as one segment (tokenised as a whole)
        segments = target_segments(sentences, contexts)
        input_ids, labels = self._encode(volume, self.prompt_texts[index], segments)
        item = {
            "volume_id": volume.volume_id,
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "visual": visual_tensors(volume),
            "context_source": source,
            "n_contexts": len(contexts),
        }
        if self.partners is not None:
            other = self.partners[index]
            ids, labs = self._encode(volume, self.prompt_texts[other], segments)
            item["partner"] = {
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "labels": torch.tensor(labs, dtype=torch.long),
                "visual": visual_tensors(self.volumes[other]),
            }
        return item


def _padded(batch: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict[str, Any]:
    input_ids, attention, labels = pad_examples([(i["input_ids"], i["labels"]) for i in batch], pad_token_id)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "visual": {slot: torch.stack([item["visual"][slot] for item in batch]) for slot in VISUAL_SLOTS},
    }


def collate(batch: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad to the longest sample; padding is masked in ``attention_mask`` and ignored in ``labels``.

    Validation samples carry ``partner`` (the target read with another patient's image, ``val/visual_gain``),
    padded the same way."""
    out = {
        "volume_id": [item["volume_id"] for item in batch],
        **_padded(batch, pad_token_id),
        "context_source": [item["context_source"] for item in batch],
    }
    if all("partner" in item for item in batch):
        out["partner"] = _padded([item["partner"] for item in batch], pad_token_id)
    return out


class _Collator:
    """Picklable collate function (worker processes need to pickle it)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate(batch, self.pad_token_id)


class ReportDataModule(LightningDataModule):
    """Training volumes split by patient into train/val; phase=rag adds the context roll.

    Args:
        data_cfg: a ``conf/data`` node (paths of reports, embeddings and context files).
        tokenizer: the model's tokenizer (special tokens of docs/method.md#model-and-training already added).
        prompt: prompt texts.
        loader: batch size, workers, sequence budget, validation split, length grouping (``conf/datamodule``).
        contexts: phase=rag's context mix (``cfg.phase.contexts``), ``None`` for phase=align/base.
        seed: seeds the context rolls and the loaders' shuffle (the run's ``seed``).
        visual_dims: expected input dims per slot (checked on load).
        visual_partners: validation samples also carry another patient's embeddings (``val/visual_gain``).
    """

    def __init__(
        self,
        data_cfg: Mapping[str, Any],
        tokenizer,
        prompt: PromptConfig,
        loader: LoaderSpec,
        *,
        contexts: ContextMix | None,
        seed: int,
        visual_dims: Mapping[str, int] | None = None,
        visual_partners: bool,
    ) -> None:
        super().__init__()
        self.data_cfg, self.tokenizer, self.prompt = data_cfg, tokenizer, prompt
        self.loader, self.contexts, self.seed = loader, contexts, seed
        self.visual_dims, self.visual_partners = visual_dims, visual_partners
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer has no pad token; the model builder must add one")
        self.train_set: ReportDataset | None = None
        self.val_set: ReportDataset | None = None

    def _roll(self) -> ContextRoll | None:
        mix = self.contexts
        if mix is None:
            return None
        sources = {
            "oracle": read_contexts(index_file(self.data_cfg, "oracle_contexts"))
            if mix.oracle_ratio > 0
            else {},
            "retrieved": read_contexts(index_file(self.data_cfg, "retrieved_contexts"))
            if mix.oracle_ratio < 1
            else {},
        }
        return ContextRoll(sources, mix)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        volumes = load_split(self.data_cfg, "train", self.visual_dims)
        train_idx, val_idx = patient_split(
            [v.volume_id for v in volumes], self.loader.val_fraction, self.loader.split_seed
        )
        roll = self._roll()
        findings = self._findings(volumes) if self.prompt.findings_sentence is not None else None

        def subset(indices: list[int], partners: bool = False) -> ReportDataset:
            items = [volumes[i] for i in indices]
            pairs = (
                patient_derangement([v.volume_id for v in items], self.loader.split_seed)
                if partners
                else None
            )
            if partners and pairs is None:
                log.warning("datamodule: the validation volumes span too few patients for val/visual_gain")
            args = (self.tokenizer, self.prompt, self.loader.max_length, roll, self.seed)
            return ReportDataset(items, *args, partners=pairs, findings=findings)

        # validation rolls contexts too (same mixture), with its own fixed draws: val loss tracks the rag task
        self.train_set, self.val_set = subset(train_idx), subset(val_idx, partners=self.visual_partners)
        log.info("datamodule: %d train / %d val volumes (patient-level split)", len(train_idx), len(val_idx))

    def train_labels(self, volumes: Sequence[Volume]) -> np.ndarray:
        """(n, 18) labels of ``volumes`` from ``data.train_labels_csv`` (a DataError naming the fix if absent)."""
        from adaragct.formats.tables import read_labels_csv

        path = self.data_cfg.get("train_labels_csv")
        if not path:
            raise DataError(
                f"conf/data/{self.data_cfg.get('name')}.yaml",
                "train_labels_csv",
                "not set: prompt.findings_sentence trains on each volume's findings, read from training labels",
                "point data.train_labels_csv at a labels CSV of the training volumes (CT-RATE layout), or set "
                "prompt.findings_sentence=null",
            )
        labels = read_labels_csv(path)
        missing = [v.volume_id for v in volumes if v.volume_id not in labels.index]
        if missing:
            raise DataError(
                path,
                "VolumeName",
                f"{len(missing)} training volumes have no labels, first {missing[:3]}",
                "use the labels CSV of the same training split",
            )
        return labels.loc[[v.volume_id for v in volumes]].to_numpy(dtype=np.int8)

    def _findings(self, volumes: Sequence[Volume]) -> dict[str, list[str]]:
        """``{volume_id: [finding names]}`` for the prompt's findings sentence (training reads the true labels;
        inference, the model's finding classifier)."""
        labels = self.train_labels(volumes)
        return {
            v.volume_id: [f for f, hit in zip(FINDINGS, row, strict=True) if hit]
            for v, row in zip(volumes, labels, strict=True)
        }

    def _loader(self, dataset: ReportDataset, shuffle: bool) -> DataLoader:
        """Training (``shuffle``): a :class:`ResumableDataLoader` whose one generator draws the shuffle and the
        workers' seeds, so Lightning's checkpoint of its position resumes the epoch exactly."""
        generator = torch.Generator().manual_seed(self.seed)
        sampler = None
        if shuffle and self.loader.length_grouping:
            # transformers' sampler: shuffle, then sort mega-batches (up to 50 batches, at least 4 per epoch) by
            # length, so a batch pads to a similar length (make bench-train: padded share and tokens/s)
            from transformers.trainer_pt_utils import LengthGroupedSampler

            sampler = LengthGroupedSampler(
                self.loader.batch_size, lengths=dataset.lengths(), generator=generator
            )
        loader_cls = ResumableDataLoader if shuffle else DataLoader
        return loader_cls(
            dataset,
            batch_size=self.loader.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.loader.num_workers,
            collate_fn=_Collator(self.tokenizer.pad_token_id),
            generator=generator,
            pin_memory=self.loader.pin_memory,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
