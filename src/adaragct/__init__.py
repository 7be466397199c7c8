"""adaragct: retrieval-augmented 3D CT report generation (a reimplementation of AdaRAG-CT).

Stages (each a Hydra app under ``conf/``): prepare -> index -> train -> infer -> evaluate -> analyze.
See README.md for the two commands that run everything (`make demo`, `make test`).
"""

__version__ = "0.1.0"


def _register_resolvers() -> None:
    """``${adaragct_cwd:}``: the working directory, resolvable where ``${hydra:runtime.cwd}`` is not (a multirun
    sweep directory is resolved before Hydra sets its runtime config)."""
    import os

    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("adaragct_cwd"):
        OmegaConf.register_new_resolver("adaragct_cwd", os.getcwd)


_register_resolvers()
