"""Where a ``ReportModel`` is put together (docs/method.md#model-and-training): fresh for a training stage, or from a checkpoint.

    model, phase = ModelSpec.from_config(cfg.model), PhaseSpec.from_config(cfg.phase)
    model = build_phase_model(model, phase, tokenizer)                    # phase base: projector + LoRA r=128
    model = build_phase_model(model, phase, tokenizer,                    # phase rag: merged base + LoRA r=32
                              init_from="outputs/train/demo_tiny_base/last")
    model, tokenizer, cfg = load_for_inference("outputs/train/demo_tiny_rag/last")   # ours or the release's

New-token rows (the five placeholders, the task token, the context delimiters and ``[RAG]``) are trained through
PEFT's ``trainable_token_indices`` on ``embed_tokens`` and ``lm_head``, not through a gradient mask on the full
matrices: only the ~9 rows get parameters, gradients and AdamW state (a gradient mask keeps 2 x 128k x 4096
gradients and optimizer moments for an 8B, ~12 GB, and AdamW's decoupled weight decay would still shrink every
masked row), and the rows are saved inside the PEFT adapter and merged by ``merge_and_unload``.

The file formats live apart: ours in :mod:`adaragct.models.checkpoint`, the release's in
:mod:`adaragct.models.release`; this module is the only one that assembles a model from them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from adaragct.compat.renames import saved_phase
from adaragct.constants import RAG_TOKEN, SLOT_TOKENS, VISUAL_SLOTS
from adaragct.errors import DataError
from adaragct.models import checkpoint, provenance, release
from adaragct.models.findings import FindingClassifier, read_findings
from adaragct.models.projector import VisualProjector
from adaragct.models.specs import LoraSpec, ModelSpec, PhaseSpec
from adaragct.models.vlm import ReportModel

log = logging.getLogger(__name__)


def assemble_report_model(
    llm: torch.nn.Module,
    projector: VisualProjector,
    tokenizer: Any,
    findings: FindingClassifier | None = None,
) -> ReportModel:
    """LLM + projector (+ finding classifier) + the placeholder and ``[RAG]`` ids of ``tokenizer``."""
    slot_ids = {slot: tokenizer.convert_tokens_to_ids(tok) for slot, tok in SLOT_TOKENS.items()}
    return ReportModel(llm, projector, slot_ids, tokenizer.convert_tokens_to_ids(RAG_TOKEN), findings)


def lora_config(lora: LoraSpec, new_token_ids: list[int] | None):
    """A PEFT LoraConfig from ``conf/phase: lora`` (+ trainable new-token rows in embed_tokens and lm_head)."""
    from peft import LoraConfig

    tokens = {"embed_tokens": list(new_token_ids), "lm_head": list(new_token_ids)} if new_token_ids else None
    return LoraConfig(
        r=int(lora.r),
        lora_alpha=int(lora.alpha),
        lora_dropout=float(lora.dropout),
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
        trainable_token_indices=tokens,
    )


def build_phase_model(
    model_spec: ModelSpec | Mapping[str, Any],
    phase_spec: PhaseSpec | Mapping[str, Any],
    tokenizer,
    *,
    device: str | torch.device | None = None,
    init_from: str | Path | None = None,
    projector_from: str | Path | None = None,
    findings: FindingClassifier | None = None,
    allow_base_mismatch: bool = False,
) -> ReportModel:
    """Build the LLM from its builder, merge a base checkpoint (phase rag) or load an aligned projector (stage
    base), add a fresh LoRA (none for phase align: ``phase.lora: null``), set trainability.

    Args:
        model_spec: the model (builder, path, dtype, quantization, gradient_checkpointing, visual_dims,
            visual_slots); a ``cfg.model`` node is read into a :class:`ModelSpec` first.
        phase_spec: the phase (lora, train_projector, train_new_token_rows); a ``cfg.phase`` node is read into a
            :class:`PhaseSpec` first.
        tokenizer: the model's tokenizer (special tokens are added if missing).
        device: ``"meta"`` to build without weights (size checks).
        init_from: a phase=base checkpoint directory (ours or the release's base dir) to merge and freeze.
        projector_from: a checkpoint whose projector to start from (phase base: the phase=align run, ours or
            the release's ``projector.pt`` directory).
        findings: a finding classifier fitted for this stage; otherwise the one ``init_from`` or
            ``projector_from`` carries (:mod:`adaragct.models.findings`), if any.
        allow_base_mismatch: go on (with a warning) when ``init_from``/``projector_from`` was trained on other
            base weights than the ones built now (:mod:`adaragct.models.provenance`); otherwise a DataError.

    The model's ``provenance`` (what its checkpoints record) holds the fingerprints of the base weights and of
    the starting checkpoint; None on the meta device.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    from adaragct.models.builders import new_token_ids

    spec, phase = ModelSpec.from_config(model_spec), PhaseSpec.from_config(phase_spec)
    llm = spec.build_llm(tokenizer, device=device)
    projector = VisualProjector(spec.visual_dims, llm.config.hidden_size, spec.visual_slots)
    projector.to(device=llm.get_input_embeddings().weight.device, dtype=getattr(torch, spec.dtype))
    record = None if str(device) == "meta" else {"format": provenance.FORMAT}
    if record is not None:  # before a LoRA is merged into the base's weights
        record["base"] = provenance.base_fingerprint(spec.path, spec.builder, llm)
    for field, start in (("init_from", init_from), ("projector_from", projector_from)):
        if record is not None and start is not None:
            record[field] = provenance.start_from(start, field, record["base"], allow_base_mismatch)
    if init_from is not None:
        llm = merge_base_checkpoint(llm, projector, init_from)
    if projector_from is not None:
        load_projector(projector, projector_from)
    for source in (init_from, projector_from):  # the classifier travels with the projector
        if findings is None and source is not None:
            findings = read_findings(source)
    if spec.quantization:
        llm = prepare_model_for_kbit_training(llm, use_gradient_checkpointing=spec.gradient_checkpointing)
    llm.requires_grad_(False)
    if phase.lora is not None:  # phase align has none: the projector alone learns
        ids = new_token_ids(tokenizer) if phase.train_new_token_rows else None
        llm = get_peft_model(llm, lora_config(phase.lora, ids))
    projector.requires_grad_(phase.train_projector)
    if findings is not None:
        findings.to(llm.get_input_embeddings().weight.device)
    model = assemble_report_model(llm, projector, tokenizer, findings)
    model.provenance = record
    return model


def load_projector(projector: VisualProjector, ckpt_dir: str | Path) -> None:
    """Phase base's starting projector: the projector of a phase=align checkpoint of ours (any checkpoint of ours
    holds one) or of a release directory (``projector.pt``, the release's ``pretrain_checkpoint``)."""
    ckpt_dir = Path(ckpt_dir).resolve()
    if (ckpt_dir / checkpoint.PROJECTOR).is_file():
        state = checkpoint.read_projector(ckpt_dir)
    elif (ckpt_dir / "projector.pt").is_file():
        state = release.read_release_projector(ckpt_dir / "projector.pt")
    else:
        raise FileNotFoundError(
            f"phase.projector_from={ckpt_dir}: no projector there (expected {checkpoint.PROJECTOR} or the "
            "release's projector.pt; fix: train phase=align first, or set phase.projector_from=null to start "
            "from a fresh projector)"
        )
    missing, unexpected = projector.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(
            ckpt_dir,
            "projector",
            f"slots differ from model.visual_slots/visual_dims (missing {missing[:4]}, unexpected "
            f"{unexpected[:4]})",
            "align and base must use the same model.visual_slots and model.visual_dims",
        )
    log.info("projector loaded from %s", ckpt_dir)


def merge_base_checkpoint(llm: Any, projector: VisualProjector, ckpt_dir: str | Path) -> Any:
    """Phase rag's starting point: load a base checkpoint, merge its LoRA into the LLM, load the projector.

    ``ckpt_dir`` is one of ours (adapter + projector.safetensors) or the release's base directory (a merged HF
    model whose weights ``model.path`` must already have loaded, + projector.pt).
    """
    ckpt_dir = Path(ckpt_dir).resolve()
    if checkpoint.is_base_checkpoint(ckpt_dir):
        return checkpoint.merge_base_checkpoint(llm, projector, ckpt_dir)
    if release.is_release_base(ckpt_dir):
        release.check_merged_base(llm, ckpt_dir)
        projector.load_state_dict(release.read_release_projector(ckpt_dir / "projector.pt"))
        return llm
    raise FileNotFoundError(
        f"phase.init_from={ckpt_dir}: no phase=base checkpoint there (expected "
        "adapter_config.json + projector.safetensors, or the release's projector.pt + "
        "config.json; fix: train phase=base first or point init_from at its `last`)"
    )


def load_checkpoint(
    ckpt_dir: str | Path, *, device: str | None = None, allow_base_mismatch: bool = False
) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild the model of a checkpoint of ours: (ReportModel in eval mode, tokenizer, resolved config).

    Its ``model.builder`` must be one of the package's builders (its 0.1 string form is read too), and the base
    weights (and, for phase rag, the phase=base checkpoint it merges) must be the ones it was trained on
    (``provenance.json``), checked before the weights are read where the fingerprint allows;
    ``allow_base_mismatch`` turns a mismatch into a warning.
    """
    from transformers import AutoTokenizer

    ckpt_dir = Path(ckpt_dir).resolve()
    cfg = checkpoint.read_config(ckpt_dir)
    # read (and a builder not in the allowlist refused) before anything is built
    spec = ModelSpec.from_config(cfg["model"], ckpt_dir / checkpoint.CONFIG)
    phase = PhaseSpec.from_config(saved_phase(cfg), ckpt_dir / checkpoint.CONFIG)
    tokenizer = AutoTokenizer.from_pretrained(str(ckpt_dir), local_files_only=True)
    init_from = checkpoint.init_from_of(cfg)
    recorded = provenance.read_provenance(ckpt_dir)
    base_files = provenance.weights_fingerprint(cfg["model"].get("path"))
    if recorded is None:
        provenance.warn_unrecorded(ckpt_dir, cfg["model"].get("path"))
    else:  # an 8B's 16 GB are not read for a checkpoint that cannot run on them
        start = provenance.phase_fingerprint(init_from) if init_from else None
        provenance.check_recorded(
            ckpt_dir, recorded, {"base": base_files, "init_from": start}, allow_base_mismatch
        )
    model = build_phase_model(
        spec,
        phase,
        tokenizer,
        device=device,
        init_from=init_from,
        findings=read_findings(ckpt_dir),
        allow_base_mismatch=allow_base_mismatch,
    )
    if recorded is not None and base_files is None and model.provenance is not None:  # random init: built now
        provenance.check_recorded(ckpt_dir, recorded, {"base": model.provenance["base"]}, allow_base_mismatch)
    checkpoint.load_trainable_state(model, ckpt_dir)
    return model.eval(), tokenizer, cfg


def checkpoint_kind(path: str | Path) -> str:
    """``ours`` | ``release-step`` | ``release-base``: what a checkpoint directory holds, or a DataError."""
    path = Path(path)
    if checkpoint.is_checkpoint(path):
        return "ours"
    if release.is_release_step(path):
        return "release-step"
    if release.is_release_base(path):
        return "release-base"
    found = sorted(p.name for p in path.iterdir())[:8] if path.is_dir() else "no such directory"
    raise DataError(
        path,
        "ckpt",
        f"not a checkpoint (found: {found}); expected ours (config.yaml + adapter_model.safetensors + "
        "projector.safetensors), a release AdaRAG step directory (adapter_config.json + "
        "adapter_model.safetensors + projector.pt) or a release base directory (config.json + projector.pt)",
        "point ckpt= (alias: --checkpoint) at outputs/train/<run>/last or at a release directory",
    )


def load_for_inference(
    ckpt: str | Path,
    *,
    base: str | Path | None = None,
    device: str | None = None,
    dtype: str = "float32",
    allow_base_mismatch: bool = False,
) -> tuple[Any, Any, dict[str, Any]]:
    """Any checkpoint a user may hold, ready to decode: (ReportModel, tokenizer, config).

    ``config`` is the checkpoint's resolved run config for ours. For the release's directories it is
    ``{"model": {"visual_dims": ...}}`` (read from ``projector.pt``) and carries no prompt: the release's
    checkpoints need the release's prompt strings, which the user sets in ``prompt`` (``conf/prompt``).
    ``base`` and ``dtype`` apply to the release's directories only (ours record their base and dtype);
    ``allow_base_mismatch`` to ours only (the release's record no base fingerprint: :func:`load_release`).
    """
    kind = checkpoint_kind(ckpt)
    if kind == "ours":
        return load_checkpoint(ckpt, device=device, allow_base_mismatch=allow_base_mismatch)
    if kind == "release-step":
        model, tokenizer = load_release(release.release_base_for(ckpt, base), ckpt, dtype=dtype)
    else:
        model, tokenizer = load_release(ckpt, dtype=dtype)
    dims = {slot: int(mlp[0].in_features) for slot, mlp in model.projector.items()}
    log.info("loaded a release %s checkpoint from %s: the prompt comes from conf/prompt", kind, ckpt)
    return model, tokenizer, {"model": {"visual_dims": dims}, "release": kind}


def load_release(
    base_dir: str | Path,
    step_dir: str | Path | None = None,
    *,
    visual_dims: dict[str, int] | None = None,
    dtype: str = "float32",
) -> tuple[Any, Any]:
    """The release's model: merged base (+ the AdaRAG step's LoRA and full embed/lm_head matrices).

    Args:
        base_dir: the release base directory (merged HF Llama + projector.pt + tokenizer).
        step_dir: an AdaRAG step directory (see :mod:`adaragct.models.release`); ``None``: base only.
        visual_dims: input dims per slot (default: read from projector.pt).
        dtype: weights dtype.
    """
    from peft import get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    base_dir = Path(base_dir)
    own_dir = Path(step_dir) if step_dir is not None else base_dir  # tokenizer and projector.pt
    tokenizer = AutoTokenizer.from_pretrained(str(own_dir), local_files_only=True)
    llm = LlamaForCausalLM.from_pretrained(str(base_dir), dtype=getattr(torch, dtype), local_files_only=True)
    state = release.read_release_projector(own_dir / "projector.pt")
    dims = visual_dims or {s: int(state[f"{s}.0.weight"].shape[1]) for s in VISUAL_SLOTS}
    projector = VisualProjector(dims, llm.config.hidden_size).to(getattr(torch, dtype))
    projector.load_state_dict(state)
    if step_dir is not None:
        llm = get_peft_model(llm, release.release_lora_config(own_dir))
        release.load_release_adapter(llm, own_dir / "adapter_model.safetensors")
        log.warning(
            "%s: the release's step directories record no fingerprint of their base weights: it runs on %s as "
            "given (ckpt_base, or its adapter_config.json base_model_name_or_path), unchecked",
            step_dir,
            base_dir,
        )
    return assemble_report_model(llm, projector, tokenizer).eval(), tokenizer
