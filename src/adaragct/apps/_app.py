"""What every Hydra app shares: its console ``main`` and the prologue of its ``run``.

    from adaragct.apps._app import hydra_app, prologue

    def run(cfg: DictConfig) -> dict:
        prologue(cfg, "index")            # renamed keys refused, threads pinned, (seeded), logged
        ...
        return summary

    main = hydra_app("index", run)        # python -m adaragct.index / adaragct-index

:func:`hydra_app` rewrites 0.1's spellings on the command line (:mod:`adaragct.compat.renames`), runs ``run`` under
``hydra.main`` with ``conf/<name>.yaml`` and shows a user error as one line, exit status 2
(:func:`adaragct.errors.user_errors_exit`). :func:`prologue` is called by ``run`` itself, not by ``main``, because
the demo and the tests call the run functions in-process and get the same threads and seeds as the command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from omegaconf import DictConfig

log = logging.getLogger(__name__)

#: how an app seeds: ``torch`` (torch's generator: infer), ``everything`` (Lightning's ``seed_everything`` with
#: worker seeds: python, numpy, torch; train), or None (the app draws nothing, or seeds its own generators)
Seeding = Literal["torch", "everything"] | None


def prologue(cfg: DictConfig, app: str, seed: Seeding = None) -> None:
    """The first thing of every app's ``run``, in this order: refuse a renamed node in the config files (it would
    be read by nothing), pin every numeric library to ``cfg.threads`` when set (:mod:`adaragct.determinism`: the
    same bits on any machine size; deterministic torch kernels unless ``cfg.deterministic`` is false), seed as
    ``seed`` says with ``cfg.seed``, and log what is in force."""
    from adaragct.compat.renames import refuse_renamed_keys

    refuse_renamed_keys(cfg, app=app)
    threads = cfg.get("threads")
    if threads:
        from adaragct.determinism import apply_threads

        apply_threads(threads, bool(cfg.get("deterministic", True)))
    if seed == "torch":
        import torch

        torch.manual_seed(cfg.seed)
    elif seed == "everything":
        import lightning as L

        L.seed_everything(cfg.seed, workers=True)
    log.info("%s: threads %s, seed %s", app, threads or "default", cfg.seed if seed else "-")


def hydra_app(
    name: str, run: Callable[[DictConfig], Any], result: Callable[[DictConfig, Any], Any] | None = None
) -> Callable[[], Any]:
    """The console entry point of the app over ``conf/<name>.yaml``: ``main()`` returns what ``run`` returned
    (or ``result(cfg, that)``: train hands Optuna its objective), which Hydra's multirun callbacks receive."""
    import hydra

    from adaragct import CONF_DIR
    from adaragct.compat.renames import rewrite_argv
    from adaragct.errors import user_errors_exit

    def app(cfg: DictConfig) -> Any:
        with user_errors_exit():
            out = run(cfg)
        return out if result is None else result(cfg, out)

    # Hydra names the job (its log file, hydra.job.name) after the module of the task function: the app's own
    app.__module__, app.__qualname__ = f"adaragct.apps.{name}", "main"
    task = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=name)(app)

    def main() -> Any:
        with user_errors_exit():
            rewrite_argv(name)  # 0.1's stage=..., and this app's moved keys (adaragct.compat.renames)
        return task()

    main.__doc__ = f"Console entry point: ``python -m adaragct.{name} [overrides]`` (``adaragct-{name}``)."
    return main
