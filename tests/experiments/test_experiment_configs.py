"""Every conf/experiment/*.yaml runs end to end on CPU with the tiny model swapped in.

Each experiment's own train config (its stage, optimizer, LoRA, scheduler, datamodule settings) is composed and
trained for 2 steps, then its own infer config (its retrieval mode) decodes 2 validation volumes and scores
them. Only what cannot run on a CPU in seconds is replaced: the model (tiny), the data (the small indexed demo
cohort), the trainer's device/precision/steps (debug=default). phase=rag experiments start from one shared
2-step phase=base checkpoint, as the paper's rag stage starts from the trained base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_config, data_overrides, train_cfg

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").rglob("*.yaml"))
SHRINK_INFER = [
    "model=tiny",
    "limit=2",
    "batch_size=2",
    "generation.max_new_tokens=24",
    "progress=false",
    "device=cpu",
]


def test_every_experiment_is_covered() -> None:
    # the paper rows and the demo: a new experiment file is picked up by the parametrisation below
    assert {"demo", "align_8b", "base_8b", "adaragct_8b", "align_70b", "base_70b", "adaragct_70b"} <= set(
        EXPERIMENTS
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_and_infers_on_cpu(
    experiment: str, indexed_demo: Path, tiny_checkpoints: dict, tmp_path: Path
) -> None:
    from adaragct.apps.infer import run as run_infer
    from adaragct.apps.train import run as train

    composed = compose_config("train", [f"experiment={experiment}"], resolve=False).phase
    stage = composed.name
    init = [f"phase.init_from={tiny_checkpoints['base']}"] if stage == "rag" else []
    if composed.get("projector_from"):  # the paper's base rows start from their align run
        init.append(f"phase.projector_from={tiny_checkpoints['align']}")
    cfg = train_cfg(tmp_path, indexed_demo, f"experiment={experiment}", *init)
    assert (
        cfg.trainer.accelerator == "cpu"
        and cfg.model.name == "tiny"
        and cfg.data.root == f"{indexed_demo}/demo"
    )
    train(cfg)
    ckpt = tmp_path / "outputs" / "train" / f"demo_tiny_{stage}" / "last"
    # phase align trains the projector alone: no adapter
    assert (ckpt / "adapter_model.safetensors").is_file() == (stage != "align")
    assert (ckpt / "projector.safetensors").is_file() and (ckpt / "config.yaml").is_file()
    saved = OmegaConf.load(ckpt / "config.yaml")
    assert saved.phase.name == stage and list(saved.tags) == list(
        cfg.tags
    )  # the experiment's own settings ran
    assert (saved.phase.lora or {}).get("r") == (cfg.phase.lora or {}).get("r")

    predictions = tmp_path / "infer" / "predictions.jsonl"
    infer_cfg = compose_config(
        "infer",
        [
            f"experiment={experiment}",
            *data_overrides(indexed_demo),
            *SHRINK_INFER,
            f"ckpt={ckpt}",
            f"predictions={predictions}",
            f"paths.output_dir={tmp_path}/infer",
            f"paths.cache_dir={indexed_demo}/cache",
        ],
    )
    summary = run_infer(infer_cfg)
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == 2 == summary["generated"]
    # paper rows: align and base = no retrieval
    expected = "none" if experiment.startswith(("align_", "base_")) else "adaptive"
    assert infer_cfg.retrieval.name == expected and {r["retrieval"] for r in records} == {expected}
    metrics = json.loads((predictions.parent / "metrics.json").read_text())
    assert metrics["num_samples"] == 2
    assert 0.0 <= metrics["report_generation/clinical_f1"] <= 1.0


@pytest.mark.parametrize("app", ["prepare", "train", "infer"])  # index composes no experiment (no model)
def test_a_stage_run_by_hand_with_experiment_demo_has_the_demos_threads(app: str) -> None:
    """``python -m adaragct.<app> experiment=demo`` pins the thread count ``make demo`` runs with (results depend on
    it), not the libraries' default of one per core."""
    demo = OmegaConf.load(CONF_DIR / "demo.yaml")
    assert compose_config(app, ["experiment=demo"], resolve=False).threads == demo.threads == 2
