"""Which FAISS build is imported (CPU or GPU), and a warning when it is not the one the machine calls for.

``faiss`` comes from one of several pip distributions: ``faiss-cpu`` (the ``cpu`` extra, what ``make install``
takes) or a GPU build (``faiss-gpu``, the ``gpu`` extra; ``faiss-gpu-cu12``...). They all provide the same module,
so two of them installed side by side overwrite each other's files and the survivor is whichever pip wrote last;
a CPU build on a CUDA machine makes ``bank.device=auto`` keep every index on the CPU without a word. Both builds
have ``faiss.get_num_gpus``; only a GPU build has ``faiss.StandardGpuResources``.

``python -m adaragct.retrieval.faiss_build`` prints the report (``make install-gpu`` ends with it). The sentence
bank calls :func:`warn_if_mismatched` before it places its indexes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import sys
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

CPU_DIST = "faiss-cpu"
SWAP = "pip uninstall -y faiss-cpu faiss-gpu && pip install faiss-gpu  (or: make install-gpu)"
MISSING = "FAISS is not installed: pip install 'adaragct[cpu]' (or 'adaragct[gpu]' on a CUDA machine)"
_warned: set[str] = set()


@dataclass(frozen=True)
class FaissBuild:
    """What ``import faiss`` gave: its version, whether it was compiled with GPU support, the GPUs it sees and
    the pip distributions that provide the module."""

    version: str
    gpu_build: bool
    gpus: int
    distributions: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "GPU" if self.gpu_build else "CPU"

    def describe(self) -> str:
        dists = ", ".join(self.distributions) or "no pip distribution found"
        return f"faiss {self.version}: {self.kind} build, {self.gpus} GPU(s) visible to FAISS ({dists})"


@functools.cache
def faiss_distributions() -> tuple[str, ...]:
    """The installed pip distributions named ``faiss-*`` (``faiss-cpu``, ``faiss-gpu``, ``faiss-gpu-cu12``...)."""
    names = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("faiss-") or name == "faiss":
            names.add(f"{name}=={dist.version}")
    return tuple(sorted(names))


def import_faiss() -> ModuleType:
    """``import faiss``, or an ImportError that says which extra installs it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return faiss


def faiss_build(faiss: ModuleType | None = None) -> FaissBuild:
    """The build of ``faiss`` (imported here when not given). Raises ImportError with the fix when it is absent."""
    if faiss is None:
        faiss = import_faiss()
    gpu_build = hasattr(faiss, "StandardGpuResources")
    gpus = int(faiss.get_num_gpus()) if gpu_build else 0
    return FaissBuild(getattr(faiss, "__version__", "?"), gpu_build, gpus, faiss_distributions())


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch cannot tell)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA setup must not stop a CPU run
        return False


def mismatch(build: FaissBuild, cuda: bool) -> str | None:
    """Why this FAISS is not the one the machine calls for, with the fix; None when it is."""
    dists = [d.split("==")[0] for d in build.distributions]
    gpu_dists = [d for d in dists if d.startswith("faiss-gpu")]
    if CPU_DIST in dists and gpu_dists:
        return (
            f"both {CPU_DIST} and {', '.join(gpu_dists)} are installed and overwrite each other's `faiss` module "
            f"(the imported one is a {build.kind} build); keep one: {SWAP}"
        )
    if cuda and not build.gpu_build:
        return (
            "torch sees a CUDA GPU but the installed FAISS is a CPU build: the retrieval indexes stay on the CPU "
            f"(bank.device=auto). For GPU search: {SWAP}"
        )
    if cuda and build.gpus == 0:
        return "torch sees a CUDA GPU but FAISS's GPU build sees none (a driver/CUDA mismatch?): indexes stay on the CPU"
    return None


def warn_if_mismatched(faiss: ModuleType | None = None, cuda: bool | None = None) -> str | None:
    """Log :func:`mismatch`'s message once per process (returned too; None when all is well)."""
    message = mismatch(faiss_build(faiss), cuda_available() if cuda is None else cuda)
    if message is not None and message not in _warned:
        _warned.add(message)
        log.warning(message)
    return message


def main() -> int:
    """Print the report; exit 1 when the build is not the one the machine calls for."""
    try:
        build = faiss_build()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cuda = cuda_available()
    print(build.describe())
    print(f"torch sees a CUDA GPU: {'yes' if cuda else 'no'}")
    message = mismatch(build, cuda)
    if message is not None:
        print(f"warning: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
