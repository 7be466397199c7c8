"""Read an ablation grid folder: one :class:`Cell` per multirun job folder, with its swept values and metrics.

A cell is a folder holding ``.hydra/overrides.yaml`` (written by Hydra for every job). Its swept parameters are
its overrides minus the keys the grid excludes from folder names (``hydra.job.config.override_dirname
.exclude_keys`` in the cell's ``.hydra/hydra.yaml``), i.e. exactly what the folder name shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from adaragct import artifacts
from adaragct.errors import DataError
from adaragct.io import read_json, read_jsonl


@dataclass
class Cell:
    """One grid cell: folder, swept values, metrics (None when the cell has not finished) and trace figures."""

    path: Path
    params: dict[str, str]
    metrics: dict[str, Any] | None
    retrievals_per_report: float | None = None
    num_predictions: int = 0
    tokens_per_s: float | None = None
    status: str = "missing"
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_grid_dir(grid: str, output_root: str | Path) -> Path:
    """A grid given as a folder (exists or contains a slash) or as a name under ``<output_root>/grids``."""
    candidate = Path(grid)
    path = candidate if candidate.is_dir() or "/" in grid else Path(artifacts.grid_dir(output_root, grid))
    if not path.is_dir():
        raise DataError(
            path,
            "grid folder",
            "does not exist",
            "pass grid=<name> of a grid run under outputs/grids or grid=<path to its folder>",
        )
    return path.resolve()


def _parse_override(item: str) -> tuple[str, str]:
    key, _, value = item.lstrip("+~").partition("=")
    return key, value


def _swept(cell_dir: Path) -> dict[str, str]:
    overrides = OmegaConf.load(cell_dir / ".hydra" / "overrides.yaml")
    hydra_yaml = cell_dir / ".hydra" / "hydra.yaml"
    excluded: set[str] = set()
    if hydra_yaml.is_file():
        node = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.job.config.override_dirname.exclude_keys")
        excluded = set(node or [])
    return dict(kv for kv in map(_parse_override, overrides) if kv[0] not in excluded)


def trace_figures(predictions: Path) -> tuple[int, float | None]:
    """(number of predictions, mean ``retrieval_count`` per report) of a predictions JSONL."""
    if not predictions.is_file():
        return 0, None
    counts = []
    for lineno, record in enumerate(
        read_jsonl(predictions), start=1
    ):  # malformed lines: DataError with the line
        try:
            counts.append(int(record.get("retrieval_count", 0)))
        except (AttributeError, ValueError) as err:
            raise DataError(
                predictions,
                f"record {lineno}",
                f"not a prediction record ({err})",
                "delete the line; rerunning the grid regenerates the volume",
            ) from err
    return len(counts), (sum(counts) / len(counts) if counts else None)


def read_cell(cell_dir: Path) -> Cell:
    """Everything the table needs from one cell folder (metrics.json, cell.json, predictions.jsonl)."""
    info = read_json(cell_dir / "cell.json") if (cell_dir / "cell.json").is_file() else {}
    predictions = Path(info["output"]) if info.get("output") else cell_dir / artifacts.PREDICTIONS
    metrics_path = Path(artifacts.beside(predictions, "metrics"))
    metrics = read_json(metrics_path) if metrics_path.is_file() else None
    n_pred, per_report = trace_figures(predictions)
    summary = info.get("summary") or {}
    status = "done" if metrics is not None else ("failed" if info.get("status") == "failed" else "missing")
    return Cell(
        path=cell_dir,
        params=_swept(cell_dir),
        metrics=metrics,
        retrievals_per_report=per_report,
        num_predictions=n_pred,
        tokens_per_s=summary.get("tokens_per_s"),
        status=status,
        extra={"grid_name": info.get("grid_name")},
    )


def find_cells(grid_dir: Path) -> list[Cell]:
    """Every cell below ``grid_dir`` (any depth, so nested sweep subdirs work), sorted by folder name."""
    dirs = sorted(p.parent.parent for p in grid_dir.rglob(".hydra/overrides.yaml"))
    return [read_cell(d) for d in dirs if d != grid_dir]
