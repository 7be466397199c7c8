"""adaragct: retrieval-augmented 3D CT report generation (a reimplementation of AdaRAG-CT).

Stages (each a Hydra app in ``adaragct/apps`` over ``adaragct/conf``, linked as ``conf/`` at the top of a checkout): prepare -> index -> train -> infer -> evaluate -> analyze.
See README.md for the two commands that run everything (`make demo`, `make test`).
"""

import importlib.metadata
import re
import warnings
from pathlib import Path

__version__ = "0.1.0"
# pyproject.toml's torch floor (tests/test_install.py keeps the two equal). pip enforces it when it installs the
# package; an older torch still gets here through `pip install --no-deps` or a site torch on sys.path
TORCH_FLOOR = (2, 11)
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
    from adaragct.artifacts import register_resolvers

    register_resolvers()  # ${adaragct.checkpoint:...} and the other path rules


def _release(version: str) -> tuple[int, ...]:
    """``2.11.0+cu126`` -> (2, 11, 0): the leading release numbers (local label, pre-release and dev parts dropped)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(n) for n in match.group(0).split(".")) if match else ()


def check_torch_floor(version: str | None = None) -> str | None:
    """Warn (and return the message) when the installed torch is older than :data:`TORCH_FLOOR`; None if not.

    Read from the package metadata, so ``import adaragct`` does not import torch to ask. A pre-release of the
    floor itself (2.11.0a0, a site's source build) passes.
    """
    if version is None:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return None  # no torch: the first `import torch` says so itself
    if _release(version)[:2] >= TORCH_FLOOR:
        return None
    floor = ".".join(map(str, TORCH_FLOOR))
    message = (
        f"adaragct needs torch>={floor}, but torch {version} is installed (untested: expect failures). Load a "
        f"newer torch (your site's module), or pip install 'torch>={floor}' (docs/install.md)"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    return message


_register_resolvers()
check_torch_floor()
