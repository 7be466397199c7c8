"""Shared test fixtures: project paths and the shared reference data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
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
        cfg = compose(config_name, overrides=[f"paths.root_dir={PROJECT_ROOT}", *(overrides or [])],
                      return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory):
    """A small demo cohort written once per test session by the real prepare stage; returns the data config."""
    from omegaconf import OmegaConf

    from adaragct.data.demo.writer import write_demo

    data_dir = tmp_path_factory.mktemp("data")
    cfg = compose_config("prepare", [f"paths.data_dir={data_dir}", f"paths.output_dir={data_dir}/run",
                                     "data.generator.n_train_patients=60", "data.generator.n_valid_patients=15",
                                     "data.generator.tokenizer_vocab_size=600"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    write_demo(data)
    return data
