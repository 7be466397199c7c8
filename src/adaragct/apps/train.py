"""Train one phase, align, base or rag (docs/method.md#model-and-training): the Hydra app over ``conf/train.yaml``.

    python -m adaragct.train model=tiny data=demo phase=base
    python -m adaragct.train model=tiny data=demo phase=rag          # init_from: outputs/train/demo_tiny_base/last
    python -m adaragct.train experiment=base_8b data=ctrate strategy=ddp trainer.devices=4
    python -m adaragct.train model=70b model.quantization=4bit phase=base    # QLoRA on one GPU

Checkpoints (trainable state + tokenizer + resolved config) go to ``checkpoint_dir/step-NNNNNN`` with
``checkpoint_dir/last`` pointing at the newest; Lightning's resume state to ``checkpoint_dir/lightning/last.ckpt``
every ``resume_every_n_steps``. Rerunning the same command after a kill resumes from it, exactly (same data
order, context draws and dropout as the uninterrupted run; :mod:`adaragct.train.resume`); ``resume=false`` starts
over, ``ckpt_path=<file.ckpt>`` resumes from that file. Heavy libraries are imported inside ``run`` so that
``--help`` and config errors answer at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from adaragct import artifacts
from adaragct.apps._app import hydra_app, prologue

log = logging.getLogger(__name__)


def _instantiate(node: Any, **runtime: Any) -> Any:
    """Log the ``_target_`` first (a failing import then names the config node), then build it."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    log.info("instantiating %s", node["_target_"])
    try:
        return instantiate(node, **runtime)
    except InstantiationException as error:  # surface the real error (e.g. fsdp on CPU), not Hydra's wrapper
        if error.__cause__ is None:
            raise
        error.__cause__.add_note(f"(while instantiating {node['_target_']})")
        raise error.__cause__ from None


def _loggers(cfg: DictConfig, resuming: bool = False) -> list[Any]:
    """One Lightning logger per ``logger.<name>`` node that has a ``_target_`` (``logger=none``: none); a resumed
    run goes on logging to its wandb run (adaragct.tracking)."""
    from adaragct.tracking import resumed_run

    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if isinstance(node, DictConfig) and "_target_" in node:
            runtime = resumed_run(cfg.checkpoint_dir) if resuming and name == "wandb" else {}
            loggers.append(_instantiate(node, **runtime))
            log.info("logger %s -> %s", name, node.get("save_dir"))
    return loggers


def _callbacks(cfg: DictConfig, tokenizer: Any, config_yaml: str) -> list[Any]:
    """The optional callbacks of ``cfg.callbacks`` (one per node with a ``_target_``: clinical metrics, early
    stopping, ...) first, so what they log at a validation is there when ours run; then our checkpoints (``step-N``,
    ``last``, ``best`` by ``best_checkpoint``) at every validation and Lightning's resume state every
    ``resume_every_n_steps`` (null: at every validation), both also at the end; with ``logger=wandb``, the config
    and parameter counts in the run, its id beside the checkpoints."""
    from adaragct.tracking import wandb_node
    from adaragct.train.callbacks import TrackedRun, TrainableCheckpoint
    from adaragct.train.resume import ResumeCheckpoint, ResumeState

    nodes = (cfg.get("callbacks") or {}).items()
    callbacks = [
        _instantiate(node) for _, node in nodes if isinstance(node, DictConfig) and "_target_" in node
    ]
    every = int(cfg.trainer.get("val_check_interval") or 0) or None
    best = cfg.get("best_checkpoint") or {}
    callbacks += [
        TrainableCheckpoint(
            cfg.checkpoint_dir,
            tokenizer,
            config_yaml,
            every_n_steps=every,
            monitor=best.get("monitor"),
            mode=best.get("mode", "max"),
        ),
        ResumeState(config_yaml, cfg.checkpoint_dir),
        ResumeCheckpoint(cfg.checkpoint_dir, every_n_steps=cfg.get("resume_every_n_steps") or every),
    ]
    if wandb_node(cfg) is not None:  # config, parameter counts and the run id for infer (adaragct.tracking)
        callbacks.append(TrackedRun(cfg.checkpoint_dir, OmegaConf.to_container(cfg, resolve=True)))
    return callbacks


def _seed(cfg: DictConfig) -> str:
    """Step 1: renamed keys refused, threads and seeds (data order, context rolls, LoRA init); returns the
    resolved config as YAML."""
    prologue(
        cfg, "train", seed="everything"
    )  # a 0.1 experiment file's `stage:` node would be read by nothing
    for key in ("init_from", "projector_from"):  # record step-N, not the moving `last`
        where = cfg.phase.get(key)
        if where and (key != "init_from" or cfg.phase.name == "rag") and Path(where).exists():
            cfg.phase[key] = str(Path(where).resolve())
    return OmegaConf.to_yaml(cfg, resolve=True)


def _datamodule(cfg: DictConfig, tokenizer: Any, specs: Any) -> Any:
    """Step 3: phase=rag rolls contexts per sample (``phase.contexts``), phase=base has none."""
    from adaragct.data.datamodule import ReportDataModule
    from adaragct.data.prompt import PromptConfig

    log.info("instantiating %s", ReportDataModule.__qualname__)
    return ReportDataModule(
        cfg.data,
        tokenizer,
        PromptConfig(**cfg.prompt),
        specs.loader,
        contexts=specs.phase.contexts,
        seed=cfg.seed,
        visual_dims=dict(specs.model.visual_dims),
        visual_partners=bool(cfg.visual_gain.enabled),
    )


def _findings(cfg: DictConfig, datamodule: Any) -> Any:
    """Step 3b: with ``prompt.findings_sentence``, the finding classifier (adaragct.models.findings), fitted on
    the training volumes by the first stage that has none to inherit (phase align, or phase base without
    ``phase.projector_from``); later stages take it from their starting checkpoint."""
    if cfg.prompt.get("findings_sentence") is None:
        return None
    if cfg.phase.name == "rag" or cfg.phase.get("projector_from"):
        return None
    import numpy as np

    from adaragct.models.findings import FindingClassifier

    datamodule.setup("fit")
    volumes, slots = datamodule.train_set.volumes, list(cfg.model.visual_slots)
    visual = {s: np.stack([v.visual[s] for v in volumes]) for s in slots}
    log.info("fitting the finding classifier on %d training volumes (slots %s)", len(volumes), slots)
    return FindingClassifier.fit(
        visual,
        datamodule.train_labels(volumes),
        slots=slots,
        **OmegaConf.to_container(cfg.findings_classifier),
    )


def _module(cfg: DictConfig, tokenizer: Any, specs: Any, findings: Any = None) -> Any:
    """Step 4: the LightningModule with its optimizer and scheduler factories (``cfg.phase``); the model is built
    lazily in ``configure_model`` (under the strategy), phase=rag merging ``phase.init_from`` first."""
    from adaragct.models.module import ReportGenerationModule

    return ReportGenerationModule(
        specs.model,
        specs.phase,
        tokenizer,
        optimizer=_instantiate(cfg.phase.optimizer),
        scheduler=_instantiate(cfg.phase.scheduler),
        init_from=specs.phase.init_from if specs.phase.name == "rag" else None,
        visual_gain=OmegaConf.to_container(cfg.visual_gain),
        findings=findings,
        needs_findings=cfg.prompt.get("findings_sentence") is not None,
        allow_base_mismatch=bool(cfg.get("allow_base_mismatch", False)),
    )


def _summary(cfg: DictConfig, trainer: Any) -> dict[str, float]:
    """Step 9: the final callback metrics, logged with the checkpoint written."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    last = Path(artifacts.last(cfg.checkpoint_dir))
    log.info(
        "done: %d optimizer steps, metrics %s; checkpoint %s -> %s",
        trainer.global_step,
        {k: round(v, 4) for k, v in metrics.items()},
        last,
        last.resolve() if last.exists() else None,
    )
    return metrics


def run(cfg: DictConfig) -> dict[str, float]:
    """Run one training phase; return the final callback metrics (``val/loss`` is the sweep objective)."""
    import lightning as L

    from adaragct.models.builders import load_tokenizer
    from adaragct.models.specs import TrainSpecs
    from adaragct.train.callbacks import finish_runs
    from adaragct.train.resume import AtomicCheckpointIO, resume_from

    # 0. the app hands over the config unresolved (model.path: ${data.tiny_lm_dir}); every node below is passed on
    # as plain values, so resolve it once here (the builder once got the literal string and random-initialised)
    OmegaConf.resolve(cfg)
    # 1. renamed keys refused, threads and seeds; 1b. whether this run resumes (a rerun of a killed command does)
    config_yaml = _seed(cfg)
    specs = TrainSpecs.from_config(cfg)  # the model, phase and loader settings, checked once (adaragct.specs)
    ckpt_path = resume_from(cfg, config_yaml)
    # 2. tokenizer with the special tokens (docs/method.md#model-and-training) (from the model directory: tiny = the pretrained demo LM)
    tokenizer = load_tokenizer(specs.model.path)
    # 3. data
    datamodule = _datamodule(cfg, tokenizer, specs)
    # 4. model (with the finding classifier when the prompt names findings), optimizer, LR schedule
    module = _module(cfg, tokenizer, specs, _findings(cfg, datamodule))
    # 5. strategy: fsdp/deepspeed on a CPU run fail here, before any model is built
    strategy = _instantiate(cfg.strategy, accelerator=cfg.trainer.accelerator)
    # 6. loggers and callbacks are runtime objects, injected here rather than written into YAML
    loggers, callbacks = _loggers(cfg, ckpt_path is not None), _callbacks(cfg, tokenizer, config_yaml)
    # 7. trainer (its resume checkpoints written atomically: a kill mid-write leaves the previous one)
    log.info("instantiating lightning.pytorch.Trainer")
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer),
        strategy=strategy,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=cfg.paths.output_dir,
    )
    # 8. fit, from step 0 or from the resume checkpoint of 1b
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    finish_runs(loggers)  # wandb writes its run out now, not at exit (infer may resume it in this process)
    # 9. summary
    return _summary(cfg, trainer)


def _objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """What a sweep optimizes (``optimized_metric``, e.g. Optuna's ``val/loss``), None without one."""
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


main = hydra_app("train", run, result=_objective)


if __name__ == "__main__":
    main()
