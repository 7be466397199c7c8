"""Collect every cell of an ablation grid into one table (CSV + markdown) and one plot.

    python -m adaragct.aggregate grid=retrieval_grid                  # outputs/grids/retrieval_grid
    python -m adaragct.aggregate grid=/path/to/outputs/grids/demo_retrieval

One row per cell (``.hydra/overrides.yaml`` below the grid folder): the swept parameters, Clin-F1
weighted/micro/macro, BLEU-4, ROUGE-L, CIDEr, retrievals per report (mean ``retrieval_count`` of the cell's
predictions), tokens/s when the cell recorded it, and a status. A cell without ``metrics.json`` stays in the
table as ``missing`` (or ``failed``) so an unfinished grid is visible, never silently shorter. Written atomically
into the grid folder: ``grid_results.csv``, ``grid_results.md``, ``grid_results.png``.

A Hydra app (not argparse) so that ``grid=<name>`` resolves through ``conf/paths`` like every other command and
the call is recorded in the grid folder's log; it writes no ``.hydra`` folder of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from adaragct.apps._app import hydra_app, prologue
from adaragct.experiments.grid import Cell, find_cells, resolve_grid_dir
from adaragct.formats.metrics import GRID_COLUMNS
from adaragct.io import atomic_open

log = logging.getLogger(__name__)
TRACE_COLUMNS = ("retrievals_per_report", "num_predictions", "tokens_per_s", "status")


def build_table(cells: list[Cell]):
    """A DataFrame with one row per cell: swept parameters (sorted), metrics, trace figures, status, folder."""
    import pandas as pd

    params = sorted({k for c in cells for k in c.params})
    rows = []
    for cell in cells:
        row: dict[str, Any] = {k: cell.params.get(k) for k in params}
        for column, key in GRID_COLUMNS.items():
            row[column] = (cell.metrics or {}).get(key)
        row.update(
            retrievals_per_report=cell.retrievals_per_report,
            num_predictions=cell.num_predictions,
            tokens_per_s=cell.tokens_per_s,
            status=cell.status,
            cell=cell.path.name,
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*params, *GRID_COLUMNS, *TRACE_COLUMNS, "cell"])
    for column in [*GRID_COLUMNS, "retrievals_per_report", "tokens_per_s"]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def markdown(table, grid_dir: Path) -> str:
    """The table as markdown, followed by the list of cells without metrics."""
    shown = table.drop(columns=["cell"])
    header = "| " + " | ".join(shown.columns) + " |"
    lines = [f"# Grid {grid_dir.name}: {len(table)} cells", "", header, "|" + "---|" * len(shown.columns)]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    missing = table[table.status != "done"]
    if len(missing):
        lines += ["", f"## {len(missing)} cells without metrics", ""]
        lines += [f"- {row.status}: `{row.cell}`" for row in missing.itertuples()]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plot(table, path: Path) -> None:
    """Clin-F1 by retrieval mode (x) and top_k (bars), mean over the other swept parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = table[table.status == "done"]
    x = "retrieval" if "retrieval" in table else "cell"
    hue = "generation.top_k" if "generation.top_k" in table else None
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(done):
        pivot = (
            done.pivot_table(index=x, columns=hue, values="clin_f1", aggfunc="mean")
            if hue
            else done.groupby(x)["clin_f1"].mean()
        )
        pivot.plot.bar(ax=ax, rot=0)
        if hue:
            ax.legend(title="top_k")
    ax.set_xlabel(x)
    ax.set_ylabel("Clin-F1 (support-weighted)")
    ax.set_title(f"{len(done)}/{len(table)} cells with metrics")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def aggregate(grid: str, output_root: str | Path) -> dict[str, Any]:
    """Write grid_results.{csv,md,png} into the grid folder; returns paths and row counts."""
    grid_dir = resolve_grid_dir(grid, output_root)
    cells = find_cells(grid_dir)
    if not cells:
        from adaragct.errors import DataError

        raise DataError(
            grid_dir,
            "cells",
            "no .hydra/overrides.yaml below the folder",
            "run the grid first: python -m adaragct.infer -m ablation=retrieval_grid ...",
        )
    table = build_table(cells)
    out = {name: grid_dir / f"grid_results.{name}" for name in ("csv", "md", "png")}
    with atomic_open(out["csv"], "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)
    with atomic_open(out["md"], "w", encoding="utf-8") as handle:
        handle.write(markdown(table, grid_dir))
    plot(table, out["png"])
    done = int((table.status == "done").sum())
    print(markdown(table, grid_dir))
    print(
        f"aggregate: {len(table)} cells ({done} with metrics, {len(table) - done} missing) -> "
        f"{out['csv']}, {out['md']}, {out['png']}"
    )
    return {"cells": len(table), "done": done, **{k: str(v) for k, v in out.items()}}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Aggregate the grid ``cfg.grid`` (a name under ``paths.output_root/grids``, or a folder); returns paths and
    row counts."""
    prologue(cfg, "aggregate")
    return aggregate(str(cfg.grid), cfg.paths.output_root)


main = hydra_app("aggregate", run)


if __name__ == "__main__":
    main()
