"""adaragct: retrieval-augmented 3D CT report generation (a reimplementation of AdaRAG-CT).

Stages (each a Hydra app over ``adaragct/conf``, linked as ``conf/`` at the top of a checkout): prepare -> index -> train -> infer -> evaluate -> analyze.
See README.md for the two commands that run everything (`make demo`, `make test`).
"""

from pathlib import Path

__version__ = "0.1.0"
# every Hydra config (``conf/`` at the top of a checkout links here), shipped in the package. The stage apps pass
# it to ``hydra.main`` as an absolute path: a relative one is read as a module path when the app runs as a console
# script (``../conf`` from ``adaragct.train`` became the top-level module ``conf``)
CONF_DIR = Path(__file__).resolve().parent / "conf"


def _register_resolvers() -> None:
    """``${adaragct_cwd:}``: the working directory, resolvable where ``${hydra:runtime.cwd}`` is not (a multirun
    sweep directory is resolved before Hydra sets its runtime config). ``${adaragct_pid:}``: the process id, in the
    run and sweep folder names beside ``${now:}`` (1 s resolution), so two runs started in the same second get
    folders of their own; cached like ``now``, so a sweep's jobs share the value Hydra resolved first."""
    import os

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("adaragct_cwd"):
        OmegaConf.register_new_resolver("adaragct_cwd", os.getcwd)
    if not OmegaConf.has_resolver("adaragct_pid"):
        OmegaConf.register_new_resolver("adaragct_pid", lambda: str(os.getpid()), use_cache=True)


_register_resolvers()
