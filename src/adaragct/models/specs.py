"""The model's and the training phase's typed settings: ``ModelSpec`` (``conf/model``) and ``PhaseSpec``
(``conf/phase``), with ``LoraSpec`` (``phase.lora``).

Built once where a config enters (the train app: ``ModelSpec.from_config(cfg.model)``; a checkpoint:
``ModelSpec.from_config(cfg["model"], where=<its config.yaml>)``) and passed to
:func:`~adaragct.models.loading.build_phase_model` and
:class:`~adaragct.models.module.ReportGenerationModule`. Values live in the YAML only (the rule of
:mod:`adaragct.specs`).

The LLM builder is a ``_target_`` node with the builder's own keyword arguments::

    builder:
      _target_: adaragct.models.builders.llama_tiny
      size: tiny

and the arguments every builder takes (``path``, ``dtype``, ``quantization``, ``gradient_checkpointing``) are
``model.*`` keys, read by more than the builder (the tokenizer, the provenance check, the projector's dtype). The
target must be one of :data:`adaragct.models.builders.BUILDERS`: a shared checkpoint's config never chooses which
code is imported, so it is looked up there (never imported by name, as Hydra's ``instantiate`` would).

0.1's form ``builder: adaragct.models.builders.llama_tiny`` (a string, with the tiny size as ``model.size``) is
still read, with a warning, so configs users wrote and checkpoints written before this change keep working.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from adaragct.constants import VISUAL_SLOTS
from adaragct.data.specs import ContextMix, LoaderSpec
from adaragct.errors import DataError
from adaragct.specs import Spec, SpecError, check, check_counts, check_flags, check_name, number, whole

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = ("4bit", "8bit")
# what build_phase_model passes every builder itself (from model.* and the call): never a builder.* key
COMMON_BUILDER_ARGS = ("tokenizer", "path", "device", "dtype", "quantization", "gradient_checkpointing")


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Spec):
    """The LLM, its weights and the visual inputs (``conf/model/*.yaml``)."""

    KEY = "model"
    RENAMED: ClassVar[Mapping[str, str]] = {
        "size": "it is model.builder.size now (the tiny builder's own argument)"
    }
    DERIVED = ("builder_args",)

    name: str
    """Labels runs and checkpoints (``run_name``: ``<data>_<model>_<phase>``)."""
    builder: str
    """The builder function (``model.builder._target_``), one of :data:`adaragct.models.builders.BUILDERS`."""
    builder_args: Mapping[str, Any]
    """The builder's own keyword arguments (``model.builder`` less ``_target_``; ``size`` for the tiny Llama)."""
    path: str | None
    """Directory of the weights and tokenizer (for a tiny model: the pretrained tiny LM, or a bare tokenizer)."""
    dtype: str
    """Weights dtype: float32, bfloat16 or float16 (also the projector's)."""
    quantization: str | None = None
    """bitsandbytes quantisation of the frozen LLM (QLoRA when training): 4bit, 8bit, or None (not set: none)."""
    gradient_checkpointing: bool
    """Recompute activations in the backward pass: far less memory, ~20% slower steps."""
    visual_dims: Mapping[str, int]
    """Input dimension per visual slot (``whole_ct``: 512 CT-CLIP, organs: 256)."""
    visual_slots: tuple[str, ...] | None = None
    """The slots whose embeddings reach the model (None: not set, all of them; a checkpoint before the key)."""

    @classmethod
    def prepare(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        """0.1's string ``builder`` (and its ``size``) as the node of today, with a warning."""
        builder = node.get("builder")
        if isinstance(builder, str):
            log.warning(
                "%s: model.builder is the string %r, the form of 0.1; write it as a node "
                "(builder: {_target_: %s}) and the tiny size as model.builder.size",
                where,
                builder,
                builder,
            )
            from adaragct.models.builders import builder_named

            function = builder_named(builder, where)  # refused before anything else is read: never imported
            node["builder"] = {"_target_": builder}
            size = node.pop("size", None)
            if size is not None and "size" in inspect.signature(function).parameters:
                node["builder"]["size"] = size  # else the function fixes the size (llama_tiny_large)
        return node

    @classmethod
    def fields_from(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        builder = node.get("builder")
        if not isinstance(builder, Mapping) or "_target_" not in builder:
            raise DataError(
                where,
                "model.builder",
                f"is {builder!r}, not a node with a _target_",
                "write builder: {_target_: adaragct.models.builders.<builder>, <its arguments>}",
            )
        args = {k: v for k, v in builder.items() if k != "_target_"}
        slots = node.get("visual_slots")
        return {
            **node,
            "builder": builder["_target_"],
            "builder_args": args,
            "visual_slots": None if slots is None else tuple(slots),
        }

    def __post_init__(self) -> None:
        check_name("model.name", self.name, "tiny")
        check(
            self.dtype in DTYPES,
            "model.dtype",
            self.dtype,
            f"is not one of {', '.join(DTYPES)}",
            "bf16 needs a GPU that has it; CPU runs use float32",
        )
        check(
            self.quantization is None or self.quantization in QUANTIZATIONS,
            "model.quantization",
            self.quantization,
            "must be null, 4bit or 8bit",
            "set model.quantization=null (no quantisation), 4bit or 8bit (bitsandbytes)",
        )
        check_flags(self, "model", "gradient_checkpointing")
        check(
            self.path is None or isinstance(self.path, str),
            "model.path",
            self.path,
            "must be a directory path or null",
            "set model.path to the model's directory",
        )
        dims = self.visual_dims
        check(
            isinstance(dims, Mapping)
            and bool(dims)
            and all(k in VISUAL_SLOTS and whole(v, 1) for k, v in dims.items()),
            "model.visual_dims",
            dims,
            f"must map slots of {list(VISUAL_SLOTS)} to input dimensions >= 1",
            "e.g. {whole_ct: 512, lung: 256, heart: 256, esophagus: 256, aorta: 256}",
        )
        slots = self.visual_slots
        check(
            slots is None
            or (bool(slots) and all(s in dims for s in slots) and len(set(slots)) == len(slots)),
            "model.visual_slots",
            None if slots is None else list(slots),
            f"must be a non-empty list of distinct slots of model.visual_dims ({list(dims)})",
            "e.g. [whole_ct] for the whole-CT-only ablation",
        )
        self._check_builder()

    def _check_builder(self) -> None:
        """The target is an allowlisted builder, and ``builder_args`` bind to its signature."""
        from adaragct.models.builders import builder_named

        try:
            function = builder_named(self.builder, "conf/model")
        except DataError as error:  # named again by from_config with the file it came from
            raise SpecError("model.builder._target_", self.builder, error.problem, error.fix) from None
        common = sorted(set(self.builder_args) & set(COMMON_BUILDER_ARGS))
        check(
            not common,
            f"model.builder.{common[0] if common else ''}",
            self.builder_args,
            "is set by build_phase_model from model.* (or the call), not a builder argument",
            f"set model.{common[0] if common else ''} instead",
        )
        # a builder's **kwargs carry the common arguments on to build_llama: its own arguments are the named ones
        own = [
            n
            for n, p in inspect.signature(function).parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in COMMON_BUILDER_ARGS
        ]
        unknown = sorted(set(self.builder_args) - set(own))
        check(
            not unknown,
            "model.builder",
            dict(self.builder_args),
            f"does not fit {self.builder}: unknown arguments {unknown}",
            f"give the builder only its own arguments ({', '.join(own) or 'none'})",
        )

    def builder_function(self):
        """The builder function (from the allowlist)."""
        from adaragct.models.builders import builder_named

        return builder_named(self.builder)

    def build_llm(self, tokenizer: Any, *, device: Any = None) -> Any:
        """Call the builder: ``builder(tokenizer, path=, device=, dtype=, quantization=, gradient_checkpointing=,
        **builder_args)``."""
        return self.builder_function()(
            tokenizer,
            path=self.path,
            device=device,
            dtype=self.dtype,
            quantization=self.quantization,
            gradient_checkpointing=self.gradient_checkpointing,
            **self.builder_args,
        )


@dataclass(frozen=True, kw_only=True)
class LoraSpec(Spec):
    """The LoRA a phase trains on the frozen LLM (``conf/phase: lora``)."""

    KEY = "phase.lora"

    r: int
    """Rank of the low-rank update."""
    alpha: int
    """Scale numerator (the update is scaled by alpha / r)."""
    dropout: float
    """Dropout on the LoRA branch's input, in [0, 1)."""
    target_modules: tuple[str, ...]
    """The LLM's linear layers that get a LoRA (``q_proj``, ``v_proj``, ...)."""

    @classmethod
    def fields_from(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        modules = node["target_modules"]
        return {**node, "target_modules": tuple(modules) if isinstance(modules, list | tuple) else modules}

    def __post_init__(self) -> None:
        check_counts(self, "phase.lora", ("r", "alpha"), "e.g. r=32, alpha=64")
        check(
            number(self.dropout) and 0.0 <= self.dropout < 1.0,
            "phase.lora.dropout",
            self.dropout,
            "must be in [0, 1)",
            "e.g. 0.05",
        )
        check(
            isinstance(self.target_modules, tuple)
            and bool(self.target_modules)
            and all(isinstance(m, str) for m in self.target_modules),
            "phase.lora.target_modules",
            self.target_modules,
            "must be a non-empty list of module names",
            "e.g. [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]",
        )


@dataclass(frozen=True, kw_only=True)
class PhaseSpec(Spec):
    """One training phase: what is trained, from what, with which optimizer (``conf/phase/{align,base,rag}.yaml``)."""

    KEY = "phase"

    name: str
    """align | base | rag (labels the run; rag merges ``init_from`` and rolls contexts)."""
    lora: LoraSpec | None
    """The LoRA to train, or None (phase align: the projectors alone learn)."""
    train_projector: bool
    """The visual projector is trained (false: frozen, as the release keeps the aligned projector)."""
    train_new_token_rows: bool
    """The embedding and LM-head rows of the new tokens (placeholders, ``[RAG]``, delimiters) are trained."""
    init_from: str | None
    """Phase rag: the phase=base checkpoint to merge and freeze; None elsewhere."""
    projector_from: str | None = None
    """A checkpoint whose projector to start from (phase base after align); None: not set, a fresh projector."""
    optimizer: Mapping[str, Any]
    """A ``_partial_`` ``_target_`` node of the optimizer (instantiated by the train app)."""
    scheduler: Mapping[str, Any]
    """A ``_partial_`` ``_target_`` node of the LR schedule, completed with the optimizer and the run's steps."""
    contexts: ContextMix | None
    """Phase rag's context roll (:class:`~adaragct.data.specs.ContextMix`); None: plain reports."""
    rag_loss_weight: float
    """Weight of the ``[RAG]`` token in the loss (>1 up-weights it)."""

    @classmethod
    def fields_from(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        lora, contexts = node.get("lora"), node.get("contexts")
        return {
            **node,
            "lora": None if lora is None else LoraSpec.from_config(lora, where),
            "contexts": None if contexts is None else ContextMix.from_config(contexts, where),
        }

    def __post_init__(self) -> None:
        check_name("phase.name", self.name, "rag")
        check_flags(self, "phase", "train_projector", "train_new_token_rows")
        for key in ("init_from", "projector_from"):
            value = getattr(self, key)
            check(
                value is None or isinstance(value, str),
                f"phase.{key}",
                value,
                "must be a checkpoint directory or null",
                f"set phase.{key} to a checkpoint directory (.../last) or null",
            )
        for key in ("optimizer", "scheduler"):
            value = getattr(self, key)
            check(
                isinstance(value, Mapping) and isinstance(value.get("_target_"), str),
                f"phase.{key}",
                value,
                "must be a node with a _target_",
                f"see conf/phase/base.yaml: {key}",
            )
        check(
            number(self.rag_loss_weight) and self.rag_loss_weight > 0,
            "phase.rag_loss_weight",
            self.rag_loss_weight,
            "must be a number > 0",
            "1.0 weighs [RAG] as any token",
        )
        check(
            not (self.train_new_token_rows and self.lora is None),
            "phase.train_new_token_rows",
            self.train_new_token_rows,
            "needs a LoRA (the rows are trained through PEFT) but phase.lora is null",
            "set phase.train_new_token_rows=false, or give phase.lora",
        )


@dataclass(frozen=True)
class TrainSpecs:
    """The specs a training run passes down, read from its config once (the train app)."""

    model: ModelSpec
    """``cfg.model``."""
    phase: PhaseSpec
    """``cfg.phase``."""
    loader: LoaderSpec
    """``cfg.datamodule``."""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrainSpecs:
        """The three specs of a composed train config (errors name ``conf/<group>`` and the key)."""
        return cls(
            ModelSpec.from_config(cfg["model"]),
            PhaseSpec.from_config(cfg["phase"]),
            LoaderSpec.from_config(cfg["datamodule"]),
        )
