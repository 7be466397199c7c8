"""One thread count for every numeric library, so a CPU run writes the same bits on any machine size.

Why: float sums are not associative, and torch (OpenMP + MKL), numpy's OpenBLAS and FAISS's OpenMP split their
reductions by thread count. Left alone each takes every core it sees, so the same seeded run gives other weights
on a 2-core laptop than on a 16-core server (measured: the demo's tiny-LM pretraining writes other bytes with 1
thread than with 2), and greedy decoding turns a last-bit difference into another word. MKL by default also
chooses its own thread count at run time (``MKL_DYNAMIC``); Intel's reproducibility conditions ask for a fixed
count with dynamic adjustment off. :func:`apply_threads` pins all of them (``conf/demo.yaml: threads``); the demo
calls it before every stage it runs. Bits can still differ between CPUs with other instruction sets (MKL, oneDNN
and FAISS pick kernels by ISA); on one machine, whatever its core count or load, the demo writes the same files.

    from adaragct.determinism import apply_threads
    apply_threads(1)   # torch, numpy/FAISS BLAS and OpenMP: one thread each, MKL's dynamic threading off
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _mkl_dynamic_off() -> bool:
    """Turn MKL's dynamic threading off in the MKL that torch links (libtorch_cpu exports MKL's C service API,
    ``MKL_Set_Dynamic(int)``; the lower-case ``mkl_set_dynamic`` there is the Fortran one, which takes a pointer).
    Returns whether MKL now reports it off (False without MKL: another platform or build)."""
    import torch

    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        lib.MKL_Set_Dynamic(ctypes.c_int(0))
        return lib.mkl_serv_get_dynamic() == 0
    except (OSError, AttributeError):
        return False


def apply_threads(threads: int | None, deterministic: bool = True) -> dict[str, Any]:
    """Set the intra-op thread count of torch and of every loaded BLAS/OpenMP pool; optionally ask torch for
    deterministic kernels.

    Args:
        threads: threads per library (>= 1); None or 0 leaves the libraries' defaults (one per core, MKL dynamic).
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)``: where an op has a
            deterministic variant torch takes it (a CUDA matter mostly), and an op without one warns instead of
            failing.

    Returns:
        What is in force afterwards: ``{"threads": torch's count, "mkl_dynamic_off": bool, "pools": {...}}``.
    """
    with contextlib.suppress(
        ImportError
    ):  # FAISS (an extra: [cpu] or [gpu]) loaded first, so its OpenMP/OpenBLAS
        import faiss  # noqa: F401  pools are among those limited below
    import numpy  # noqa: F401
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    mkl_off = False
    if threads is not None and threads < 0:
        raise ValueError(f"conf/demo.yaml: threads must be >= 1 (or null for the default), got {threads}")
    if threads:
        torch.set_num_threads(int(threads))
        mkl_off = _mkl_dynamic_off()
        threadpool_limits(limits=int(threads))  # numpy's OpenBLAS, FAISS's OpenBLAS and libgomp
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    pools = {f"{p['internal_api']}:{p['prefix']}": p["num_threads"] for p in threadpool_info()}
    return {"threads": torch.get_num_threads(), "mkl_dynamic_off": mkl_off, "pools": pools}
