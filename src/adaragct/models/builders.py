"""LLM builders (docs/method.md#model-and-training): ``model=tiny|8b|70b`` names one of these functions, which hard-code the architecture.

``conf/model/*.yaml`` reaches one through ``builder: {_target_: adaragct.models.builders.<name>, <its own
arguments>}`` (:class:`adaragct.models.specs.ModelSpec`), looked up in :data:`BUILDERS`, never imported by name.

torchtune-style: a config never restates layer counts, so ``model=8b`` cannot silently drift from the real
Llama-3.1-8B. Every builder takes the tokenizer (the vocabulary and the special tokens of docs/method.md#model-and-training come from it),
an optional local ``path`` with weights, a ``device`` (``"meta"`` builds the architecture without allocating
weights: that is how tests check 8B/70B sizes on a laptop), a ``dtype`` and a bitsandbytes ``quantization``.

    model = llama3_1_8b(tokenizer, path="checkpoints/Llama-3.1-8B-Instruct", dtype="bfloat16")
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from adaragct.constants import SPECIAL_TOKENS

log = logging.getLogger(__name__)
TINY_SEED = 0  # fixed: phase=rag rebuilds the identical random base that phase=base trained on
PAD_TOKEN = "<|pad|>"
LLAMA3_PAD = "<|finetune_right_pad_id|>"


# (hidden, layers, heads, intermediate) of the tiny Llamas; parameters with a ~1k BPE vocabulary
TINY_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (192, 3, 4, 512),  # ~1.7M: CPU tests and `make demo`
    "tiny_large": (288, 4, 4, 768),  # ~4.6M (2.7x): the "a larger model gives no clear gain" ablation
}


def tiny_config(vocab_size: int, size: str = "tiny") -> LlamaConfig:
    """A tiny Llama of :data:`TINY_SIZES` (``tiny``: hidden 192, 3 layers, 4 heads, intermediate 512, docs/performance.md)."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r} (one of {sorted(TINY_SIZES)})")
    hidden, layers, heads, intermediate = TINY_SIZES[size]
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )


def _llama3_config(hidden: int, layers: int, heads: int, intermediate: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009],
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )


def llama3_1_8b_config() -> LlamaConfig:
    """Llama-3.1-8B-Instruct: 8,030,261,248 parameters."""
    return _llama3_config(hidden=4096, layers=32, heads=32, intermediate=14336)


def llama3_3_70b_config() -> LlamaConfig:
    """Llama-3.3-70B-Instruct: 70,553,706,496 parameters."""
    return _llama3_config(hidden=8192, layers=80, heads=64, intermediate=28672)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The model's tokenizer from a local directory, with the special tokens (docs/method.md#model-and-training) and a pad token present."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory {path} not found (fix: for model=tiny run "
            "`python -m adaragct.prepare data=demo`; for 8b/70b set paths.llm_8b_dir/llm_70b_dir)"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    ensure_special_tokens(tokenizer)
    return tokenizer


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Add the docs/method.md#model-and-training tokens (and a pad token) to the tokenizer if missing; return the docs/method.md#model-and-training token ids."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    if (
        tokenizer.pad_token is None
    ):  # Llama-3.1/3.3 ship a reserved pad token: use it rather than grow the vocab
        vocab = tokenizer.get_vocab()
        tokenizer.add_special_tokens({"pad_token": LLAMA3_PAD if LLAMA3_PAD in vocab else PAD_TOKEN})
    return new_token_ids(tokenizer)


def new_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the special tokens (docs/method.md#model-and-training): the rows phase base/rag train in the embeddings and the LM head."""
    return [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]


def add_special_tokens(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The one place the vocabulary grows: add tokens, resize embeddings, initialise new rows to the mean row.

    Mean-row initialisation keeps the new tokens' logits at the average level, so adding them does not disturb
    a pretrained model's outputs (random rows can dominate the softmax). Rows are only ever added, never cut:
    Llama-3 checkpoints carry reserved rows beyond the tokenizer's length.
    """
    ids = ensure_special_tokens(tokenizer)
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > old:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        if model.get_input_embeddings().weight.device.type != "meta":
            with torch.no_grad():
                for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
                    weight[old:] = weight[:old].mean(dim=0, keepdim=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return ids


def _quantization_config(quantization: str | None, dtype: torch.dtype) -> Any:
    if quantization is None:
        return None
    if quantization in ("4bit", "8bit") and importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            f"model.quantization={quantization} needs bitsandbytes, which is not installed: "
            "pip install 'adaragct[quant]' (or set model.quantization=null)"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"conf/model: quantization={quantization!r} (expected null, 4bit or 8bit)")


def _match_checkpoint(config: LlamaConfig, path: Path) -> LlamaConfig:
    """Check a local checkpoint is the architecture the builder names; adopt its (possibly grown) vocabulary.

    A merged checkpoint that already has our special tokens (docs/method.md#model-and-training) (the release's base) has more rows than 128,256;
    anything else that differs means the wrong model directory.
    """
    import json

    found = json.loads((path / "config.json").read_text())
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
    ):
        if key in found and found[key] != getattr(config, key):
            raise ValueError(
                f"{path}/config.json: {key}={found[key]} but the builder expects {getattr(config, key)} "
                "(fix: point model.path at the model the builder names, or pick the matching model=)"
            )
    config.vocab_size = int(found.get("vocab_size", config.vocab_size))
    return config


def build_llama(
    config: LlamaConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    quantization: str | None = None,
    gradient_checkpointing: bool = False,
    seed: int | None = None,
) -> LlamaForCausalLM:
    """Build ``config`` on ``device`` (``meta``: no weights), or load it from ``path`` (weights never built twice).

    ``from_pretrained`` creates the model on the meta device and streams weights in, so an 8B/70B is never
    materialised in fp32 on the CPU first. Without ``path`` the model is random-initialised (``seed``).
    """
    torch_dtype = getattr(torch, dtype)
    quant = _quantization_config(quantization, torch_dtype)
    if path is not None:
        config = _match_checkpoint(config, Path(path))
        model = LlamaForCausalLM.from_pretrained(
            str(path), config=config, dtype=torch_dtype, quantization_config=quant, local_files_only=True
        )
    elif str(device) == "meta":
        with torch.device("meta"):
            model = LlamaForCausalLM(config).to(torch_dtype)
    else:
        with torch.random.fork_rng(devices=[]):  # a fixed init seed must not reset the run's RNG stream
            if seed is not None:
                torch.manual_seed(seed)
            model = LlamaForCausalLM(config).to(torch_dtype)
        if quant is not None:  # bitsandbytes quantises on load: round-trip the random init through a folder
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                model = LlamaForCausalLM.from_pretrained(tmp, dtype=torch_dtype, quantization_config=quant)
    if tokenizer is not None:
        add_special_tokens(model, tokenizer)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def llama_tiny(
    tokenizer: PreTrainedTokenizerBase,
    *,
    path: str | Path | None = None,
    size: str = "tiny",
    **kwargs: Any,
) -> LlamaForCausalLM:
    """The tiny Llama: loaded from ``path`` when it holds weights (the pretrained tiny LM, written by the
    prepare stage), else random-initialised with a fixed seed (``path`` is then just a tokenizer directory), so
    phase=rag rebuilds exactly the base that phase=base trained on."""
    # a path that is no directory (an unresolved "${data.tiny_lm_dir}" was one): an error, never a silent random init
    # in place of the pretrained LM
    if path is not None and not Path(path).is_dir():
        raise FileNotFoundError(
            f"model={size}: model.path {path} is not a directory (fix: run `python -m adaragct.prepare` to write "
            "the pretrained tiny LM there, or point model.path at a tokenizer directory for a random-initialised one)"
        )
    ensure_special_tokens(tokenizer)
    config = tiny_config(len(tokenizer), size)
    if path is not None and (Path(path) / "config.json").is_file():
        return build_llama(config, tokenizer, path=path, **kwargs)
    return build_llama(config, tokenizer, seed=TINY_SEED, **kwargs)


def llama_tiny_large(tokenizer: PreTrainedTokenizerBase, **kwargs: Any) -> LlamaForCausalLM:
    """The 2.7x larger tiny Llama (:data:`TINY_SIZES`), for the model-size ablation."""
    return llama_tiny(tokenizer, size="tiny_large", **kwargs)


def _require_weights(path: str | Path | None, device: Any, name: str) -> str | None:
    if str(device) == "meta":
        return None
    if path is None or not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(
            f"model={name}: no weights at {path} (config.json missing; fix: download the model "
            f"once and set paths.llm_{name}_dir or ADARAGCT_LLAMA_{name.upper()}_DIR)"
        )
    return str(path)


def llama3_1_8b(
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    path: str | Path | None = None,
    device: Any = None,
    **kwargs: Any,
) -> LlamaForCausalLM:
    """Llama-3.1-8B-Instruct from a local directory (or on the meta device, for size checks)."""
    return build_llama(
        llama3_1_8b_config(), tokenizer, path=_require_weights(path, device, "8b"), device=device, **kwargs
    )


def llama3_3_70b(
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    path: str | Path | None = None,
    device: Any = None,
    **kwargs: Any,
) -> LlamaForCausalLM:
    """Llama-3.3-70B-Instruct from a local directory (or on the meta device, for size checks)."""
    return build_llama(
        llama3_3_70b_config(), tokenizer, path=_require_weights(path, device, "70b"), device=device, **kwargs
    )


# The builders a config (and so a checkpoint's config.yaml) may name. A checkpoint is a file people share: the
# name in its ``model.builder._target_`` selects one of these functions and never imports a module the file names
# (which is why this is a table and not Hydra's ``instantiate``). llama_tiny_large: 0.1's configs and checkpoints
# name it; today's conf/model/tiny_large.yaml is llama_tiny with size tiny_large.
BUILDERS = {f.__name__: f for f in (llama_tiny, llama_tiny_large, llama3_1_8b, llama3_3_70b)}


def builder_named(name: str, where: str | Path = "conf/model") -> Any:
    """The builder ``model.builder`` names: ``adaragct.models.builders.llama3_1_8b`` (the form configs use) or
    ``llama3_1_8b``; anything else is a DataError naming ``where`` (the config file it came from), without
    importing anything."""
    from adaragct.errors import DataError

    short = name.removeprefix(f"{__name__}.") if isinstance(name, str) else name
    if isinstance(short, str) and short in BUILDERS:
        return BUILDERS[short]
    allowed = ", ".join(f"{__name__}.{b}" for b in BUILDERS)
    raise DataError(
        where,
        "model.builder",
        f"{name!r} is not one of the package's model builders ({allowed}); nothing was imported",
        "set model.builder to one of them (its _target_, conf/model/*.yaml); a new architecture is a builder function in "
        f"{__name__}, added to its BUILDERS",
    )
