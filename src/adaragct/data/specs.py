"""The datamodule's typed settings: ``LoaderSpec`` (``conf/datamodule``) and ``ContextMix`` (``conf/phase: contexts``).

Built once by the train app (``LoaderSpec.from_config(cfg.datamodule)``) and passed to
:class:`~adaragct.data.datamodule.ReportDataModule`; their values live in the YAML only (the rule of
:mod:`adaragct.specs`: no field here has a default but ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

from adaragct.specs import Spec, check, check_counts, check_flags, number, whole


@dataclass(frozen=True, kw_only=True)
class LoaderSpec(Spec):
    """How training batches are cut and served (``conf/datamodule/default.yaml``)."""

    KEY = "datamodule"

    batch_size: int
    """Samples per batch, per device (``accumulate_grad_batches`` multiplies it per optimizer step)."""
    num_workers: int
    """DataLoader worker processes; 0 loads in the training process."""
    max_length: int
    """Tokens of prompt + report (+ phase=rag context spans); a longer sample is an error, never cut."""
    val_fraction: float
    """Share of the training volumes held out for validation, split by patient (no leakage), in [0, 1)."""
    split_seed: int
    """Seed of the patient-level train/validation split (and of the validation partners of val/visual_gain)."""
    pin_memory: bool
    """Page-locked batches (faster host-to-GPU copies)."""
    length_grouping: bool
    """Shuffle, then batch samples of similar length together (less padding; one device only)."""

    def __post_init__(self) -> None:
        check_counts(
            self, "datamodule", ("batch_size", "max_length"), "set it in conf/datamodule or your experiment"
        )
        check(
            whole(self.num_workers),
            "datamodule.num_workers",
            self.num_workers,
            "must be a whole number >= 0",
            "0 loads batches in the training process",
        )
        check(
            number(self.val_fraction) and 0.0 <= self.val_fraction < 1.0,
            "datamodule.val_fraction",
            self.val_fraction,
            "must be in [0, 1)",
            "e.g. 0.1 holds out a tenth of the training patients for validation",
        )
        check(
            whole(self.split_seed, -(2**63)),
            "datamodule.split_seed",
            self.split_seed,
            "must be a whole number",
            "any integer",
        )
        check_flags(self, "datamodule", "pin_memory", "length_grouping")


@dataclass(frozen=True, kw_only=True)
class ContextMix(Spec):
    """Phase rag's per-sample context roll (``conf/phase/rag.yaml: contexts``; docs/method.md#training-batches):
    no contexts with ``none_prob``, else the oracle source with ``oracle_ratio``, else the retrieved one."""

    KEY = "phase.contexts"

    none_prob: float
    """Probability that a sample gets no context at all."""
    oracle_ratio: float
    """Among samples with contexts, the share drawn from the oracle contexts (the rest: retrieved)."""
    max_sentences: int
    """At most this many sentences of a report get a ``[RAG]`` + context span."""
    per_sentence: int
    """Contexts joined per span (shuffled, space-joined)."""

    def __post_init__(self) -> None:
        for key in ("none_prob", "oracle_ratio"):
            value = getattr(self, key)
            check(
                number(value) and 0.0 <= value <= 1.0,
                f"phase.contexts.{key}",
                value,
                "must be in [0, 1]",
                "conf/phase: contexts.none_prob and contexts.oracle_ratio are probabilities",
            )
        check_counts(
            self,
            "phase.contexts",
            ("max_sentences", "per_sentence"),
            "conf/phase/rag.yaml sets 4 sentences of 3 contexts each",
        )
