"""apply_threads pins every numeric library, so a stage writes the same bytes whatever the ambient thread count."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from adaragct.determinism import apply_threads


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """The thread count and deterministic flag are process-wide: put them back for the tests that follow."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def test_every_pool_gets_the_thread_count(restore_threads: None) -> None:
    torch.set_num_threads(2)
    state = apply_threads(1)
    assert state["threads"] == torch.get_num_threads() == 1
    assert state["pools"] and set(state["pools"].values()) == {1}  # numpy's and FAISS's BLAS, both OpenMPs
    assert torch.are_deterministic_algorithms_enabled()
    if "Math Kernel Library" in torch.__config__.parallel_info():
        assert state["mkl_dynamic_off"]
    with pytest.raises(ValueError, match="threads must be >= 1"):
        apply_threads(-1)


def _pretrain_hash(small_demo: dict, out: Path) -> str:
    from adaragct.formats.tables import read_reports_csv
    from adaragct.models.tiny_lm import pretrain_tiny_lm

    reports = sorted(set(read_reports_csv(small_demo["train_reports_csv"])["report"]))[:48]
    pretrain_tiny_lm(reports, small_demo["tokenizer_dir"], out, steps=3, batch_size=16, seed=0)
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def test_a_stage_writes_the_same_bytes_whatever_the_ambient_thread_count(
    small_demo: dict, tmp_path: Path, restore_threads: None
) -> None:
    """Tiny-LM pretraining (the prepare step that differed between two fresh demo runs) with the process at 1 and at
    2 threads: after apply_threads(1) the weights are the same bytes. Without the pin they differ on a multi-core
    machine (1 vs 2 threads split float sums differently)."""
    hashes = []
    for ambient in (2, 1):
        torch.set_num_threads(ambient)
        apply_threads(1)
        hashes.append(_pretrain_hash(small_demo, tmp_path / f"lm{ambient}"))
    assert hashes[0] == hashes[1]
