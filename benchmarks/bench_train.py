"""Training throughput: our Lightning step against a plain PyTorch loop, and what length grouping buys.

    make bench-train                                  (= python benchmarks/bench_train.py; needs `make prepare`)
    python benchmarks/bench_train.py --steps 30 --phase base

On the demo's model and batches (``conf/demo.yaml``'s overrides, the phase's own settings), four runs of the same
number of optimizer steps, each from the same initial weights:

- ``lightning``: the train app's (``adaragct.apps.train``) datamodule, module, optimizer and schedule under a Lightning ``Trainer``
  (gradient accumulation and clipping as configured; checkpoints and loggers off, they are not the step);
- ``plain``: the same module's forward and loss, optimizer and schedule, on the same batches, in a hand-written
  loop (backward, clip, step, schedule, zero_grad);

each with length grouping off (shuffled batches, the demo before issue 20) and on (``datamodule.length_grouping``).
Tokens are attended tokens (padding excluded); the first ``--warmup`` optimizer steps are not timed. Printed: tokens/s
of each, Lightning's overhead against the plain loop (goal <= 10%), the share of padded positions, and the
speed-up of grouping.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _config(phase: str, grouping: bool):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from adaragct import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        demo = compose("demo", overrides=[f"paths.root_dir={ROOT}"])
        cfg = compose(
            "train",
            overrides=[
                f"paths.root_dir={ROOT}",
                "paths.output_dir=/tmp/bench_train",
                *demo.overrides,
                f"phase={phase}",
                *demo.train_overrides[phase],  # the demo's own settings of this phase (lr, warmup)
                "phase.projector_from=null" if phase == "base" else "phase.init_from=null",
                f"datamodule.length_grouping={str(grouping).lower()}",
                "logger=none",
            ],
        )
    OmegaConf.resolve(cfg)
    return cfg, demo


def _parts(cfg):
    """Datamodule and module exactly as ``adaragct.apps.train.run`` builds them, with the model built."""
    from adaragct.apps.train import _datamodule, _findings, _module, _seed
    from adaragct.models.builders import load_tokenizer

    _seed(cfg)
    tokenizer = load_tokenizer(cfg.model.path)
    datamodule = _datamodule(cfg, tokenizer)
    datamodule.setup("fit")
    module = _module(cfg, tokenizer, _findings(cfg, datamodule))
    module.configure_model()
    return datamodule, module


class _Timer:
    """Attended tokens and seconds of optimizer steps after ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.tokens, self.seconds, self._start = warmup, 0, 0.0, None

    def begin(self, step: int) -> None:
        if step == self.warmup and self._start is None:
            self._start = time.perf_counter()

    def count(self, step: int, tokens: int) -> None:
        if step >= self.warmup:
            self.tokens += tokens

    def end(self) -> None:
        self.seconds = time.perf_counter() - self._start if self._start else float("nan")

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def run_lightning(cfg, steps: int, warmup: int) -> _Timer:
    import lightning as L
    from lightning.pytorch import Callback

    datamodule, module = _parts(cfg)
    timer = _Timer(warmup)

    class Clock(Callback):
        step = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.step = trainer.global_step  # the optimizer step this micro-batch belongs to
            timer.begin(self.step)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            timer.count(self.step, int(batch["attention_mask"].sum()))

    own = ("max_steps", "val_check_interval", "enable_progress_bar")
    trainer_cfg = {k: v for k, v in cfg.trainer.items() if k not in own}
    trainer = L.Trainer(
        **trainer_cfg,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
    )
    trainer.fit(module, datamodule=datamodule)
    timer.end()
    return timer


def run_plain(cfg, steps: int, warmup: int) -> _Timer:
    datamodule, module = _parts(cfg)
    accumulate, clip = int(cfg.trainer.accumulate_grad_batches), float(cfg.trainer.gradient_clip_val or 0)
    module.model.train()
    params = [p for p in module.model.parameters() if p.requires_grad]

    class _Trainer:  # configure_optimizers reads the run length from its trainer
        estimated_stepping_batches = steps

    module._trainer = _Trainer()
    schedule = module.configure_optimizers()
    optimizer, scheduler = schedule["optimizer"], schedule["lr_scheduler"]["scheduler"]
    timer, step, micro = _Timer(warmup), 0, 0
    loader = datamodule.train_dataloader()
    while step < steps:
        for batch in loader:
            if micro == 0:
                timer.begin(step)
            loss, _, _ = module._step(batch)
            (loss / accumulate).backward()
            timer.count(step, int(batch["attention_mask"].sum()))
            micro += 1
            if micro < accumulate:
                continue
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            micro, step = 0, step + 1
            if step >= steps:
                break
    timer.end()
    return timer


def padded_share(cfg) -> float:
    """Share of padded positions over one epoch of the training batches."""
    datamodule, _ = _parts(cfg)
    total = attended = 0
    for batch in datamodule.train_dataloader():
        total += batch["attention_mask"].numel()
        attended += int(batch["attention_mask"].sum())
    return 1 - attended / total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=4, help="optimizer steps not timed")
    parser.add_argument("--phase", default="base", choices=["align", "base"])
    args = parser.parse_args(argv)
    from adaragct.determinism import apply_threads

    _, demo = _config(args.phase, False)
    apply_threads(demo.threads)
    print(
        f"bench_train: phase={args.phase}, {args.steps} optimizer steps ({args.warmup} untimed), demo model and batches"
    )
    print(f"{'grouping':<9} {'padded':>7} {'lightning tok/s':>16} {'plain tok/s':>12} {'overhead':>9}")
    rates = {}
    for grouping in (False, True):
        cfg, _ = _config(args.phase, grouping)
        share = padded_share(cfg)
        lit = run_lightning(cfg, args.steps, args.warmup)
        plain = run_plain(cfg, args.steps, args.warmup)
        rates[grouping] = (lit.rate, plain.rate)
        overhead = plain.rate / lit.rate - 1
        print(
            f"{'on' if grouping else 'off':<9} {share:>7.1%} {lit.rate:>16.0f} {plain.rate:>12.0f} {overhead:>+9.1%}",
            flush=True,
        )
    for grouping in (False, True):
        lit, plain = rates[grouping]
        print(
            f"lightning overhead vs plain loop, grouping {'on' if grouping else 'off'}: "
            f"{plain / lit - 1:+.1%} (goal <= 10%)"
        )
    print(f"length grouping speed-up (lightning tokens/s, on / off): {rates[True][0] / rates[False][0]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
