"""Run identity and where every artifact goes: the one owner of the path rules.

A training run is named by what it trains: ``(data, model, phase[, cell])`` (:func:`run_name`, e.g.
``demo_tiny_rag``; an ablation cell of the demo adds its name). From the name and ``paths.output_root`` follow
its checkpoint folder (:func:`train_dir`) and the checkpoints in it (:func:`checkpoint`: ``last``, ``best``,
``step-NNNNNN``); an inference run's predictions follow from the run it reads and its retrieval mode
(:func:`predictions`), and its scores and viewer sit beside them (:func:`beside`). Grids, the demo's results
folder and the index stage's built files have their rules here too.

The YAML configs reach these rules through OmegaConf resolvers (registered by :func:`register_resolvers` when
``adaragct`` is imported), so no config, Makefile or module spells a path rule again::

    run_name: ${adaragct.run_name:${data.name},${model.name},${phase.name},${cell}}
    checkpoint_dir: ${adaragct.train_dir:${paths.output_root},${run_name}}
    ckpt: ${adaragct.checkpoint:${paths.output_root},${run_name}}                # .../last
    init_from: ${adaragct.checkpoint:${paths.output_root},${adaragct.run_name:${data.name},${model.name},base}}

Paths are joined as strings (``/``), not through :class:`pathlib.Path`, so a config value is exactly the string
it was before this module owned the rule (``Path`` would normalise ``./`` and ``//``). Readers of the index
stage's files do not guess names: they take the file the index ledger recorded (:mod:`adaragct.data.index_files`);
:func:`index_file_name` is the name the index stage gives a file it builds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

#: the checkpoint a run's folder points at after every save (a symlink to the newest ``step-NNNNNN``)
LAST = "last"
#: the checkpoint of the best validation (``best_checkpoint`` in conf/train.yaml), with ``best.json`` beside
BEST = "best"
#: files written beside a predictions file: its scores and its report viewer
BESIDE = {"metrics": "metrics.json", "view": "view.html"}
PREDICTIONS = "predictions.jsonl"
#: Lightning's resume state inside a checkpoint folder (adaragct.train.resume)
LIGHTNING_DIR, RESUME_FILE = "lightning", "last.ckpt"
#: the index stage's files, under ``data.retrieval_dir`` (database, its embeddings, the FAISS bank) or at the
#: configured context locations; built files with a count are named after it (``{k}``)
INDEX_FILES = {
    "database": "database/train_sentences_multi_label.json",
    "embeddings": "database/train_sentence_embeds.npz",
    "bank": "bank",
    "neighbours": "img2img_top{k}.json",
    "oracle_contexts": "oracle_context_top{k}.jsonl",
    "retrieved_contexts": "retrieval_context_top{k}.jsonl",
}


def _join(*parts: object) -> str:
    return "/".join(str(p) for p in parts)


def run_name(data: str, model: str, phase: str, cell: str | None = None) -> str:
    """``<data>_<model>_<phase>``, plus ``_<cell>`` for an ablation cell (its own checkpoints, the demo's stay)."""
    return "_".join(str(p) for p in (data, model, phase, cell) if p not in (None, ""))


def train_dir(output_root: str, run: str) -> str:
    """The checkpoint folder of training run ``run``: ``<output_root>/train/<run>`` (step-N, last, best, logs)."""
    return _join(output_root, "train", run)


def checkpoint(output_root: str, run: str, which: str = LAST) -> str:
    """A checkpoint of run ``run``: ``last`` (default), ``best`` or ``step-NNNNNN``."""
    return _join(train_dir(output_root, run), which)


def predictions_in(folder: str | os.PathLike) -> str:
    """The predictions file of a run whose folder is given (a grid cell's output folder)."""
    return _join(os.fspath(folder), PREDICTIONS)


def resume_file(checkpoint_dir: str | os.PathLike = "") -> str:
    """Lightning's resume state of a training run, ``<checkpoint_dir>/lightning/last.ckpt`` (relative to the
    checkpoint folder when none is given): what a rerun resumes from, and what a finished grid cell has written."""
    return _join(*[p for p in (os.fspath(checkpoint_dir), LIGHTNING_DIR, RESUME_FILE) if p])


def predictions(output_root: str, data: str, model: str, phase: str, retrieval: str) -> str:
    """Where ``infer`` writes the reports of a run: one folder per (trained run, retrieval mode)."""
    return _join(output_root, "infer", f"{run_name(data, model, phase)}_{retrieval}", PREDICTIONS)


def beside(path: str | os.PathLike, kind: str) -> str:
    """A file written next to another (a predictions or metrics file): ``metrics`` (JSON; its markdown twin is
    the same name with ``.md``) or ``view`` (the report viewer's html)."""
    head, _, _ = os.fspath(path).rpartition("/")
    return _join(head, BESIDE[kind]) if head else BESIDE[kind]


def grid_dir(output_root: str, grid: str) -> str:
    """A named multirun grid's folder (its cells, ``grid_results.*``): ``<output_root>/grids/<grid>``."""
    return _join(output_root, "grids", grid)


def grid_cell(*pairs: object) -> str:
    """A grid cell's readable name from ``(prefix, value)`` pairs: ``grid_cell("oracle", 0.7, "seed", 1)`` is
    ``oracle0.7_seed1`` (the folder the training grid writes and the inference grid reads)."""
    if len(pairs) % 2:
        raise ValueError(f"grid cell parts come in (prefix, value) pairs, got {pairs!r}")
    return "_".join(f"{prefix}{value}" for prefix, value in zip(pairs[::2], pairs[1::2], strict=True))


def grid_checkpoint_dir(output_root: str, grid: str, *pairs: object) -> str:
    """The checkpoint folder of one training cell of grid ``grid`` (cell named by :func:`grid_cell`)."""
    return _join(grid_dir(output_root, grid), "checkpoints", grid_cell(*pairs))


def last(checkpoint_dir: str) -> str:
    """The newest checkpoint of a checkpoint folder (a grid cell's; a named run's is :func:`checkpoint`)."""
    return _join(checkpoint_dir, LAST)


def hydra_dir(output_root: str, task: str, kind: str, stamp: str) -> str:
    """Hydra's folder of one run (``kind=runs``) or one multirun (``multiruns``) of app ``task``."""
    return _join(output_root, task, kind, stamp)


def demo_ablations_dir(output_root: str | os.PathLike) -> str:
    """``make demo-ablations``' folder: one results folder per cell, and the cells' comparison with the demo."""
    return _join(os.fspath(output_root), "demo_ablations")


def demo_results(output_root: str | os.PathLike, cell: str | None = None) -> str:
    """The demo's results folder (``outputs/demo``), or an ablation cell's (``outputs/demo_ablations/<cell>``)."""
    if cell in (None, ""):
        return _join(os.fspath(output_root), "demo")
    return _join(demo_ablations_dir(output_root), cell)


def results_page(root_dir: str | os.PathLike, cell: str | None = None) -> str | None:
    """Where ``make demo`` publishes its results page in a checkout: ``docs/results.md`` (generated, never copied
    by hand); an ablation cell publishes none (``make demo-ablations`` writes its own comparison)."""
    return None if cell not in (None, "") else _join(os.fspath(root_dir), "docs", "results.md")


def demo_row(results_dir: str, row: str) -> str:
    """The predictions of one results row of the demo, ``<phase>_<retrieval>`` or ``copy_<baseline>``."""
    return _join(results_dir, row, PREDICTIONS)


def demo_logs(results_dir: str, step: str) -> str:
    """The output folder (logs, summaries) of one step of the demo: ``prepare``, ``index``, ``train_<phase>``."""
    return _join(results_dir, step)


def demo_visual_gain(results_dir: str, phase: str) -> str:
    """The visual gain (with its interval) of the demo's trained ``phase`` model."""
    return _join(results_dir, f"visual_gain_{phase}.json")


def index_file_name(piece: str, k: int | None = None) -> str:
    """The name the index stage gives a file it builds (relative to ``data.retrieval_dir`` for the database,
    embeddings, bank and neighbours; a file name for the contexts); ``k``: the neighbours or sentences it holds."""
    name = INDEX_FILES[piece]
    if "{k}" in name:
        if k is None:
            raise ValueError(f"index file {piece!r} is named after its count: give k")
        return name.format(k=int(k))
    return name


RESOLVERS: dict[str, Callable[..., str]] = {
    "run_name": run_name,
    "train_dir": train_dir,
    "checkpoint": checkpoint,
    "predictions": predictions,
    "predictions_in": predictions_in,
    "resume_file": resume_file,
    "grid_dir": grid_dir,
    "grid_checkpoint_dir": grid_checkpoint_dir,
    "last": last,
    "hydra_dir": hydra_dir,
    "demo_results": demo_results,
    "results_page": results_page,
}


def register_resolvers() -> None:
    """``${adaragct.<rule>:...}`` for every rule in :data:`RESOLVERS` (idempotent)."""
    from omegaconf import OmegaConf

    for name, rule in RESOLVERS.items():
        if not OmegaConf.has_resolver(f"adaragct.{name}"):
            OmegaConf.register_new_resolver(f"adaragct.{name}", rule)
