"""The training grid (ablation=oracle_ratio) and its combination with the inference grid
(ablation=retrieval_x_oracle), both through real Hydra multirun: one checkpoint per oracle ratio, finished
training cells skipped on a rerun, and one aggregated row per (retrieval cell x oracle ratio)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST_TRAIN, PROJECT_ROOT, compose_config


def _run(args: list[str], output_root: Path, data_dir: Path) -> str:
    command = [
        sys.executable,
        "-m",
        *args,
        f"paths.output_root={output_root}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={data_dir}/cache",
    ]
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_retrieval_x_oracle_reads_the_oracle_grid_checkpoints() -> None:
    cfg = compose_config(
        "infer", ["ablation=retrieval_x_oracle", "oracle_ratio=0.3", "seed=1", "paths.output_dir=x"]
    )
    assert cfg.ckpt == f"{PROJECT_ROOT}/outputs/grids/oracle_ratio/checkpoints/oracle0.3_seed1/last"
    train = compose_config(
        "train",
        [
            "phase=rag",
            "ablation=oracle_ratio",
            "phase.contexts.oracle_ratio=0.3",
            "seed=1",
            "paths.output_dir=x",
        ],
    )
    assert cfg.ckpt == f"{train.checkpoint_dir}/last" and train.ckpt_path == "last"


@pytest.mark.slow
def test_oracle_grid_trains_once_per_cell_and_feeds_the_retrieval_grid(
    indexed_demo: Path, tiny_checkpoints: dict, tmp_path: Path
) -> None:
    from adaragct.apps.aggregate import aggregate

    out = tmp_path / "outputs"
    train = [
        "adaragct.train",
        "-m",
        "experiment=demo",
        "prompt=default",  # the paper's prompt, as the base checkpoint of tiny_checkpoints was trained on
        "phase=rag",
        "ablation=oracle_ratio",
        "phase.contexts.oracle_ratio=0.0,1.0",
        "seed=0",
        *FAST_TRAIN,
        f"phase.init_from={tiny_checkpoints['base']}",
    ]
    first = _run(train, out, indexed_demo)
    ckpts = {r: out / "grids" / "oracle_ratio" / "checkpoints" / f"oracle{r}_seed0" for r in ("0.0", "1.0")}
    assert all((c / "last" / "adapter_model.safetensors").is_file() for c in ckpts.values())
    assert "grid oracle_ratio: 2 cells, 2 ran, 0 skipped" in first
    before = {r: (c / "lightning" / "last.ckpt").stat().st_mtime_ns for r, c in ckpts.items()}
    second = _run(train, out, indexed_demo)
    assert "grid oracle_ratio: 2 cells, 0 ran, 2 skipped" in second
    assert {r: (c / "lightning" / "last.ckpt").stat().st_mtime_ns for r, c in ckpts.items()} == before

    _run(
        [
            "adaragct.infer",
            "-m",
            "ablation=retrieval_x_oracle",
            "retrieval=adaptive",
            "generation.top_k=3",
            "generation.max_retrievals=2",
            "oracle_ratio=0.0,1.0",
            "seed=0",
            "limit=2",
            "batch_size=2",
            "generation.max_new_tokens=12",
            "device=cpu",
        ],
        out,
        indexed_demo,
    )
    aggregate("retrieval_x_oracle", out)
    table = pd.read_csv(out / "grids" / "retrieval_x_oracle" / "grid_results.csv")
    assert sorted(table["oracle_ratio"]) == [0.0, 1.0] and (table["status"] == "done").all()
