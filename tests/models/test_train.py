"""The train app on a tiny cohort: the files it writes, its logs, phase rag from phase base, resume, strategies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR
from tests.models.conftest import CHECKPOINT_FILES, debug_train_config, write_tiny_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tokenizer_dir) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cohort")
    return root, write_tiny_cohort(root / "data")


def _metrics(root: Path) -> list[dict[str, str]]:
    files = sorted((root / "run" / "csv").glob("version_*/metrics.csv"))
    with open(files[-1]) as handle:
        return list(csv.DictReader(handle))


def _trainable_only(ckpt: Path) -> set[str]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    return {
        k for k in state if not any(s in k for s in ("lora_", "trainable_tokens_delta", "model.projector."))
    }


def test_stage_base_writes_exactly_the_checkpoint_files(cohort, tokenizer_dir) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    cfg = debug_train_config(root, data, tokenizer_dir, "phase=base")
    metrics = train(cfg)
    ckpt_dir = Path(cfg.checkpoint_dir)
    assert ckpt_dir.name == f"{cfg.data.name}_tiny_base"  # one checkpoint folder per dataset, model and stage
    names = {"last", "best", "best.json", "step-000002", "step-000004", "lightning", "val_reports"}
    assert {p.name for p in ckpt_dir.iterdir()} == names
    assert (ckpt_dir / "last").resolve() == (ckpt_dir / "step-000004").resolve()
    assert {p.name for p in (ckpt_dir / "step-000004").iterdir()} == CHECKPOINT_FILES
    assert {p.name for p in (ckpt_dir / "lightning").iterdir()} == {"last.ckpt", "run.yaml"}
    assert _trainable_only(ckpt_dir / "lightning" / "last.ckpt") == set()  # no frozen base weights pickled
    saved = OmegaConf.load(ckpt_dir / "last" / "config.yaml")
    assert saved.phase.name == "base" and saved.model.builder._target_.endswith("llama_tiny")
    rows = _metrics(root)
    columns = set(rows[0])
    assert {
        "train/loss",
        "val/loss",
        "train/lr",
        "train/tokens_per_s",
        "params/trainable",
        "params/total",
        "val/clin_f1",  # conf/callbacks/clinical_metrics.yaml, on by default
        "val/bleu4",
    } <= columns
    assert sum(1 for r in rows if r["train/loss"]) == 4 and "val/loss" in metrics
    # best -> the validation with the highest val/clin_f1 (the first of equal ones), as best.json says
    f1 = {int(r["step"]) + 1: float(r["val/clin_f1"]) for r in rows if r["val/clin_f1"]}
    assert sorted(f1) == [2, 4] and all(0.0 <= v <= 1.0 for v in f1.values())
    chosen = max(f1, key=lambda step: (f1[step], -step))
    best = json.loads((ckpt_dir / "best.json").read_text())
    assert best == {
        "step": chosen,
        "monitor": "val/clin_f1",
        "value": pytest.approx(f1[chosen]),
        "checkpoint": f"step-{chosen:06d}",
    }
    assert (ckpt_dir / "best").resolve() == (ckpt_dir / f"step-{chosen:06d}").resolve()


def test_stage_rag_trains_from_the_base_checkpoint_and_resumes(cohort, tokenizer_dir) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    base = debug_train_config(root, data, tokenizer_dir, "phase=base")
    if not (Path(base.checkpoint_dir) / "last").exists():
        train(base)
    cfg = debug_train_config(root, data, tokenizer_dir, "phase=rag")
    train(cfg)
    ckpt_dir = Path(cfg.checkpoint_dir)
    assert {p.name for p in (ckpt_dir / "last").iterdir()} == CHECKPOINT_FILES
    init_from = OmegaConf.load(ckpt_dir / "last" / "config.yaml").phase.init_from
    assert init_from == str((Path(base.checkpoint_dir) / "step-000004").resolve())
    rows = _metrics(root)
    assert any(r.get("train/rag_token_acc") for r in rows)  # the rag batches carry [RAG] targets
    resumed = debug_train_config(
        root,
        data,
        tokenizer_dir,
        "phase=rag",
        "trainer.max_steps=6",
        f"ckpt_path={ckpt_dir}/lightning/last.ckpt",
    )
    train(resumed)
    assert (ckpt_dir / "last").resolve().name == "step-000006"
    assert {p.name for p in ckpt_dir.iterdir()} >= {"step-000004", "step-000006"}


def test_fsdp_on_cpu_fails_at_start_with_the_fix(cohort, tokenizer_dir) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    fresh = f"checkpoint_dir={root}/fsdp"  # not the phase=base run above, which a rerun with fsdp would not resume
    with pytest.raises(RuntimeError, match=r"strategy=fsdp needs CUDA GPUs.*use strategy=ddp"):
        train(debug_train_config(root, data, tokenizer_dir, "phase=base", "strategy=fsdp", fresh))


def test_release_config_keys_map_onto_ours(tmp_path) -> None:
    from adaragct.compat.train_rag import release_overrides

    release = {
        "model_path": "/models/llama8b",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.1},
        "training": {
            "learning_rate": 3e-5,
            "warmup_steps": 100,
            "num_epochs": 2,
            "gradient_accumulation_steps": 4,
            "per_device_train_batch_size": 2,
            "bf16": True,
        },
        "output_dir": "/runs/x",
        "wandb_project": "adarag",
        "use_flash_attention": True,
    }
    overrides, ignored = release_overrides(release)
    assert overrides == [
        "model.path=/models/llama8b",
        "phase.lora.r=16",
        "phase.lora.alpha=32",
        "phase.lora.dropout=0.1",
        "phase.optimizer.lr=3e-05",
        "phase.scheduler.warmup_steps=100",
        "trainer.max_epochs=2",
        "trainer.max_steps=-1",
        "trainer.accumulate_grad_batches=4",
        "datamodule.batch_size=2",
        "trainer.precision=bf16-mixed",
        "checkpoint_dir=/runs/x",
    ]
    assert ignored == ["wandb_project", "use_flash_attention"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=adaragct_8b", f"paths.root_dir={tmp_path}", *overrides])
    assert (cfg.phase.lora.r, cfg.trainer.accumulate_grad_batches, cfg.model.path) == (
        16,
        4,
        "/models/llama8b",
    )


def test_wandb_logger_is_offline_and_report_text_is_opt_in(tmp_path) -> None:
    from adaragct.apps.train import _loggers

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=["logger=wandb", f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}"]
        )
    assert cfg.logger.log_report_text is False
    (logger,) = _loggers(cfg)
    assert type(logger).__name__ == "WandbLogger" and logger._offline is True
