"""The AdaRAG-CT release's checkpoint format, read so that users of the released weights can run us directly.

Two kinds of directory:

    base directory   a merged HF Llama (config.json + weights) + its tokenizer + ``projector.pt``
    step directory   an AdaRAG step: adapter_config.json (with ``_stage3_turn``/``_rag`` extras),
                     adapter_model.safetensors (raw PEFT keys with ``.default``, full float32 embed_tokens /
                     lm_head), projector.pt, the tokenizer, training_state.pt

``projector.pt`` is read with ``torch.load(weights_only=True)``: no pickled code runs. This module reads the
files; :func:`adaragct.models.loading.load_release` builds a model from them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from adaragct.constants import VISUAL_SLOTS
from adaragct.errors import DataError

log = logging.getLogger(__name__)


def read_release_projector(path: str | Path) -> dict[str, torch.Tensor]:
    """The release's ``projector.pt`` (keys ``{slot}.{0,2}.{weight,bias}``), without unpickling code."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    expected = {f"{s}.{i}.{p}" for s in VISUAL_SLOTS for i in (0, 2) for p in ("weight", "bias")}
    if set(state) != expected:
        raise ValueError(
            f"{path}: keys {sorted(set(state) ^ expected)[:6]} differ from the projector layout "
            "{slot}.{0,2}.{weight,bias} (fix: pass the release's base or step directory)"
        )
    return state


def is_release_base(path: str | Path) -> bool:
    """The release's base directory: a merged HF model (config.json) + its projector.pt."""
    return (Path(path) / "config.json").is_file() and (Path(path) / "projector.pt").is_file()


def is_release_step(path: str | Path) -> bool:
    """The release's AdaRAG step directory: a raw PEFT adapter + projector.pt."""
    names = ("adapter_config.json", "adapter_model.safetensors", "projector.pt")
    return all((Path(path) / name).is_file() for name in names)


def check_merged_base(llm: Any, base_dir: Path) -> None:
    """Phase rag from a release base: the LLM must already be that merged model (``model.path``)."""
    if Path(str(llm.name_or_path)).resolve() != base_dir:
        raise ValueError(
            f"phase.init_from={base_dir} is a merged release base model, but the LLM came from "
            f"{llm.name_or_path} (fix: set model.path={base_dir} too)"
        )


def release_base_for(step_dir: str | Path, base: str | Path | None = None) -> Path:
    """The release base directory under an AdaRAG step directory: ``base`` if given, else the step's
    ``adapter_config.json`` ``base_model_name_or_path`` when that is a local release base directory."""
    step_dir = Path(step_dir)
    if base is not None:
        if not is_release_base(base):
            raise DataError(
                base,
                "ckpt_base",
                "not a release base directory (a merged HF model + projector.pt)",
                "pass the release's base directory, the one its AdaRAG step was trained from",
            )
        return Path(base)
    config = step_dir / "adapter_config.json"
    named = json.loads(config.read_text()).get("base_model_name_or_path")
    if named and is_release_base(named):
        return Path(named)
    raise DataError(
        config,
        "base_model_name_or_path",
        f"is {named!r}, not a local release base directory (a merged HF model + projector.pt)",
        "pass the base directory: ckpt_base=<dir> (alias: --base <dir>)",
    )


def release_lora_config(step_dir: Path) -> Any:
    """A PEFT LoraConfig from the step's ``adapter_config.json`` (its ``_``-prefixed extras logged, not used)."""
    from peft import LoraConfig

    raw = json.loads((step_dir / "adapter_config.json").read_text())
    extras = {k: raw.pop(k) for k in list(raw) if k.startswith("_")}
    log.info("release adapter %s: extra keys %s", step_dir, extras)
    return LoraConfig(
        r=raw["r"],
        lora_alpha=raw["lora_alpha"],
        lora_dropout=raw.get("lora_dropout", 0.0),
        target_modules=sorted(raw["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_release_adapter(llm: Any, path: Path) -> None:
    """Raw PEFT keys (``...lora_A.default.weight``) load as they are; full embed/lm_head replace the base rows."""
    tensors = load_file(str(path))
    params = dict(llm.named_parameters())
    full = {"embed_tokens": llm.get_input_embeddings().weight, "lm_head": llm.get_output_embeddings().weight}
    lora_names = {n for n in params if "lora_" in n}
    loaded = set()
    with torch.no_grad():
        for key, value in tensors.items():
            target = next(
                (w for part, w in full.items() if f".{part}." in key or key.startswith(f"{part}.")), None
            )
            if "lora_" in key:
                if key not in params:
                    raise ValueError(
                        f"{path}: key {key} matches no LoRA parameter (fix: check r/target_modules "
                        "in adapter_config.json)"
                    )
                params[key].copy_(value)
                loaded.add(key)
            elif target is not None:
                if target.shape != value.shape:
                    raise ValueError(
                        f"{path}: {key} has shape {tuple(value.shape)}, the model {tuple(target.shape)}"
                        " (fix: use the step directory's tokenizer with the matching base)"
                    )
                target.copy_(value)
            else:
                raise ValueError(f"{path}: unexpected key {key}")
    if lora_names - loaded:
        raise ValueError(f"{path}: LoRA weights missing for {sorted(lora_names - loaded)[:4]}")
