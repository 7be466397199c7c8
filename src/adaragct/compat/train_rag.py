"""The paper's command, kept working: ``python -m adaragct.train.train_rag --config configs/adaragct_8b.yaml``
(that path forwards here; the train app is :mod:`adaragct.apps.train`).

The release's YAML is mapped onto our Hydra config (``experiment=adaragct_8b`` plus overrides); every key we do
not map is printed as ignored, so nothing is dropped silently. Supported keys (flat, or nested with dots; the
last path component is matched too, e.g. ``training.learning_rate``):

    model_path | model_name_or_path | base_model | llm_path   -> model.path
    base_checkpoint | stage2_checkpoint | init_from             -> phase.init_from
    lora_r | r, lora_alpha | alpha, lora_dropout               -> phase.lora.{r,alpha,dropout}
    lr | learning_rate, weight_decay, warmup_steps             -> phase.optimizer.*, phase.scheduler.warmup_steps
    num_epochs | epochs (-> trainer.max_epochs, max_steps -1), max_steps
    batch_size | per_device_train_batch_size                   -> datamodule.batch_size
    gradient_accumulation_steps | grad_accum                   -> trainer.accumulate_grad_batches
    max_grad_norm                                              -> trainer.gradient_clip_val
    output_dir                                                 -> checkpoint_dir
    seed, bf16 (true -> trainer.precision=bf16-mixed)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEY_MAP: dict[str, str] = {
    "model_path": "model.path",
    "model_name_or_path": "model.path",
    "base_model": "model.path",
    "llm_path": "model.path",
    "base_checkpoint": "phase.init_from",
    "stage2_checkpoint": "phase.init_from",
    "init_from": "phase.init_from",
    "lora_r": "phase.lora.r",
    "r": "phase.lora.r",
    "lora_alpha": "phase.lora.alpha",
    "alpha": "phase.lora.alpha",
    "lora_dropout": "phase.lora.dropout",
    "lr": "phase.optimizer.lr",
    "learning_rate": "phase.optimizer.lr",
    "weight_decay": "phase.optimizer.weight_decay",
    "warmup_steps": "phase.scheduler.warmup_steps",
    "max_steps": "trainer.max_steps",
    "num_epochs": "trainer.max_epochs",
    "epochs": "trainer.max_epochs",
    "batch_size": "datamodule.batch_size",
    "per_device_train_batch_size": "datamodule.batch_size",
    "gradient_accumulation_steps": "trainer.accumulate_grad_batches",
    "grad_accum": "trainer.accumulate_grad_batches",
    "max_grad_norm": "trainer.gradient_clip_val",
    "output_dir": "checkpoint_dir",
    "seed": "seed",
}


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def release_overrides(release: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Hydra overrides for a release config, and the keys that were ignored."""
    overrides, ignored = [], []
    for key, value in _flatten(release).items():
        parts = key.split(".")
        leaf = parts[-1]
        # "lora.dropout" -> "lora_dropout" -> phase.lora.dropout; then the leaf alone ("training.lr" -> "lr")
        target = KEY_MAP.get(key) or KEY_MAP.get("_".join(parts[-2:])) or KEY_MAP.get(leaf)
        if leaf == "bf16":
            if value:
                overrides.append("trainer.precision=bf16-mixed")
        elif target is None or value is None:
            ignored.append(key)
        else:
            overrides.append(f"{target}={value}")
            if target == "trainer.max_epochs":
                overrides.append("trainer.max_steps=-1")
    return overrides, ignored


def main(argv: list[str] | None = None) -> None:
    """Parse ``--config`` (+ extra Hydra overrides), report what is used and ignored, run the train app."""
    import yaml

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the release's training YAML")
    parser.add_argument("--experiment", default="adaragct_8b", help="our experiment config to start from")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (ours), applied last")
    args = parser.parse_args(argv)
    release = yaml.safe_load(Path(args.config).read_text()) or {}
    overrides, ignored = release_overrides(release)
    print(f"{args.config}: mapped -> {' '.join(overrides) or '(nothing)'}")
    if ignored:
        print(f"{args.config}: ignored keys (no equivalent here): {', '.join(ignored)}")
    import sys

    from adaragct.apps.train import main as train_main

    # run the real Hydra app (run folder, logging, config resolution) with the mapped overrides
    sys.argv = [sys.argv[0], f"experiment={args.experiment}", *overrides, *args.overrides]
    train_main()


if __name__ == "__main__":
    main()
