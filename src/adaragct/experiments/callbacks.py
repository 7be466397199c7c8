"""Hydra callback for ablation grids: says which cells were already finished and records each cell's summary.

Configured by ``conf/ablation/*.yaml`` (``hydra.callbacks.grid_cell``). A grid writes every cell to a stable folder
(``outputs/grids/<grid_name>/<override_dirname>``), so a rerun of the same grid reaches the same folders: the
infer app resumes from the predictions already there (nothing is generated for a finished cell) and this callback
tells the user so, then writes ``cell.json`` (grid name, overrides, status, new predictions, the app's summary)
next to the cell's ``metrics.json`` -- infer does not log to wandb, so the grid name travels in this file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from adaragct.formats.metrics import metric_key
from adaragct.io import read_json, write_json

log = logging.getLogger(__name__)
CELL_JSON = "cell.json"


def count_lines(path: Path) -> int:
    """Complete records in a JSONL file (0 when absent); a partial last line is not counted."""
    if not path.is_file():
        return 0
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.endswith(b"\n") and line.strip())


def _state(path: Path | None) -> tuple[int, float | None]:
    """(records, mtime_ns) of the cell's output file, to tell a skipped cell from one that produced something.

    Records are JSONL lines (predictions) or 1 for any other file (a checkpoint).
    """
    if path is None or not path.is_file():
        return 0, None
    return (count_lines(path) if path.suffix == ".jsonl" else 1), path.stat().st_mtime_ns


class GridCellCallback(Callback):
    """Marks grid cells as ``ran`` or ``skipped`` and writes ``cell.json`` into each cell folder.

    Args:
        output_key: the config key of what a finished cell has produced (``predictions`` for infer,
            ``checkpoint_dir`` for train); its record count and mtime before and after the job decide the status.
        output_file: a file inside ``output_key`` when that is a folder (train: ``lightning/last.ckpt``, which a
            rerun of a finished cell, resumed with ``ckpt_path=last``, leaves untouched).
    """

    def __init__(self, output_key: str | None = "predictions", output_file: str | None = None) -> None:
        self.output_key, self.output_file = output_key, output_file
        self._before: tuple[int, float | None] = (0, None)
        self._statuses: list[str] = []

    def _output(self, config: DictConfig) -> Path | None:
        if not self.output_key:
            return None
        value = OmegaConf.select(config, self.output_key)
        if not value:
            return None
        return Path(str(value)) / self.output_file if self.output_file else Path(str(value))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._before = _state(self._output(config))
        cell = HydraConfig.get().job.override_dirname or "(no overrides)"
        if self._before[0]:
            print(
                f"grid cell {cell}: {self._output(config)} exists ({self._before[0]} records); resuming from it "
                "(only what is missing is computed)",
                flush=True,
            )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        cell_dir = Path(hydra_cfg.runtime.output_dir)
        output = self._output(config)
        after = _state(output)
        if job_return.status != JobStatus.COMPLETED:
            status = "failed"
        elif self._before[0] and after == self._before:
            status = "skipped"
        else:
            status = "ran"
        self._statuses.append(status)
        previous = read_json(cell_dir / CELL_JSON) if (cell_dir / CELL_JSON).is_file() else {}
        summary = job_return.return_value if isinstance(job_return.return_value, dict) else None
        record = {
            "grid_name": OmegaConf.select(config, "grid_name"),
            "override_dirname": hydra_cfg.job.override_dirname,
            "overrides": list(hydra_cfg.overrides.task),
            "status": status,
            "output": str(output) if output else None,
            "records": after[0],
            "new_records": after[0] - self._before[0],
            # a skipped rerun generated nothing: keep the throughput measured when the cell ran
            "summary": previous.get("summary") if status == "skipped" else _plain(summary),
        }
        write_json(cell_dir / CELL_JSON, record)
        if status == "skipped":
            print(
                f"grid cell {hydra_cfg.job.override_dirname}: already finished, skipped "
                f"(nothing new written, {after[0]} records kept)",
                flush=True,
            )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self._statuses:  # jobs ran in other processes (launcher=slurm): each wrote its own cell.json
            print(
                f"grid {OmegaConf.select(config, 'grid_name')}: cells ran remotely; per-cell status in "
                f"{config.hydra.sweep.dir}/<cell>/{CELL_JSON}",
                flush=True,
            )
            return
        counts = {s: self._statuses.count(s) for s in ("ran", "skipped", "failed")}
        print(
            f"grid {OmegaConf.select(config, 'grid_name')}: {len(self._statuses)} cells, {counts['ran']} ran, "
            f"{counts['skipped']} skipped (already finished), {counts['failed']} failed -> "
            f"{config.hydra.sweep.dir}",
            flush=True,
        )


def _plain(value: Any) -> Any:
    """JSON-safe copy of an app's return value (drops what json cannot hold, e.g. tensors)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not k.startswith(metric_key("clinical_d"))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
