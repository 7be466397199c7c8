"""The AdaRAG-CT release's inference command, mapped onto the infer app (:mod:`adaragct.apps.infer`); the command's
path, ``adaragct.inference.inference_rag``, forwards here.

    python -m adaragct.inference.inference_rag --checkpoint C [--output P] [--config Y] [--base B]
        [--no-rag | --oracle | --corrupt-rag] [--text2text] [--global-context [--global-context-topk K]]
        [--max-samples N] [--max-new-tokens 600] [--max-retrievals 8] [--top-k 3] [--rag-logit-bias 0.0]
        [--cooldown-tokens 5] [--output-suffix S] [hydra overrides ...]

Every flag keeps the release's meaning and default. ``C`` is a checkpoint of ours or one of the release's: an
AdaRAG step directory (its base directory from ``--base``, from ``--config``, or from its adapter_config.json) or
a base directory. The mode flags combine as in the release: ``--no-rag`` wins over ``--oracle``, which wins over
``--corrupt-rag``; without one, retrieval is adaptive (the paper's), or ``--text2text``'s whole-bank search. A flag
that loses is named in a warning. Without ``--output`` the predictions go to
``<run>/infer_{no_rag|oracle|corrupt_rag|normal_rag}[_text2text][_gc{K}][_{suffix}]/<checkpoint>.jsonl``, with
``<run>`` two levels above a release checkpoint (``<run>/checkpoints/step_3000``) and the folder holding one of
ours (``outputs/train/<run>/step-000100``). Anything after the flags is passed to the infer config as Hydra
overrides (e.g. ``data=ctrate batch_size=32``; ``model=8b`` loads the release's weights in bf16), 0.1's spellings
of infer's keys rewritten with a warning as on infer's own command line (:mod:`adaragct.compat.renames`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from adaragct.cli import OneLineParser, count, positive
from adaragct.compat.renames import rewrite_overrides
from adaragct.errors import UsageError

# flag -> (infer setting, the release's default): the release's command gets the release's numbers, whatever the
# infer config says, unless the flag is given (or the setting is overridden on the command line)
RELEASE_SETTINGS: dict[str, tuple[str, Any]] = {
    "max_new_tokens": ("generation.max_new_tokens", 600),
    "max_retrievals": ("generation.max_retrievals", 8),
    "top_k": ("generation.top_k", 3),
    "rag_logit_bias": ("generation.rag_logit_bias", 0.0),
    "cooldown_tokens": ("generation.cooldown_tokens", 5),
    "max_samples": ("limit", None),
}
GLOBAL_CONTEXT_TOPK = 3  # the release's --global-context-topk default
MODES = (("no_rag", "none"), ("oracle", "oracle"), ("corrupt_rag", "corrupt"))  # the release's precedence


def mode(args: argparse.Namespace) -> str:
    """The release's mode name: ``no_rag`` > ``oracle`` > ``corrupt_rag`` > ``normal_rag``."""
    return next((name for name, _ in MODES if getattr(args, name)), "normal_rag")


def retrieval(args: argparse.Namespace) -> str:
    """The ``conf/retrieval`` choice the flags select."""
    return dict(MODES).get(mode(args)) or ("text2text" if args.text2text else "adaptive")


def warnings_for(args: argparse.Namespace) -> list[str]:
    """What the release would ignore in this combination of flags (said, not silently dropped)."""
    out, chosen = [], mode(args)
    flag = {name: "--" + name.replace("_", "-") for name, _ in MODES}
    for name, _ in MODES:
        if getattr(args, name) and name != chosen:
            out.append(f"{flag[name]} is ignored: {flag[chosen]} takes precedence (as in the release)")
    if args.text2text and chosen != "normal_rag":
        out.append(f"--text2text is ignored with {flag[chosen]} (it changes adaptive retrieval only)")
    if args.rag_logit_bias is not None and args.no_rag:
        out.append("--rag-logit-bias is ignored with --no-rag (nothing is retrieved)")
    if args.global_context_topk is not None and not args.global_context:
        out.append("--global-context-topk is ignored without --global-context")
    if args.output_suffix is not None and args.output is not None:
        out.append("--output-suffix is ignored: --output names the predictions file")
    return out


def _is_release(checkpoint: Path) -> bool:
    from adaragct.models.release import is_release_base, is_release_step

    return is_release_step(checkpoint) or is_release_base(checkpoint)


def output_path(args: argparse.Namespace) -> Path:
    """``--output``, or the release's automatic name (module docstring)."""
    if args.output is not None:
        return Path(args.output).resolve()
    checkpoint = Path(args.checkpoint).resolve()  # ours: `last` resolves to the step it points at
    run = checkpoint.parents[1] if _is_release(checkpoint) else checkpoint.parent
    folder = f"infer_{mode(args)}"
    folder += "_text2text" if args.text2text else ""
    folder += f"_gc{args.global_context_topk or GLOBAL_CONTEXT_TOPK}" if args.global_context else ""
    folder += f"_{args.output_suffix}" if args.output_suffix else ""
    return run / folder / f"{checkpoint.name}.jsonl"


def base_from_config(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The release base directory that ``--config`` names, for a release step directory without
    ``training_state.pt`` (where the release reads its config from ``--config``); (None, why) otherwise."""
    import yaml

    from adaragct.compat.train_rag import release_overrides
    from adaragct.models.loading import checkpoint_kind
    from adaragct.models.release import is_release_base

    checkpoint = Path(args.checkpoint)
    kind = checkpoint_kind(checkpoint)
    if kind == "ours":
        return None, "--config is ignored: our checkpoints carry their config (config.yaml)"
    if kind == "release-base":
        return None, "--config is ignored: a release base directory needs no training config"
    if (checkpoint / "training_state.pt").is_file():
        return None, "--config is ignored: the checkpoint has training_state.pt (as in the release)"
    if args.base is not None:
        return None, "--config is ignored: --base names the base directory"
    path = Path(args.config)
    if not path.is_file():
        raise UsageError(
            "--config", f"{path} does not exist", "pass the release's training YAML, or --base <dir>"
        )
    overrides, _ = release_overrides(yaml.safe_load(path.read_text()) or {})
    named = [o.split("=", 1) for o in overrides if o.startswith(("phase.init_from=", "model.path="))]
    for key, value in sorted(named, key=lambda kv: kv[0] != "phase.init_from"):  # the stage-2 model first
        if is_release_base(value):
            return Path(value).resolve(), f"--config {path}: base directory {value} (its {key} key)"
    raise UsageError(
        "--config",
        f"{path} names no release base directory (a merged HF model + projector.pt); found "
        f"{[v for _, v in named] or 'no model_path / base_checkpoint / init_from key'}",
        "pass the release's base directory with --base <dir>",
    )


def _override_keys(overrides: list[str]) -> set[str]:
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}


def release_settings(args: argparse.Namespace) -> list[str]:
    """``setting=value`` for each of :data:`RELEASE_SETTINGS`: the flag's value, else the release's default,
    unless the user sets that setting as a Hydra override (both at once is an error)."""
    given = _override_keys(list(args.overrides))
    out = []
    for name, (key, default) in RELEASE_SETTINGS.items():
        value = getattr(args, name)
        option = "--" + name.replace("_", "-")
        if key in given and value is not None:
            raise UsageError(
                option, f"sets {key}, which an override sets too", f"give {option} or {key}= once"
            )
        if key not in given:
            chosen = value if value is not None else default
            out.append(f"{key}={'null' if chosen is None else chosen}")
    return out


def to_overrides(args: argparse.Namespace) -> list[str]:
    """The infer app's Hydra overrides for the release's flags (then the user's own, which come last)."""
    output = output_path(args)
    overrides = [
        f"ckpt={Path(args.checkpoint).resolve()}",
        f"predictions={output}",
        f"retrieval={retrieval(args)}",
        f"paths.output_dir={output.parent}",
        *release_settings(args),
        f"global_context.top_k={args.global_context_topk or GLOBAL_CONTEXT_TOPK if args.global_context else 0}",
    ]
    base = Path(args.base).resolve() if args.base is not None else None
    if args.config is not None:
        from_config, note = base_from_config(args)
        print(("warning: " if from_config is None else "") + note, file=sys.stderr)
        base = base or from_config
    if base is not None:
        overrides.append(f"ckpt_base={base}")
    return overrides + rewrite_overrides(args.overrides, "infer")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="python -m adaragct.inference.inference_rag",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--checkpoint",
        required=True,
        help="checkpoint directory: ours (outputs/train/<run>/last), or the release's step or base directory",
    )
    add(
        "--config",
        default=None,
        help="the release's training YAML: for a release step directory without training_state.pt, the base "
        "directory it names (base_checkpoint / init_from / model_path)",
    )
    add(
        "--base",
        default=None,
        help="the release's base directory, for a release step directory (default: --config's, else the "
        "step's adapter_config.json base_model_name_or_path)",
    )
    add(
        "--output",
        default=None,
        help="predictions JSONL, resumed if it exists (default: named as the release)",
    )
    add("--output-suffix", default=None, help="suffix of the automatically named output folder")
    add("--no-rag", action="store_true", help="plain decoding, no retrieval (wins over every other mode)")
    add("--oracle", action="store_true", help="precomputed oracle contexts")
    add(
        "--corrupt-rag",
        action="store_true",
        help="ablation: each retrieval returns random sentences of the whole bank (retrieval=corrupt, seeded)",
    )
    add("--text2text", action="store_true", help="whole-bank text retrieval, no organ/image filter")
    add(
        "--global-context",
        action="store_true",
        help="before the prompt, the reports of the volume's top whole-CT neighbours (global_context.top_k)",
    )
    add(
        "--global-context-topk",
        type=positive,
        default=None,
        help="reports in the global context (default 3)",
    )
    add("--max-samples", type=positive, default=None, help="first N validation volumes (default: all)")
    add("--max-new-tokens", type=positive, default=None, help="report length limit in tokens (default 600)")
    add("--max-retrievals", type=count, default=None, help="retrievals per report (default 8)")
    add("--top-k", type=positive, default=None, help="sentences per retrieval (default 3)")
    add("--rag-logit-bias", type=float, default=None, help="added to the [RAG] logit (default 0.0)")
    add("--cooldown-tokens", type=count, default=None, help="tokens between [RAG] triggers (default 5)")
    add("overrides", nargs="*", help="Hydra overrides for conf/infer.yaml")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from adaragct import CONF_DIR
    from adaragct.apps.infer import run as run_infer
    from adaragct.errors import user_errors_exit

    args = parse(argv)
    for warning in warnings_for(args):
        print(f"warning: {warning}", file=sys.stderr)
    with user_errors_exit():
        overrides = to_overrides(args)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("infer", overrides=overrides)
        OmegaConf.resolve(cfg)
        return run_infer(cfg)


if __name__ == "__main__":
    main()
