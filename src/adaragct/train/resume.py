"""Rerunning a ``train`` command resumes it, exactly: where the resume state lives, when it is used, what it holds.

Lightning's resume checkpoint is ``checkpoint_dir/lightning/last.ckpt``, written every ``resume_every_n_steps``
optimizer steps and when training ends (:class:`ResumeCheckpoint`), atomically (:class:`AtomicCheckpointIO`). It
holds the trainable state, the optimizer and schedule, the loops' progress, the training loader's position
(:class:`adaragct.data.resumable.ResumableDataLoader`) and, from :class:`ResumeState`, the run's resolved config
and the torch/CUDA/numpy/python random states (dropout), which Lightning does not save. A run resumed from it
reaches the same weights as one never interrupted (``tests/models/test_resume.py`` kills one to check).

The same command, rerun, picks it up (:func:`resume_from`) when it was written with the same settings, and
refuses, naming the settings that differ, when not:

    python -m adaragct.train experiment=demo phase=base                 # killed at step 700 of 2000
    python -m adaragct.train experiment=demo phase=base                 # resuming from .../last.ckpt (step 700)
    python -m adaragct.train experiment=demo phase=base resume=false    # start over (old run moved aside)
    python -m adaragct.train ... ckpt_path=/runs/x/lightning/last.ckpt  # resume from that file, whatever it holds
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from adaragct import artifacts
from adaragct.artifacts import LIGHTNING_DIR
from adaragct.errors import DataError, UsageError

log = logging.getLogger(__name__)

# checkpoint_dir/lightning/run.yaml: the settings of the run writing there (a sharded checkpoint, strategy=deepspeed's
# folder of shards, is not one file whose callbacks state can be read; its run's settings are read from here)
RUN_SETTINGS_FILE = "run.yaml"
# settings that do not change what a run trains: another value still resumes it (checkpoint_dir and run_name
# only say where the run is: a moved run folder resumes)
NOT_SETTINGS = (
    "checkpoint_dir",
    "run_name",
    "cell",
    "ckpt_path",
    "resume",
    "resume_every_n_steps",
    "paths",
    "logger",
    "task_name",
    "optimized_metric",
    "callbacks",  # what is measured and logged at validations, and when to stop: not the weights of a step
    "best_checkpoint",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
)


def resume_file(checkpoint_dir: str | Path) -> Path:
    """``checkpoint_dir/lightning/last.ckpt``: the file a rerun resumes from (:func:`adaragct.artifacts.resume_file`)."""
    return Path(artifacts.resume_file(checkpoint_dir))


def run_settings(config_yaml: str) -> dict[str, Any]:
    """The resolved config as ``{dotted.key: value}``, less :data:`NOT_SETTINGS`: what must match to resume."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(OmegaConf.create(config_yaml)), "")
    return {
        k: v
        for k, v in flat.items()
        if not any(k == skip or k.startswith(f"{skip}.") for skip in NOT_SETTINGS)
    }


def settings_diff(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: saved -> now`` for every setting that differs (``<unset>`` where one side lacks it)."""
    unset = "<unset>"
    return [
        f"{k}: {saved.get(k, unset)!r} -> {now.get(k, unset)!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k, unset) != now.get(k, unset)
    ]


def _rng_states() -> dict[str, Any]:
    """Every global random state a training step draws from, as plain tensors and numbers (the checkpoint is
    loaded with ``weights_only=True``, which takes no numpy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeState(Callback):
    """Puts the run's resolved config and the global random states into Lightning's checkpoint, and restores
    the random states when a resumed run starts training (after everything that runs before the first step and
    draws from them: model building, LoRA init).

    Args:
        config_yaml: the run's resolved config (:func:`resume_from` compares it with the next run's).
    """

    def __init__(self, config_yaml: str, checkpoint_dir: str | Path | None = None) -> None:
        self.config_yaml = config_yaml
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self._restore: dict[str, Any] | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        """``checkpoint_dir/lightning/run.yaml``: this run's settings, beside the resume state it will write (read
        by :func:`resume_from` when that state is a folder of shards)."""
        if self.checkpoint_dir is None or not trainer.is_global_zero:
            return
        from adaragct.io import atomic_open

        path = self.checkpoint_dir / LIGHTNING_DIR / RUN_SETTINGS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            handle.write(self.config_yaml)

    def state_dict(self) -> dict[str, Any]:
        """Called on every rank (Lightning gathers callback states before rank 0 writes): with several processes
        every rank's random states are gathered, since each draws its own dropout."""
        states = _rng_states()
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return {"config": self.config_yaml, "rng": states}
        per_rank: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(per_rank, states)
        return {"config": self.config_yaml, "rng": per_rank[0], "rng_per_rank": per_rank}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        per_rank = state_dict.get("rng_per_rank")
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if distributed else 0
        if per_rank and len(per_rank) != (torch.distributed.get_world_size() if distributed else 1):
            log.warning(
                "the resume checkpoint holds the random states of %d processes, this run has another count: "
                "each rank restarts from rank 0's (the data order and dropout differ from an uninterrupted run)",
                len(per_rank),
            )
            per_rank = None
        self._restore = per_rank[rank] if per_rank else state_dict["rng"]

    def on_train_start(self, trainer, pl_module) -> None:
        fit_loop = trainer.fit_loop
        if getattr(fit_loop, "_combined_loader_states_to_load", None) and fit_loop._data_fetcher is not None:
            # With trainer.max_epochs set, the schedule's length (estimated_stepping_batches) makes Lightning build
            # the training iterator before it restores the loops, and it never hands the loader its saved
            # position: do it here and rebuild the iterator from there.
            fit_loop._load_combined_loader_states()
            iter(fit_loop._data_fetcher)
        if self._restore is not None:
            _set_rng_states(self._restore)
            self._restore = None


class ResumeCheckpoint(ModelCheckpoint):
    """``checkpoint_dir/lightning/last.ckpt`` every ``every_n_steps`` optimizer steps and at the end of training
    (Lightning's own ``save_last`` writes at the end only when it wrote nothing before: a run of 250 steps saved
    every 100 would otherwise resume at 200 and train 50 steps again)."""

    def __init__(self, checkpoint_dir: str | Path, every_n_steps: int | None) -> None:
        super().__init__(
            dirpath=Path(checkpoint_dir) / LIGHTNING_DIR,
            filename="resume",
            save_last=True,
            save_top_k=0,
            every_n_train_steps=every_n_steps,
        )

    def on_train_end(self, trainer, pl_module) -> None:
        if not self._should_skip_saving_checkpoint(trainer):  # skips a step already saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file beside it, flushed to disk, then renames it over the old one:
    a kill during the write leaves the previous ``last.ckpt`` whole. (Lightning writes through an fsspec
    transaction whose temporary file lies in the system's temp folder: when that is another filesystem, the final
    move is a copy, which a kill can cut short, and a killed write leaves its temporary file behind.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # still there only when the write failed
        return None


def _saved_run(path: Path) -> tuple[str | None, int]:
    """The config a resume checkpoint was written with (None: not written by this version) and its step."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
    ) as error:  # truncated or foreign
        raise DataError(
            path,
            "file",
            f"cannot be read as a Lightning checkpoint ({' '.join(str(error).split())[:200]})",
            "rerun with resume=false to start over (the old run is moved aside), or ckpt_path=<an intact .ckpt>",
        ) from None
    state = ckpt.get("callbacks", {}).get(ResumeState.__qualname__)
    return (state or {}).get("config"), int(ckpt.get("global_step", 0))


def _saved_sharded_run(path: Path) -> str | None:
    """The settings of the run that wrote the sharded checkpoint ``path`` (its ``run.yaml``), None when absent."""
    settings = path.parent / RUN_SETTINGS_FILE
    return settings.read_text(encoding="utf-8") if settings.is_file() else None


def _move_aside(checkpoint_dir: Path) -> None:
    """resume=false: the previous run's folder becomes ``<checkpoint_dir>.replaced-<UTC time>`` (never deleted)."""
    if not checkpoint_dir.is_dir() or not any(checkpoint_dir.iterdir()):
        return
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # rank 0 moves it; the other ranks then find nothing to resume
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = checkpoint_dir.with_name(f"{checkpoint_dir.name}.replaced-{stamp}")
    for n in range(2, 1000):  # two restarts within a second
        if not target.exists():
            break
        target = checkpoint_dir.with_name(f"{checkpoint_dir.name}.replaced-{stamp}-{n}")
    os.rename(checkpoint_dir, target)
    log.warning(
        "resume=false: moved the previous run's checkpoints %s -> %s (delete it when done)",
        checkpoint_dir,
        target,
    )


def resume_from(cfg: DictConfig, config_yaml: str) -> str | None:
    """The Lightning checkpoint this run resumes from, or None to train from step 0.

    ``ckpt_path`` wins when set. Otherwise, with ``resume`` (the default), ``checkpoint_dir/lightning/last.ckpt``
    when it exists and was written with the same settings (:func:`run_settings`): other settings are a
    DataError naming them and the fixes. ``resume=false`` moves an existing ``checkpoint_dir`` aside first.
    """
    explicit, resume = cfg.get("ckpt_path"), cfg.get("resume", True)
    if explicit:
        if not resume:
            raise UsageError(
                f"ckpt_path={explicit} resume=false",
                "ckpt_path resumes from a checkpoint, resume=false starts over",
                "drop one of them",
            )
        if Path(str(explicit)).is_file():
            log.info("resuming from %s (ckpt_path)", explicit)
        return str(explicit)  # or one of Lightning's names ("last": the newest, if any)
    checkpoint_dir = Path(cfg.checkpoint_dir)
    if not resume:
        _move_aside(checkpoint_dir)
        return None
    path = resume_file(checkpoint_dir)
    if not path.exists():
        return None
    if path.is_dir():  # strategy=deepspeed saves a folder of shards: its run's settings are in run.yaml
        saved, step, where = _saved_sharded_run(path), None, path.parent / RUN_SETTINGS_FILE
    else:
        (saved, step), where = _saved_run(path), path
    if saved is None:
        raise DataError(
            where,
            f"callbacks.{ResumeState.__qualname__}" if where == path else "file",
            "holds no run settings (written before runs resumed by themselves), so it cannot be checked",
            f"ckpt_path={path} to resume from it anyway, or resume=false to start over",
        )
    differs = settings_diff(run_settings(saved), run_settings(config_yaml))
    if differs:
        shown = "; ".join(differs[:5]) + (f"; and {len(differs) - 5} more" if len(differs) > 5 else "")
        raise DataError(
            path,
            "config",
            f"written by a run of this checkpoint_dir with other settings ({shown})",
            "rerun with the checkpoint's settings to resume it, resume=false to start over (the old run is moved "
            f"aside), or ckpt_path={path} to resume from it with the new settings",
        )
    done = " = trainer.max_steps: nothing left to train" if step == cfg.trainer.get("max_steps") else ""
    at = "a sharded checkpoint" if step is None else f"step {step}{done}"
    log.info("resuming from %s (%s; resume=false starts over)", path, at)
    return str(path)
