"""A tiny retrieval grid through the real `python -m adaragct.infer -m ablation=retrieval_grid` (Hydra multirun):
one readable folder per cell, one table row per cell, and a rerun that skips every finished cell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT

# ~1-2 min on 2 shared cores (session fixtures: index + two tiny trainings; then two 4-cell grid runs)
pytestmark = pytest.mark.slow

CELLS = {
    f"generation.max_retrievals=2,generation.top_k={k},retrieval={r},seed=0"
    for r in ("none", "adaptive")
    for k in (1, 3)
}


def run_grid(output_root: Path, data_dir: Path, ckpt: Path) -> str:
    """The grid command a user types (4 cells, 2 volumes each, short reports); returns its stdout."""
    command = [
        sys.executable,
        "-m",
        "adaragct.infer",
        "-m",
        "ablation=retrieval_grid",
        "grid_name=tiny_grid",
        "retrieval=none,adaptive",
        "generation.top_k=1,3",
        "generation.max_retrievals=2",
        "limit=2",
        "batch_size=2",
        "generation.max_new_tokens=16",
        "device=cpu",
        f"ckpt={ckpt}",
        f"paths.output_root={output_root}",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={data_dir}/cache",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def grid(indexed_demo: Path, tiny_checkpoints: dict, tmp_path_factory: pytest.TempPathFactory):
    """The grid run once: (grid folder, stdout, checkpoint, output_root)."""
    output_root = tmp_path_factory.mktemp("grid") / "outputs"
    stdout = run_grid(output_root, indexed_demo, tiny_checkpoints["rag"])
    return output_root / "grids" / "tiny_grid", stdout, tiny_checkpoints["rag"], output_root


def test_one_readable_folder_per_cell_with_predictions_and_metrics(grid) -> None:
    grid_dir, stdout, _, _ = grid
    cells = {p.name for p in grid_dir.iterdir() if p.is_dir()}
    assert cells == CELLS
    for name in CELLS:
        assert len((grid_dir / name / "predictions.jsonl").read_text().splitlines()) == 2
        assert (grid_dir / name / "metrics.json").is_file()
    assert "grid tiny_grid: 4 cells, 4 ran, 0 skipped" in stdout


def test_aggregate_writes_one_row_per_cell(grid) -> None:
    from adaragct.apps.aggregate import aggregate

    grid_dir, _, _, output_root = grid
    result = aggregate("tiny_grid", output_root)  # by name, under output_root/grids
    table = pd.read_csv(grid_dir / "grid_results.csv")
    assert result["cells"] == len(table) == 4
    assert set(zip(table["retrieval"], table["generation.top_k"], strict=True)) == {
        (r, k) for r in ("none", "adaptive") for k in (1, 3)
    }
    assert (table["status"] == "done").all() and table["clin_f1"].between(0, 1).all()
    assert (table.loc[table.retrieval == "none", "retrievals_per_report"] == 0).all()
    assert (table["num_predictions"] == 2).all()
    assert (grid_dir / "grid_results.md").read_text().count("\n| ") == 5  # header + 4 rows
    assert (grid_dir / "grid_results.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_skips_finished_cells_and_a_missing_cell_is_listed(grid, indexed_demo: Path) -> None:
    from adaragct.apps.aggregate import aggregate

    grid_dir, _, ckpt, output_root = grid
    before = {name: (grid_dir / name / "predictions.jsonl").stat().st_mtime_ns for name in CELLS}
    stdout = run_grid(output_root, indexed_demo, ckpt)
    assert {name: (grid_dir / name / "predictions.jsonl").stat().st_mtime_ns for name in CELLS} == before
    assert stdout.count("already finished, skipped") == 4
    assert "grid tiny_grid: 4 cells, 0 ran, 4 skipped" in stdout
    assert "0 generated, 2 already done" in stdout

    gone = sorted(CELLS)[0]
    (grid_dir / gone / "metrics.json").unlink()
    aggregate(str(grid_dir), output_root)  # by folder
    table = pd.read_csv(grid_dir / "grid_results.csv")
    assert len(table) == 4 and table.set_index("cell").loc[gone, "status"] == "missing"
    assert f"- missing: `{gone}`" in (grid_dir / "grid_results.md").read_text()
