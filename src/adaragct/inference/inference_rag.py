"""The AdaRAG-CT release's inference command, mapped onto ``python -m adaragct.infer``.

    python -m adaragct.inference.inference_rag --checkpoint C --output P [--no-rag|--oracle|--text2text]
        [--top-k K] [--max-retrievals R] [--base B] [hydra overrides ...]

``C`` is a checkpoint of ours or one of the release's: an AdaRAG step directory (its base directory from
``--base`` or from its adapter_config.json) or a base directory. Without a mode flag retrieval is adaptive (the
paper's). Anything after the flags is passed to the infer config as Hydra overrides (e.g. ``data=ctrate
batch_size=32``; ``model=8b`` loads the release's weights in bf16).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def to_overrides(args: argparse.Namespace) -> list[str]:
    mode = (
        "none" if args.no_rag else "oracle" if args.oracle else "text2text" if args.text2text else "adaptive"
    )
    overrides = [
        f"ckpt={Path(args.checkpoint).resolve()}",
        f"predictions={Path(args.output).resolve()}",
        f"retrieval={mode}",
        f"paths.output_dir={Path(args.output).resolve().parent}",
    ]
    if args.base is not None:
        overrides.append(f"ckpt_base={Path(args.base).resolve()}")
    if args.top_k is not None:
        overrides.append(f"generation.top_k={args.top_k}")
    if args.max_retrievals is not None:
        overrides.append(f"generation.max_retrievals={args.max_retrievals}")
    return overrides + list(args.overrides)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m adaragct.inference.inference_rag",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint directory: ours (outputs/train/<run>/last), or the release's step or base directory",
    )
    parser.add_argument(
        "--base",
        default=None,
        help="the release's base directory, for a release step directory (default: "
        "its adapter_config.json base_model_name_or_path)",
    )
    parser.add_argument("--output", required=True, help="predictions JSONL (resumed if it exists)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-rag", action="store_true", help="plain decoding, no retrieval")
    mode.add_argument("--oracle", action="store_true", help="precomputed oracle contexts")
    mode.add_argument(
        "--text2text", action="store_true", help="whole-bank text retrieval, no organ/image filter"
    )
    parser.add_argument("--top-k", type=int, default=None, help="sentences per retrieval (default 3)")
    parser.add_argument("--max-retrievals", type=int, default=None, help="retrievals per report (default 8)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for conf/infer.yaml")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from adaragct import CONF_DIR
    from adaragct.infer import run_infer

    args = parse(argv)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("infer", overrides=to_overrides(args))
    OmegaConf.resolve(cfg)
    return run_infer(cfg)


if __name__ == "__main__":
    main()
