"""Our checkpoint format (docs/method.md#model-and-training): trainable state only, in safetensors, plus the tokenizer and the resolved config.

A checkpoint directory (``outputs/train/<run>/step-000100/``, with ``last`` pointing at the newest)::

    adapter_model.safetensors, adapter_config.json   PEFT LoRA + the new-token rows (trainable_token_indices);
                                                     absent for phase align (projector only)
    projector.safetensors                            {slot}.{0,2}.{weight,bias}
    findings.safetensors                             the finding classifier (prompt.findings_sentence only)
    tokenizer.json, tokenizer_config.json            the tokenizer with the special tokens (docs/method.md#model-and-training)
    config.yaml                                      the resolved run config (model, stage, init_from, ...)
    provenance.json                                  fingerprints of the base weights and of the starting
                                                     checkpoint it was trained on (adaragct.models.provenance)

The base LLM is never written (it is rebuilt from ``model.builder`` and its path, or, for ``model=tiny``, from
its fixed seed), so a checkpoint of an 8B LoRA is megabytes; ``provenance.json`` says which base weights those
were, and loading it on others is an error. A directory is written under a temporary name
and renamed, so a crash never leaves a half-written checkpoint behind ``last``. Checkpoints written before
issue 16 also hold ``new_token_rows.safetensors`` (a copy of the rows inside the adapter); nothing reads it.

This module reads and writes the files; :mod:`adaragct.models.loading` builds a model from them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adaragct.artifacts import LAST
from adaragct.compat.renames import saved_phase
from adaragct.errors import DataError

ADAPTER, PROJECTOR, CONFIG = "adapter_model.safetensors", "projector.safetensors", "config.yaml"
# what FSDP and activation checkpointing insert between a module and its children in parameter names
WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def _sort_target_modules(path: Path) -> None:
    """PEFT keeps ``target_modules`` as a set and writes it in set order, which follows the per-process string
    hash seed (PYTHONHASHSEED): two identical runs wrote different adapter_config.json bytes. Sorted, they agree."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def unwrapped_name(name: str) -> str:
    """A parameter's name without the FSDP / activation-checkpointing wrappers between a module and its children:
    the name in the unwrapped model, which is how state dicts gathered through a strategy and checkpoints spell it."""
    for part in WRAPPER_PARTS:
        name = name.replace(part, "")
    return name


def _under(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a submodule (``llm.``, ``projector.``), named relative to it."""
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _save_adapter(llm: Any, directory: Path, state: Mapping[str, torch.Tensor] | None) -> None:
    """PEFT's adapter files, from the live ``llm`` or from its gathered ``state`` (unwrapped names).

    PEFT picks the adapter's tensors out of a state dict by walking the model's modules, so under FSDP it must be
    given the live (wrapped) names; the wrapper parts are then taken out of the written keys again.
    """
    if state is None:
        llm.save_pretrained(str(directory), safe_serialization=True)
        return
    live = {unwrapped_name(name): name for name, _ in llm.named_parameters()}
    llm.save_pretrained(
        str(directory), safe_serialization=True, state_dict={live[k]: v for k, v in state.items()}
    )
    tensors = load_file(str(directory / ADAPTER))
    if any(unwrapped_name(k) != k for k in tensors):
        clean = {unwrapped_name(k): v for k, v in tensors.items()}
        save_file(clean, str(directory / ADAPTER), metadata={"format": "pt"})


def save_checkpoint(
    root: str | Path,
    name: str,
    model: Any,
    tokenizer: Any,
    config_yaml: str,
    state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``root/name`` atomically and point ``root/last`` at it; return the directory.

    Args:
        root: the run's checkpoint directory (``checkpoint_dir``).
        name: the checkpoint's folder name (``step-000100``).
        model: a ``ReportModel`` whose ``llm`` is a PeftModel.
        tokenizer: the tokenizer.
        config_yaml: the resolved run config as YAML text.
        state: the checkpoint's tensors (trainable parameters + projector, unwrapped ``ReportModel`` names)
            when the live module holds only a shard of them (FSDP: ``adaragct.train.callbacks`` gathers them
            through the strategy); ``None``: read from ``model``.
    """
    root = Path(root)
    final, tmp = root / name, root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if hasattr(model.llm, "peft_config"):  # phase align trains no LoRA: the projector is the checkpoint
        _save_adapter(model.llm, tmp, None if state is None else _under(state, "llm."))
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's model card: not ours to publish
        _sort_target_modules(tmp / "adapter_config.json")
    projector = model.projector.state_dict() if state is None else _under(state, "projector.")
    save_file({k: v.detach().float().cpu().contiguous() for k, v in projector.items()}, str(tmp / PROJECTOR))
    if getattr(model, "findings", None) is not None:
        from adaragct.models.findings import save_findings

        save_findings(model.findings, tmp)
    tokenizer.save_pretrained(str(tmp))
    (tmp / CONFIG).write_text(config_yaml)
    if getattr(model, "provenance", None) is not None:
        from adaragct.models.provenance import write_provenance

        write_provenance(tmp, model.provenance)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    point(root, LAST, name)
    return final


def point(root: str | Path, link: str, name: str) -> None:
    """Make ``root/link`` a relative symlink to ``root/name``, atomically (``last``, ``best``)."""
    tmp = Path(root) / f".tmp-{link}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name, target_is_directory=True)
    os.replace(tmp, Path(root) / link)


def is_checkpoint(path: str | Path) -> bool:
    """A full checkpoint of ours (what ``load_checkpoint`` reads); phase align's has no adapter."""
    return (Path(path) / CONFIG).is_file() and (Path(path) / PROJECTOR).is_file()


def is_base_checkpoint(path: str | Path) -> bool:
    """Enough of a checkpoint of ours to merge as phase rag's starting point (adapter + projector)."""
    return (Path(path) / "adapter_config.json").is_file() and (Path(path) / PROJECTOR).is_file()


def init_from_of(cfg: Mapping[str, Any]) -> str | None:
    """The phase=base checkpoint a phase=rag run merged (``phase.init_from``); ``None`` for phase=base."""
    phase = saved_phase(cfg)
    return phase.get("init_from") if phase["name"] == "rag" else None


def read_config(ckpt_dir: Path) -> dict[str, Any]:
    """The checkpoint's resolved run config, after checking that what it was built on is still here.

    A checkpoint holds only what was trained: the base LLM (and, for phase=rag, the phase=base checkpoint it was
    merged from) are read from where they were at training time; a tiny model would otherwise be
    random-initialised in silence.
    """
    import yaml

    cfg = yaml.safe_load((ckpt_dir / CONFIG).read_text())
    for field, where in (("model.path", cfg["model"].get("path")), ("phase.init_from", init_from_of(cfg))):
        if where and not Path(where).exists():
            raise DataError(
                ckpt_dir / CONFIG,
                field,
                f"{where} does not exist on this machine",
                f"set {field} in that file to where it is now (a checkpoint stores only the trained weights)",
            )
    return cfg


def load_trainable_state(model: Any, ckpt_dir: Path) -> None:
    """Load the adapter (LoRA + new-token rows) and the projector into a freshly built stage model."""
    from peft import set_peft_model_state_dict

    if hasattr(model.llm, "peft_config") or (ckpt_dir / ADAPTER).is_file():
        if not (ckpt_dir / ADAPTER).is_file() or not hasattr(model.llm, "peft_config"):
            raise ValueError(
                f"{ckpt_dir}: {ADAPTER} and config.yaml's phase.lora disagree (fix: the checkpoint is incomplete "
                "or its config.yaml was edited)"
            )
        result = set_peft_model_state_dict(model.llm, load_file(str(ckpt_dir / ADAPTER)))
        missing = [k for k in result.missing_keys if "lora_" in k or "trainable_tokens" in k]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"{ckpt_dir}/{ADAPTER}: missing {missing[:4]} unexpected "
                f"{list(result.unexpected_keys)[:4]} (fix: the checkpoint and config.yaml disagree)"
            )
    model.projector.load_state_dict(read_projector(ckpt_dir))


def read_projector(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """The projector's tensors of a checkpoint of ours (``{slot}.{0,2}.{weight,bias}``)."""
    return load_file(str(Path(ckpt_dir) / PROJECTOR))


def merge_base_checkpoint(llm: Any, projector: torch.nn.Module, ckpt_dir: Path) -> Any:
    """A phase=base checkpoint of ours merged into ``llm`` (returned) and loaded into ``projector``."""
    from peft import PeftModel

    llm = PeftModel.from_pretrained(llm, str(ckpt_dir)).merge_and_unload()
    projector.load_state_dict(read_projector(ckpt_dir))
    return llm
