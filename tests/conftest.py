"""Shared test fixtures: project paths and the shared reference data (skipped when absent)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import adaragct

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = adaragct.CONF_DIR  # the configs the code reads (conf/ at the top links there)
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# No hub access in tests: everything is built locally or ships in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The hand-labelled reference data beside the project (../shared/data); skip when a fresh clone lacks it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present (reference data is not part of the repository)")
    return SHARED_DATA


def compose_config(config_name: str, overrides: list[str] | None = None, *, resolve: bool = True):
    """Compose a real primary config from conf/ (as the command line would), without the hydra node."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name,
            overrides=[f"paths.root_dir={PROJECT_ROOT}", *(overrides or [])],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        del cfg["hydra"]
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory):
    """A small demo cohort written once per test session by the real prepare stage; returns the data config."""
    import contextlib
    import io

    from omegaconf import OmegaConf

    from adaragct.apps.prepare import run as run_prepare

    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_config(
        "prepare",
        [
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={data_dir}/run",
            "data.generator.n_train_patients=60",
            "data.generator.n_valid_patients=15",
            "tokenizer.vocab_size=600",
            "tiny_lm.steps=30",
        ],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        run_prepare(cfg)
    return OmegaConf.to_container(cfg.data, resolve=True)


# ---- the small cohort with its real index, and tiny checkpoints trained a few steps (built once per session)
FAST_TRAIN = [
    "model=tiny",
    "debug=default",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.detect_anomaly=false",
    "trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "datamodule.batch_size=2",
    "phase.scheduler.warmup_steps=1",
]


def data_overrides(data_dir: Path) -> list[str]:
    """Point ``data=demo`` at the indexed small cohort (``data.root`` = ``<data_dir>/demo``)."""
    return ["data=demo", f"paths.data_dir={data_dir}"]


@pytest.fixture(scope="session")
def indexed_demo(small_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the small demo cohort with the real index stage run on it; returns the data_dir."""
    from adaragct.apps.index import run

    data_dir = tmp_path_factory.mktemp("indexed")
    shutil.copytree(small_demo["root"], data_dir / "demo")
    cfg = compose_config(
        "index",
        [
            *data_overrides(data_dir),
            f"paths.output_dir={data_dir}/index_run",
            f"paths.cache_dir={data_dir}/cache",
            "index.progress=false",
            "index.quality=false",
        ],
    )
    run(cfg)
    assert (data_dir / "demo" / "bundle" / "retrieval" / "img2img_top20.json").is_file()
    return data_dir


def train_cfg(root: Path, data_dir: Path, *overrides: str):
    """The real train config, shrunk to a 2-step CPU run with outputs under ``root``."""
    return compose_config(
        "train",
        [
            f"paths.root_dir={root}",
            f"paths.output_dir={root}/run",
            *data_overrides(data_dir),
            *FAST_TRAIN,
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def tiny_checkpoints(indexed_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """phase=align, phase=base (from align's projector), phase=rag (from the base), 2 steps each, with the demo
    experiment on the paper's prompt (the release's layout, which these checkpoints are also converted to, has no
    finding classifier; the findings prompt runs end to end in tests/test_data_sources.py and
    tests/experiments/test_experiment_configs.py): {stage: checkpoint}."""
    from adaragct.apps.train import run as train

    root = tmp_path_factory.mktemp("ckpt")
    out = {s: root / "outputs" / "train" / f"demo_tiny_{s}" / "last" for s in ("align", "base", "rag")}
    paper = ("experiment=demo", "prompt=default")
    train(train_cfg(root, indexed_demo, *paper, "phase=align"))
    train(train_cfg(root, indexed_demo, *paper, "phase=base", f"phase.projector_from={out['align']}"))
    train(train_cfg(root, indexed_demo, *paper, "phase=rag"))
    return out
