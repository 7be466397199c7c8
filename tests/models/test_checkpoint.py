"""Checkpoints: exact files, save -> reload gives identical logits (both stages), release import round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from adaragct.constants import SPECIAL_TOKENS, VISUAL_SLOTS
from adaragct.models.checkpoint import save_checkpoint
from adaragct.models.loading import build_phase_model, load_checkpoint, load_release
from adaragct.models.release import read_release_projector
from tests.models.conftest import (
    CHECKPOINT_FILES,
    model_cfg,
    perturb_trainable,
    phase_cfg,
    random_visual,
    write_release_base,
    write_release_step,
)

ROW_MODULES = ("lm_head", "model.embed_tokens")


def _inputs(tokenizer) -> torch.Tensor:
    slots = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS[:5]]
    return torch.tensor(
        [[*slots, 30, 31, tokenizer.convert_tokens_to_ids("[RAG]"), 32], [33, *slots, 34, 35, 36]]
    )


def _logits(model, ids) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(ids, torch.ones_like(ids), random_visual(ids.shape[0]))


def _save(root: Path, model, tokenizer, model_c: dict, phase_c: dict) -> Path:
    return save_checkpoint(
        root, "step-000007", model, tokenizer, yaml.safe_dump({"model": model_c, "phase": phase_c})
    )


def test_checkpoint_files_and_identical_reload_both_stages(tmp_path, tokenizer_dir, tokenizer) -> None:
    ids = _inputs(tokenizer)
    mc = model_cfg(tokenizer_dir)
    base = build_phase_model(mc, phase_cfg("base"), tokenizer)
    perturb_trainable(base, 1)
    base_dir = _save(tmp_path / "base", base, tokenizer, mc, phase_cfg("base"))
    assert {p.name for p in base_dir.iterdir()} == CHECKPOINT_FILES
    assert {p.name for p in (tmp_path / "base").iterdir()} == {"step-000007", "last"}
    assert (tmp_path / "base" / "last").resolve() == base_dir
    # PEFT writes target_modules in set order (it followed PYTHONHASHSEED): sorted, two runs write the same bytes
    targets = json.loads((base_dir / "adapter_config.json").read_text())["target_modules"]
    assert targets == sorted(phase_cfg("base")["lora"]["target_modules"])
    reloaded, _, _ = load_checkpoint(tmp_path / "base" / "last")
    torch.testing.assert_close(_logits(reloaded, ids), _logits(base, ids), rtol=0, atol=0)

    # the new-token rows live in the adapter (PEFT trainable_token_indices), once: no second copy is written
    token_ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    indices = json.loads((base_dir / "adapter_config.json").read_text())["trainable_token_indices"]
    assert indices == {"embed_tokens": token_ids, "lm_head": token_ids}
    adapter = load_file(str(base_dir / "adapter_model.safetensors"))
    rows = {k: v.shape for k, v in adapter.items() if "trainable_tokens" in k}
    assert sorted(rows) == [f"base_model.model.{m}.token_adapter.trainable_tokens_delta" for m in ROW_MODULES]
    assert set(rows.values()) == {(len(SPECIAL_TOKENS), 192)}

    rag_phase = phase_cfg("rag", init_from=str(tmp_path / "base" / "last"))
    rag = build_phase_model(mc, rag_phase, tokenizer, init_from=rag_phase["init_from"])
    assert not any(p.requires_grad for p in rag.projector.parameters())
    torch.testing.assert_close(_logits(rag, ids), _logits(base, ids), rtol=1e-5, atol=1e-5)  # merged base
    perturb_trainable(rag, 2)
    _save(tmp_path / "rag", rag, tokenizer, mc, rag_phase)
    rag_reloaded, _, _ = load_checkpoint(tmp_path / "rag" / "last")
    torch.testing.assert_close(_logits(rag_reloaded, ids), _logits(rag, ids), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(_logits(rag, ids), _logits(base, ids), atol=1e-3)


def _write_release(tmp_path: Path, tokenizer_dir: Path, tokenizer) -> tuple[Path, Path, torch.Tensor, object]:
    """Write directories in the release layout from tiny models: (base_dir, step_dir, base logits, rag model).

    The rag model shares (and changes) the merged base's modules, so the base's logits are taken first."""
    mc = model_cfg(tokenizer_dir)
    base = build_phase_model(mc, phase_cfg("base"), tokenizer)
    perturb_trainable(base, 3)
    merged = base.llm.merge_and_unload()
    base_dir = write_release_base(tmp_path / "release_base", merged, base.projector, tokenizer)
    base_logits = _logits(base, _inputs(tokenizer))

    from peft import LoraConfig, get_peft_model

    from adaragct.models.vlm import ReportModel

    lora = LoraConfig(
        r=32,
        lora_alpha=64,
        lora_dropout=0.05,
        target_modules=phase_cfg("rag")["lora"]["target_modules"],
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    rag_llm = get_peft_model(merged, lora)
    rag = ReportModel(rag_llm, base.projector, base.slot_token_ids, base.rag_token_id)
    with torch.no_grad():  # a trained [RAG] row, as the release's full embed/lm_head matrices carry
        rag_id = base.rag_token_id
        rag_llm.get_input_embeddings().weight[rag_id] += 0.5
        rag_llm.get_output_embeddings().weight[rag_id] -= 0.5
    step_dir = write_release_step(tmp_path / "adarag_step_500", rag_llm, rag_llm, base.projector, tokenizer)
    return base_dir, step_dir, base_logits, rag


def test_release_import_round_trip(tmp_path, tokenizer_dir, tokenizer) -> None:
    ids = _inputs(tokenizer)
    base_dir, step_dir, base_logits, rag = _write_release(tmp_path, tokenizer_dir, tokenizer)
    imported_base, _ = load_release(base_dir)
    torch.testing.assert_close(_logits(imported_base, ids), base_logits, rtol=1e-5, atol=1e-5)
    imported, tok = load_release(base_dir, step_dir)
    assert tok.convert_tokens_to_ids("[RAG]") == rag.rag_token_id
    torch.testing.assert_close(_logits(imported, ids), _logits(rag, ids), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_logits(imported, ids), _logits(imported_base, ids), atol=1e-3)


class Payload:
    """An arbitrary object: torch.load(weights_only=True) must refuse to rebuild it."""


def test_release_projector_is_read_without_pickle(tmp_path) -> None:
    state = {f"{s}.{i}.{p}": torch.zeros(2) for s in VISUAL_SLOTS for i in (0, 2) for p in ("weight", "bias")}
    torch.save({**state, "evil": Payload()}, tmp_path / "projector.pt")
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported global"):
        read_release_projector(tmp_path / "projector.pt")
    torch.save({k: v for k, v in state.items() if "aorta" not in k}, tmp_path / "projector.pt")
    with pytest.raises(ValueError, match="aorta"):
        read_release_projector(tmp_path / "projector.pt")


def test_stage_rag_from_a_missing_base_names_the_fix(tmp_path, tokenizer_dir, tokenizer) -> None:
    with pytest.raises(FileNotFoundError, match="train phase=base first"):
        build_phase_model(
            model_cfg(tokenizer_dir), phase_cfg("rag"), tokenizer, init_from=tmp_path / "nothing"
        )


def test_a_checkpoint_whose_base_moved_names_the_field(tmp_path, tokenizer_dir, tokenizer) -> None:
    """A tiny model whose recorded path is gone must not be random-initialised in silence."""
    from adaragct.errors import DataError

    mc = model_cfg(tokenizer_dir)
    ckpt = _save(
        tmp_path / "base",
        build_phase_model(mc, phase_cfg("base"), tokenizer),
        tokenizer,
        mc,
        phase_cfg("base"),
    )
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    assert load_checkpoint(ckpt)[2]["model"]["path"] == str(tokenizer_dir)
    config["model"]["path"] = str(tmp_path / "moved")
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        DataError, match=r"config.yaml: model.path: .*moved does not exist.*fix: set model.path"
    ):
        load_checkpoint(ckpt)


def test_a_qlora_checkpoint_decodes_with_its_adapters_unmerged(tmp_path, tokenizer_dir, tokenizer) -> None:
    """Merging a LoRA into 4-bit weights re-quantizes them; inference must see the model that was trained."""
    pytest.importorskip("bitsandbytes", reason="the quant extra (pip install 'adaragct[quant]')")
    from adaragct.apps.infer import load_generation_model

    mc = model_cfg(tokenizer_dir, quantization="4bit")
    model = build_phase_model(mc, phase_cfg("base"), tokenizer)
    perturb_trainable(model, 5)
    ids = _inputs(tokenizer)
    trained = _logits(model, ids)
    _save(tmp_path / "qlora", model, tokenizer, mc, phase_cfg("base"))
    loaded, _, _ = load_generation_model(str(tmp_path / "qlora" / "last"), "cpu")
    assert any("lora_A" in n for n, _ in loaded.llm.named_parameters()), "adapters must stay unmerged"
    torch.testing.assert_close(_logits(loaded, ids), trained, rtol=1e-5, atol=1e-5)
    merged = loaded.llm.merge_and_unload()  # what the loader avoids: visibly another model
    loaded.llm = merged
    assert (_logits(loaded, ids) - trained).abs().max() > 1e-2
