"""Builders: the tiny model's size, the one place special tokens are added, 8B/70B on the meta device, and the
allowlist a checkpoint's ``model.builder`` is resolved from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

from adaragct.constants import SPECIAL_TOKENS
from adaragct.errors import DataError
from adaragct.models.builders import (
    BUILDERS,
    add_special_tokens,
    builder_named,
    llama3_1_8b,
    llama3_3_70b,
    llama_tiny,
)
from adaragct.models.checkpoint import save_checkpoint
from adaragct.models.loading import build_phase_model, load_checkpoint
from adaragct.models.vlm import count_parameters
from tests.models.conftest import model_cfg, phase_cfg

REAL_DIMS = {"whole_ct": 512, "lung": 256, "heart": 256, "esophagus": 256, "aorta": 256}


def test_tiny_model_has_the_documented_shape(tokenizer) -> None:
    model = llama_tiny(tokenizer)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        192,
        3,
        4,
        512,
    )
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    # 3 layers x (4*192^2 attention + 3*192*512 MLP + 2*192 norms) + 2 * vocab * 192 + final norm
    expected = 3 * (4 * 192 * 192 + 3 * 192 * 512 + 2 * 192) + 2 * len(tokenizer) * 192 + 192
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tiny_model_is_seeded_and_leaves_the_global_rng_alone(tokenizer) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = llama_tiny(tokenizer)
    after = torch.rand(1)
    b = llama_tiny(tokenizer)
    assert torch.equal(before, after)
    assert torch.equal(a.model.layers[0].mlp.up_proj.weight, b.model.layers[0].mlp.up_proj.weight)


def test_added_rows_start_at_the_mean_embedding(tokenizer) -> None:
    model = llama_tiny(tokenizer)
    old = len(tokenizer)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<extra_a>", "<extra_b>"]}, replace_extra_special_tokens=False
    )
    add_special_tokens(model, tokenizer)
    for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert weight.shape[0] == old + 2
        torch.testing.assert_close(weight[old], weight[:old].mean(dim=0))
    assert add_special_tokens(model, tokenizer) == [
        tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS
    ]
    assert model.get_input_embeddings().weight.shape[0] == old + 2  # a second call grows nothing


def llama3_tokenizer():
    """A real fast tokenizer with Llama-3's 128,256-entry vocabulary (word-level; ids only matter here)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(128256)}
    vocab["<|finetune_right_pad_id|>"] = vocab.pop("t128004")
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")))
    return tok


def lora_count(hidden: int, kv: int, inter: int, layers: int, r: int) -> int:
    """LoRA parameters on q,k,v,o,gate,up,down: r * (in + out) per projection."""
    per_layer = (hidden + hidden) * 2 + (hidden + kv) * 2 + (hidden + inter) * 3
    return r * per_layer * layers


def projector_count(hidden: int) -> int:
    return sum(d * hidden + hidden + hidden * hidden + hidden for d in REAL_DIMS.values())


@pytest.mark.parametrize(
    ("builder", "name", "total", "hidden", "kv", "inter", "layers"),
    [
        (llama3_1_8b, "8b", 8_030_261_248, 4096, 1024, 14336, 32),
        (llama3_3_70b, "70b", 70_553_706_496, 8192, 1024, 28672, 80),
    ],
)
def test_large_models_on_meta_device(builder, name, total, hidden, kv, inter, layers, capsys) -> None:
    assert sum(p.numel() for p in builder(device="meta").parameters()) == total
    tokenizer = llama3_tokenizer()
    model_cfg = {
        "name": name,
        "builder": {"_target_": f"adaragct.models.builders.{builder.__name__}"},
        "path": None,
        "dtype": "bfloat16",
        "gradient_checkpointing": False,
        "visual_dims": REAL_DIMS,
    }
    rows = len(SPECIAL_TOKENS) * hidden * 2  # embed_tokens + lm_head rows of the 9 new tokens
    base = build_phase_model(model_cfg, phase_cfg("base"), tokenizer, device="meta")
    rag = build_phase_model(model_cfg, phase_cfg("rag"), tokenizer, device="meta")
    assert tokenizer.pad_token == "<|finetune_right_pad_id|>"  # no extra pad row
    base_trainable, base_total = count_parameters(base)
    rag_trainable, _ = count_parameters(rag)
    assert base_trainable == lora_count(hidden, kv, inter, layers, 128) + projector_count(hidden) + rows
    assert rag_trainable == lora_count(hidden, kv, inter, layers, 32) + rows
    llm_total = sum(
        p.numel() for n, p in base.llm.named_parameters() if "lora_" not in n and "trainable_tokens" not in n
    )
    assert llm_total == total + rows
    with capsys.disabled():
        print(
            f"\n{name}: LLM {total:,} (+{rows:,} new-token rows); phase base trainable {base_trainable:,} "
            f"of {base_total:,}; phase rag trainable {rag_trainable:,}"
        )


def test_tiny_model_at_a_missing_path_is_refused_not_random(tokenizer, tmp_path) -> None:
    """A ``model.path`` that is no directory (an unresolved ``${data.tiny_lm_dir}`` was one) is an error naming the
    fix, never a silent random init in place of the pretrained tiny LM."""
    for path in ("${data.tiny_lm_dir}", tmp_path / "absent"):
        with pytest.raises(FileNotFoundError, match=r"model.path .* is not a directory .*adaragct.prepare"):
            llama_tiny(tokenizer, path=path)


def test_large_model_without_weights_names_the_fix() -> None:
    with pytest.raises(FileNotFoundError, match=r"paths\.llm_8b_dir"):
        llama3_1_8b(path="/nonexistent/llama")


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_tiny_model_trains_a_lora(tokenizer_dir, tokenizer, quantization) -> None:
    pytest.importorskip("bitsandbytes", reason="the quant extra (pip install 'adaragct[quant]')")
    from tests.models.conftest import model_cfg, random_visual

    model = build_phase_model(
        model_cfg(tokenizer_dir, quantization=quantization), phase_cfg("base"), tokenizer
    )
    linear = model.llm.base_model.model.model.layers[0].self_attn.q_proj.base_layer
    assert type(linear).__name__ == ("Linear4bit" if quantization == "4bit" else "Linear8bitLt")
    ids = torch.tensor([[tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS[:5]] + [10, 11, 12]])
    logits = model(ids, torch.ones_like(ids), random_visual(1))
    logits.float().mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_B" in n)


def test_llama3_configs_carry_the_long_context_rope() -> None:
    from adaragct.models.builders import llama3_1_8b_config, llama3_3_70b_config

    for config in (llama3_1_8b_config(), llama3_3_70b_config()):
        rope = config.rope_parameters
        assert (rope["rope_type"], rope["factor"], rope["rope_theta"]) == ("llama3", 8.0, 500000.0)
        assert (config.max_position_embeddings, config.num_key_value_heads, config.tie_word_embeddings) == (
            131072,
            8,
            False,
        )


def test_local_weights_load_and_a_wrong_architecture_is_refused(tmp_path, tokenizer) -> None:
    from adaragct.models.builders import build_llama, tiny_config

    model = llama_tiny(tokenizer)
    model.save_pretrained(str(tmp_path / "tiny"))
    loaded = build_llama(tiny_config(len(tokenizer)), tokenizer, path=tmp_path / "tiny")
    assert torch.equal(
        loaded.model.layers[2].mlp.down_proj.weight, model.model.layers[2].mlp.down_proj.weight
    )
    with pytest.raises(ValueError, match=r"hidden_size=192 but the builder expects 4096"):
        llama3_1_8b(tokenizer, path=tmp_path / "tiny")


@pytest.mark.parametrize(("experiment", "hidden"), [("align_8b", 4096), ("align_70b", 8192)])
def test_paper_align_stage_composes_on_the_meta_device(experiment: str, hidden: int) -> None:
    """experiment=align_8b/70b: the release's projector stage on the frozen LLM, built without weights."""
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    cfg = compose_config("train", [f"experiment={experiment}", "paths.output_dir=unused"])
    assert (cfg.phase.name, cfg.phase.lora, cfg.trainer.max_steps) == ("align", None, 9000)
    model_cfg = {**OmegaConf.to_container(cfg.model), "path": None}
    model = build_phase_model(model_cfg, OmegaConf.to_container(cfg.phase), llama3_tokenizer(), device="meta")
    trainable, _ = count_parameters(model)
    assert trainable == projector_count(hidden)  # the projectors alone; no LoRA, no token rows
    assert not hasattr(model.llm, "peft_config")
    base = compose_config(
        "train", [f"experiment={experiment.replace('align', 'base')}", "paths.output_dir=unused"]
    )
    assert base.phase.projector_from.endswith(f"ctrate_{experiment.split('_')[1]}_align/last")
    assert base.phase.train_projector is False  # the release keeps the aligned projector frozen


@pytest.mark.parametrize(
    "builder", ["this.nothing", "os.system", "adaragct.models.loading.build_phase_model"]
)
def test_a_checkpoint_naming_other_code_as_its_builder_is_refused_unimported(
    tmp_path, tokenizer_dir, tokenizer, builder
) -> None:
    """A shared checkpoint does not choose code: ``this`` (which prints on import) is never imported."""
    mc = model_cfg(tokenizer_dir)
    config_yaml = yaml.safe_dump({"model": mc, "phase": phase_cfg("base")})
    model = build_phase_model(mc, phase_cfg("base"), tokenizer)
    ckpt = save_checkpoint(tmp_path / "b", "step-000001", model, tokenizer, config_yaml)
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    config["model"]["builder"] = builder
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    sys.modules.pop("this", None)
    with pytest.raises(DataError) as caught:
        load_checkpoint(ckpt)
    assert "this" not in sys.modules
    message = str(caught.value)
    assert message.startswith(f"{ckpt}/config.yaml: model.builder: {builder!r} is not one of the package's")
    assert all(f"adaragct.models.builders.{name}" in message for name in BUILDERS)
    assert "fix: set model.builder to one of them" in message


def test_the_builders_configs_name_resolve_by_dotted_or_short_name() -> None:
    from tests.conftest import CONF_DIR, compose_config

    for path in sorted(Path(CONF_DIR, "model").glob("*.yaml")):
        cfg = compose_config("train", [f"model={path.stem}", "paths.output_dir=unused"], resolve=False)
        name = cfg.model.builder._target_
        assert (
            builder_named(name) is BUILDERS[name.rpartition(".")[2]] is builder_named(name.rpartition(".")[2])
        )
    assert set(BUILDERS) == {"llama_tiny", "llama_tiny_large", "llama3_1_8b", "llama3_3_70b"}


def test_a_checkpoint_with_the_01_string_builder_loads_with_a_warning(
    tmp_path, tokenizer_dir, tokenizer, caplog
) -> None:
    """0.1 wrote ``model.builder`` as a string and the tiny size as ``model.size``: such a checkpoint loads (the
    same model), with a warning naming the node form."""
    mc = model_cfg(tokenizer_dir, builder={"_target_": "adaragct.models.builders.llama_tiny", "size": "tiny"})
    model = build_phase_model(mc, phase_cfg("base"), tokenizer)
    config_yaml = yaml.safe_dump({"model": mc, "phase": phase_cfg("base")})
    ckpt = save_checkpoint(tmp_path / "b", "step-000001", model, tokenizer, config_yaml)
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    config["model"] = {**config["model"], "builder": "adaragct.models.builders.llama_tiny", "size": "tiny"}
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    loaded, _, saved = load_checkpoint(ckpt)
    assert "model.builder is the string 'adaragct.models.builders.llama_tiny', the form of 0.1" in caplog.text
    assert (
        saved["model"]["builder"] == "adaragct.models.builders.llama_tiny"
    )  # the file is read, not rewritten
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_misspelt_builder_argument_or_model_key_names_the_fix(tokenizer_dir) -> None:
    from adaragct.models.specs import ModelSpec

    with pytest.raises(
        DataError,
        match=r"conf/model: model.builder=.* does not fit .*llama_tiny: unknown arguments \['sise'\]",
    ):
        ModelSpec.from_config(model_cfg(tokenizer_dir, builder={"_target_": BUILDER_TINY, "sise": "tiny"}))
    with pytest.raises(
        DataError, match=r"conf/model: model.size: unknown key \(fix: it is model.builder.size"
    ):
        ModelSpec.from_config({**model_cfg(tokenizer_dir), "size": "tiny"})
    with pytest.raises(DataError, match=r"model.builder.path=.* \(fix: set model.path instead\)"):
        ModelSpec.from_config(model_cfg(tokenizer_dir, builder={"_target_": BUILDER_TINY, "path": "x"}))
    with pytest.raises(DataError, match=r"model.dtype='float33': is not one of float32, bfloat16, float16"):
        ModelSpec.from_config(model_cfg(tokenizer_dir, dtype="float33"))
    with pytest.raises(
        DataError, match=r"model.builder._target_='os.system': 'os.system' is not one of the package's"
    ):
        ModelSpec.from_config(model_cfg(tokenizer_dir, builder={"_target_": "os.system"}))


BUILDER_TINY = "adaragct.models.builders.llama_tiny"
