"""Fixtures for the model tests: a small real BPE tokenizer (built locally, no hub) and tiny configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaragct.constants import SPECIAL_TOKENS
from adaragct.data.prompt import BOS, EOT, HEADER_END, HEADER_START

CORPUS = [
    "The lungs are clear. No pleural effusion was observed. The heart size is normal.",
    "There is a 5 mm nodule in the right upper lobe. Mild emphysema is present in both lungs.",
    "The esophagus is unremarkable. A small hiatal hernia is seen. The aorta shows wall calcification.",
    "Coronary artery calcification is noted. Cardiomegaly with pericardial effusion.",
    "You are an experienced chest CT radiologist. Write the radiology report for this chest CT scan.",
    "The CT volume is given as a whole-volume embedding and organ embeddings for the lungs, heart, esophagus and aorta.",
    "system user assistant",
]
MARKERS = [BOS, HEADER_START, HEADER_END, EOT, "<|pad|>"]


def make_tokenizer(directory: Path):
    """A byte-level BPE tokenizer trained on a few report sentences, saved as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[*MARKERS, *SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,
        pad_token="<|pad|>",
        additional_special_tokens=list(SPECIAL_TOKENS),
    )
    fast.save_pretrained(str(directory))
    return fast


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    make_tokenizer(directory)
    return directory


@pytest.fixture()
def tokenizer(tokenizer_dir):
    from adaragct.models.builders import load_tokenizer

    return load_tokenizer(tokenizer_dir)


# the files of one checkpoint directory of ours (step-N / last)
CHECKPOINT_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "projector.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "config.yaml",
    "provenance.json",
}

VISUAL_DIMS = {"whole_ct": 16, "lung": 8, "heart": 8, "esophagus": 8, "aorta": 8}


def model_cfg(tokenizer_dir: Path, **overrides) -> dict:
    cfg = {
        "name": "tiny",
        "builder": {"_target_": "adaragct.models.builders.llama_tiny"},
        "path": str(tokenizer_dir),
        "dtype": "float32",
        "quantization": None,
        "gradient_checkpointing": False,
        "visual_dims": VISUAL_DIMS,
    }
    return {**cfg, **overrides}


TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def phase_cfg(name: str = "base", **overrides) -> dict:
    base = name == "base"
    cfg = {
        "name": name,
        "lora": {
            "r": 128 if base else 32,
            "alpha": 256 if base else 64,
            "dropout": 0.05,
            "target_modules": TARGETS,
        },
        "train_projector": base,
        "train_new_token_rows": True,
        "init_from": None,
        "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1.0e-3},
        "scheduler": {
            "_target_": "adaragct.models.module.warmup_cosine_schedule",
            "_partial_": True,
            "warmup_steps": 2,
            "min_lr_ratio": 0.01,
        },
        "contexts": None,
        "rag_loss_weight": 1.0,
    }
    return {**cfg, **overrides}


def phase_schedule(warmup_steps: int = 2):
    """What ``conf/phase/*.yaml: scheduler`` instantiates to (a partial completed with the optimizer)."""
    import functools

    from adaragct.models.module import warmup_cosine_schedule

    return functools.partial(warmup_cosine_schedule, warmup_steps=warmup_steps, min_lr_ratio=0.01)


def random_visual(batch: int, seed: int = 0) -> dict:
    import torch

    rng = np.random.default_rng(seed)
    return {
        s: torch.from_numpy(rng.standard_normal((batch, d)).astype(np.float32))
        for s, d in VISUAL_DIMS.items()
    }


def perturb_trainable(model, seed: int) -> None:
    """Random values in every trainable tensor, so a reload that drops any of them changes the logits."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))


def write_release_base(base_dir: Path, merged_llm, projector, tokenizer) -> Path:
    """A base directory in the release's layout: the merged HF model, its tokenizer and projector.pt."""
    import torch

    merged_llm.save_pretrained(str(base_dir))
    tokenizer.save_pretrained(str(base_dir))
    torch.save(projector.state_dict(), base_dir / "projector.pt")
    return base_dir


def write_release_step(
    step_dir: Path, peft_llm, full_llm, projector, tokenizer, base_dir: Path | None = None
):
    """An AdaRAG step directory in the release's layout: ``peft_llm``'s LoRA under raw PEFT keys (``.default``),
    ``full_llm``'s whole embed_tokens / lm_head matrices, adapter_config.json (with ``base_model_name_or_path``
    when ``base_dir`` is given), projector.pt, the tokenizer and a training_state.pt."""
    import json

    import torch
    from safetensors.torch import save_file

    step_dir.mkdir(parents=True)
    raw = {n: p.detach().float().contiguous() for n, p in peft_llm.named_parameters() if "lora_" in n}
    assert raw and all(".default." in k for k in raw)
    raw["base_model.model.model.embed_tokens.weight"] = (
        full_llm.get_input_embeddings().weight.detach().float().clone()
    )
    raw["base_model.model.lm_head.weight"] = full_llm.get_output_embeddings().weight.detach().float().clone()
    save_file(raw, str(step_dir / "adapter_model.safetensors"))
    lora = peft_llm.peft_config["default"]
    config = {
        "r": lora.r,
        "lora_alpha": lora.lora_alpha,
        "lora_dropout": lora.lora_dropout,
        "target_modules": sorted(lora.target_modules),
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "_stage3_turn": True,
        "_rag": True,
    }
    if base_dir is not None:
        config["base_model_name_or_path"] = str(base_dir)
    (step_dir / "adapter_config.json").write_text(json.dumps(config))
    torch.save(projector.state_dict(), step_dir / "projector.pt")
    tokenizer.save_pretrained(str(step_dir))
    torch.save({"step": 500}, step_dir / "training_state.pt")
    return step_dir


SENTENCES = [
    "The lungs are clear.",
    "No pleural effusion was observed.",
    "The heart size is normal.",
    "Mild emphysema is present in both lungs.",
    "A small hiatal hernia is seen.",
    "The aorta shows wall calcification.",
    "Coronary artery calcification is noted.",
]


def write_tiny_cohort(root: Path, n_patients: int = 12, whole_dim: int = 16, organ_dim: int = 8) -> dict:
    """A few volumes in the CT-RATE + bundle layouts (reports CSV, npz embeddings, oracle/retrieved contexts).

    Returns the ``data`` config node pointing at them.
    """
    import json

    import pandas as pd

    rng = np.random.default_rng(0)
    ids, reports = [], []
    for p in range(n_patients):
        vid = f"train_{p}_a_1"
        chosen = [SENTENCES[i] for i in sorted(rng.choice(len(SENTENCES), size=3, replace=False))]
        ids.append(vid)
        reports.append(chosen)
    (root / "emb").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "VolumeName": [f"{v}.nii.gz" for v in ids],
            "ClinicalInformation_EN": "",
            "Technique_EN": "",
            "Findings_EN": [" ".join(r[:2]) for r in reports],
            "Impressions_EN": [r[2] for r in reports],
        }
    ).to_csv(root / "train_reports.csv", index=False)
    np.savez(
        root / "emb" / "whole.npz",
        sample_ids=np.array(ids),
        ct_clip_max=rng.standard_normal((len(ids), whole_dim)).astype(np.float32),
    )
    np.savez(
        root / "emb" / "organs.npz",
        sample_ids=np.array([f"{v}.nii.gz" for v in ids]),
        **{
            o: rng.standard_normal((len(ids), organ_dim)).astype(np.float32)
            for o in ("lung", "heart", "esophagus", "aorta")
        },
    )
    contexts = {
        vid: [
            {"query_sentence": {"text": s}, "retrieved": [{"text": t} for t in SENTENCES[:3]]} for s in report
        ]
        for vid, report in zip(ids, reports, strict=True)
    }
    for name in ("oracle.jsonl", "retrieved.jsonl"):
        (root / name).write_text(json.dumps(contexts))
    return data_node(
        "tiny",
        root,
        root / "train_reports.csv",
        root / "emb/whole.npz",
        root / "emb/organs.npz",
        oracle_contexts=str(root / "oracle.jsonl"),
        retrieved_contexts=str(root / "retrieved.jsonl"),
    )


def data_node(name: str, root: Path, reports_csv: Path, whole: Path, organs: Path, **extra) -> dict:
    """A ``conf/data`` node over one reports CSV and two embedding files (train and valid read the same)."""
    return {
        "name": name,
        "root": str(root),
        "train_reports_csv": str(reports_csv),
        "valid_reports_csv": str(reports_csv),
        "whole_embeddings": {"train": str(whole), "valid": str(whole)},
        "whole_key": "ct_clip_max",
        "organ_embeddings": {"train": str(organs), "valid": str(organs)},
        "missing_embedding": "error",
        **extra,
    }


def train_config(root: Path, data: dict, model_path: Path, *overrides: str):
    """The real train config over ``data`` with the tiny model at ``model_path``, outputs and a CSV log under
    ``root/run``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from tests.conftest import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.root_dir={root}",
                f"paths.output_dir={root}/run",
                f"model.path={model_path}",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.data = OmegaConf.create(data)
        cfg.model.visual_dims = VISUAL_DIMS
        cfg.logger = {
            "csv": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": f"{root}/run",
                "name": "csv",
            }
        }
    return cfg


DEBUG_TRAIN = [
    "debug=default",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "phase.scheduler.warmup_steps=1",
    "trainer.detect_anomaly=false",
]


def debug_train_config(root: Path, data: dict, model_path: Path, *overrides: str):
    """:func:`train_config` with the debug trainer: 4 optimizer steps, a validation every 2 (``overrides`` win)."""
    return train_config(root, data, model_path, *DEBUG_TRAIN, *overrides)
