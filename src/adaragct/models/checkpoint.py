"""Checkpoints (SPEC 4): trainable state only, in safetensors, plus the tokenizer and the resolved config.

A checkpoint directory (``outputs/train/<run>/step-000100/``, with ``last`` pointing at the newest)::

    adapter_model.safetensors, adapter_config.json   PEFT LoRA (+ new-token rows via trainable_token_indices)
    projector.safetensors                            {slot}.{0,2}.{weight,bias}
    new_token_rows.safetensors                       token_ids + the trained embed_tokens / lm_head rows
    tokenizer.json, tokenizer_config.json            the tokenizer with the SPEC 4 special tokens
    config.yaml                                      the resolved run config (model, stage, init_from, ...)

The base LLM is never written (it is rebuilt from ``model.builder`` and its path, or, for ``model=tiny``, from
its fixed seed), so a checkpoint of an 8B LoRA is megabytes. A directory is written under a temporary name
and renamed, so a crash never leaves a half-written checkpoint behind ``last``.

The release's checkpoints are read too (``load_release``): its base directory (a merged HF model +
``projector.pt``) and its AdaRAG step directory (raw PEFT keys with ``.default``, full float32 embed_tokens /
lm_head). ``projector.pt`` is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adaragct.constants import VISUAL_SLOTS
from adaragct.errors import DataError
from adaragct.models.projector import VisualProjector

log = logging.getLogger(__name__)
LAST = "last"


def _token_rows(llm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained new-token rows (PEFT trainable-token values) keyed by ``embed_tokens`` / ``lm_head``."""
    rows = {}
    for name, module in llm.named_modules():
        deltas = getattr(module, "trainable_tokens_delta", None)
        if deltas is not None and "default" in deltas:
            rows[name.rsplit(".", 2)[-2] if name.endswith("token_adapter") else name.rsplit(".", 1)[-1]] = (
                deltas["default"].detach().float().cpu().contiguous()
            )
    return rows


def _sort_target_modules(path: Path) -> None:
    """PEFT keeps ``target_modules`` as a set and writes it in set order, which follows the per-process string
    hash seed (PYTHONHASHSEED): two identical runs wrote different adapter_config.json bytes. Sorted, they agree."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def save_checkpoint(root: str | Path, name: str, model: Any, tokenizer: Any, config_yaml: str) -> Path:
    """Write ``root/name`` atomically and point ``root/last`` at it; return the directory.

    Args:
        root: the run's checkpoint directory (``checkpoint_dir``).
        name: the checkpoint's folder name (``step-000100``).
        model: a ``ReportModel`` whose ``llm`` is a PeftModel.
        tokenizer: the tokenizer.
        config_yaml: the resolved run config as YAML text.
    """
    from adaragct.models.builders import new_token_ids

    root = Path(root)
    final, tmp = root / name, root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.llm.save_pretrained(str(tmp), safe_serialization=True)
    (tmp / "README.md").unlink(missing_ok=True)  # PEFT's model card: not ours to publish
    _sort_target_modules(tmp / "adapter_config.json")
    projector = {k: v.detach().float().cpu().contiguous() for k, v in model.projector.state_dict().items()}
    save_file(projector, str(tmp / "projector.safetensors"))
    rows = _token_rows(model.llm)
    rows["token_ids"] = torch.tensor(new_token_ids(tokenizer), dtype=torch.long)
    save_file(rows, str(tmp / "new_token_rows.safetensors"))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "config.yaml").write_text(config_yaml)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    link = root / f".tmp-{LAST}"
    link.unlink(missing_ok=True)
    link.symlink_to(name, target_is_directory=True)
    os.replace(link, root / LAST)
    return final


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


def _is_release_base(path: str | Path) -> bool:
    """The release's base directory: a merged HF model (config.json) + its projector.pt."""
    return (Path(path) / "config.json").is_file() and (Path(path) / "projector.pt").is_file()


def merge_base_checkpoint(llm: Any, projector: VisualProjector, ckpt_dir: str | Path) -> Any:
    """Stage rag's starting point: load a base checkpoint, merge its LoRA into the LLM, load the projector.

    ``ckpt_dir`` is one of ours (adapter + projector.safetensors) or the release's base directory (a merged HF
    model whose weights ``model.path`` must already have loaded, + projector.pt).
    """
    from peft import PeftModel

    ckpt_dir = Path(ckpt_dir).resolve()
    if (ckpt_dir / "adapter_config.json").is_file() and (ckpt_dir / "projector.safetensors").is_file():
        llm = PeftModel.from_pretrained(llm, str(ckpt_dir)).merge_and_unload()
        projector.load_state_dict(load_file(str(ckpt_dir / "projector.safetensors")))
    elif _is_release_base(ckpt_dir):
        if Path(str(llm.name_or_path)).resolve() != ckpt_dir:
            raise ValueError(
                f"stage.init_from={ckpt_dir} is a merged release base model, but the LLM came from "
                f"{llm.name_or_path} (fix: set model.path={ckpt_dir} too)"
            )
        projector.load_state_dict(read_release_projector(ckpt_dir / "projector.pt"))
    else:
        raise FileNotFoundError(
            f"stage.init_from={ckpt_dir}: no stage=base checkpoint there (expected "
            "adapter_config.json + projector.safetensors, or the release's projector.pt + "
            "config.json; fix: train stage=base first or point init_from at its `last`)"
        )
    return llm


def load_checkpoint(ckpt_dir: str | Path, *, device: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild the model of a checkpoint of ours: (ReportModel in eval mode, tokenizer, resolved config)."""
    import yaml
    from peft import set_peft_model_state_dict
    from transformers import AutoTokenizer

    from adaragct.models.vlm import build_stage_model

    ckpt_dir = Path(ckpt_dir).resolve()
    cfg = yaml.safe_load((ckpt_dir / "config.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(ckpt_dir), local_files_only=True)
    init_from = cfg["stage"].get("init_from") if cfg["stage"]["name"] == "rag" else None
    # a checkpoint holds only what was trained: the base LLM (and, for stage=rag, the stage=base checkpoint it
    # was merged from) are read from where they were at training time; a tiny model would otherwise be
    # random-initialised in silence
    for field, where in (("model.path", cfg["model"].get("path")), ("stage.init_from", init_from)):
        if where and not Path(where).exists():
            raise DataError(
                ckpt_dir / "config.yaml",
                field,
                f"{where} does not exist on this machine",
                f"set {field} in that file to where it is now (a checkpoint stores only the trained weights)",
            )
    model = build_stage_model(cfg["model"], cfg["stage"], tokenizer, device=device, init_from=init_from)
    result = set_peft_model_state_dict(model.llm, load_file(str(ckpt_dir / "adapter_model.safetensors")))
    missing = [k for k in result.missing_keys if "lora_" in k or "trainable_tokens" in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{ckpt_dir}/adapter_model.safetensors: missing {missing[:4]} unexpected "
            f"{list(result.unexpected_keys)[:4]} (fix: the checkpoint and config.yaml disagree)"
        )
    model.projector.load_state_dict(load_file(str(ckpt_dir / "projector.safetensors")))
    return model.eval(), tokenizer, cfg


def checkpoint_kind(path: str | Path) -> str:
    """``ours`` | ``release-step`` | ``release-base``: what a checkpoint directory holds, or a DataError."""
    path = Path(path)
    if (path / "config.yaml").is_file() and (path / "adapter_model.safetensors").is_file():
        return "ours"
    if all(
        (path / f).is_file() for f in ("adapter_config.json", "adapter_model.safetensors", "projector.pt")
    ):
        return "release-step"
    if _is_release_base(path):
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


def release_base_for(step_dir: str | Path, base: str | Path | None = None) -> Path:
    """The release base directory under an AdaRAG step directory: ``base`` if given, else the step's
    ``adapter_config.json`` ``base_model_name_or_path`` when that is a local release base directory."""
    step_dir = Path(step_dir)
    if base is not None:
        if not _is_release_base(base):
            raise DataError(
                base,
                "ckpt_base",
                "not a release base directory (a merged HF model + projector.pt)",
                "pass the release's base directory, the one its AdaRAG step was trained from",
            )
        return Path(base)
    config = step_dir / "adapter_config.json"
    named = json.loads(config.read_text()).get("base_model_name_or_path")
    if named and _is_release_base(named):
        return Path(named)
    raise DataError(
        config,
        "base_model_name_or_path",
        f"is {named!r}, not a local release base directory (a merged HF model + projector.pt)",
        "pass the base directory: ckpt_base=<dir> (alias: --base <dir>)",
    )


def load_for_inference(
    ckpt: str | Path, *, base: str | Path | None = None, device: str | None = None, dtype: str = "float32"
) -> tuple[Any, Any, dict[str, Any]]:
    """Any checkpoint a user may hold, ready to decode: (ReportModel, tokenizer, config).

    ``config`` is the checkpoint's resolved run config for ours. For the release's directories it is
    ``{"model": {"visual_dims": ...}}`` (read from ``projector.pt``) and carries no prompt: the release's
    checkpoints need the release's prompt strings, which the user sets in ``prompt`` (``conf/prompt``).
    ``base`` and ``dtype`` apply to the release's directories only (ours record their base and dtype).
    """
    kind = checkpoint_kind(ckpt)
    if kind == "ours":
        return load_checkpoint(ckpt, device=device)
    if kind == "release-step":
        model, tokenizer = load_release(release_base_for(ckpt, base), ckpt, dtype=dtype)
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
        step_dir: an AdaRAG step directory (adapter_config.json with ``_stage3_turn``/``_rag``,
            adapter_model.safetensors with raw ``.default`` keys, projector.pt, tokenizer); ``None``: base only.
        visual_dims: input dims per slot (default: read from projector.pt).
        dtype: weights dtype.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    from adaragct.constants import RAG_TOKEN, SLOT_TOKENS
    from adaragct.models.vlm import ReportModel

    base_dir = Path(base_dir)
    tok_dir = Path(step_dir) if step_dir is not None else base_dir
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    llm = LlamaForCausalLM.from_pretrained(str(base_dir), dtype=getattr(torch, dtype), local_files_only=True)
    state = read_release_projector((Path(step_dir) if step_dir else base_dir) / "projector.pt")
    dims = visual_dims or {s: int(state[f"{s}.0.weight"].shape[1]) for s in VISUAL_SLOTS}
    projector = VisualProjector(dims, llm.config.hidden_size).to(getattr(torch, dtype))
    projector.load_state_dict(state)
    if step_dir is not None:
        raw = json.loads((Path(step_dir) / "adapter_config.json").read_text())
        extras = {k: raw.pop(k) for k in list(raw) if k.startswith("_")}
        log.info("release adapter %s: extra keys %s", step_dir, extras)
        config = LoraConfig(
            r=raw["r"],
            lora_alpha=raw["lora_alpha"],
            lora_dropout=raw.get("lora_dropout", 0.0),
            target_modules=sorted(raw["target_modules"]),
            bias="none",
            task_type="CAUSAL_LM",
        )
        llm = get_peft_model(llm, config)
        _load_release_adapter(llm, Path(step_dir) / "adapter_model.safetensors")
    slot_ids = {s: tokenizer.convert_tokens_to_ids(t) for s, t in SLOT_TOKENS.items()}
    return ReportModel(llm, projector, slot_ids, tokenizer.convert_tokens_to_ids(RAG_TOKEN)).eval(), tokenizer


def _load_release_adapter(llm: Any, path: Path) -> None:
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
