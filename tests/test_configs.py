"""Every file under conf/ is composed and resolved, every code path a config names exists, and every console
script finds the configs from any directory."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

from tests.conftest import CONF_DIR, PROJECT_ROOT

PRIMARY = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
PLUGIN_GROUPS = {
    "hparams_search": "hydra_plugins.hydra_optuna_sweeper",
    "launcher": "hydra_plugins.hydra_submitit_launcher",
}


def _compose(config_name: str, overrides: list[str], tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name,
            overrides=[f"paths.root_dir={PROJECT_ROOT}", f"paths.output_dir={tmp_path}", *overrides],
            return_hydra_config=True,
        )
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    OmegaConf.resolve(cfg)  # every interpolation must resolve
    return cfg, hydra_cfg


def _group_options() -> list[tuple[str, str]]:
    found = []
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONF_DIR)
        if len(rel.parts) > 1 and rel.parts[0] != "hydra":
            found.append(("/".join(rel.parts[:-1]), path.stem))
    return found


def _host(group: str) -> str:
    """A primary config whose defaults list has ``group`` (prefer train: it has the most groups)."""
    for name in ["train", *PRIMARY]:
        if re.search(rf"^\s*- {re.escape(group)}:", (CONF_DIR / f"{name}.yaml").read_text(), flags=re.M):
            return name
    raise AssertionError(f"conf/{group}/ is not selectable from any primary config")


def _importable(dotted: str) -> bool:
    module, _, attr = dotted.rpartition(".")
    for mod_name, attr_name in ((dotted, None), (module, attr)):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        return attr_name is None or hasattr(mod, attr_name)
    return False


def _targets(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_targets(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_targets(item))
    return out


@pytest.mark.parametrize("config_name", PRIMARY)
def test_primary_config_composes(config_name: str, tmp_path: Path) -> None:
    cfg, hydra_cfg = _compose(config_name, [], tmp_path)
    assert cfg.task_name in (config_name, "debug")
    assert str(hydra_cfg.run.dir).startswith(str(PROJECT_ROOT / "outputs")), "runs must write under outputs/"
    app = f"adaragct.{config_name}"
    assert _importable(app), f"conf/{config_name}.yaml has no app module {app}"


@pytest.mark.parametrize(("group", "option"), _group_options())
def test_group_option_composes(group: str, option: str, tmp_path: Path) -> None:
    if group in PLUGIN_GROUPS:
        pytest.importorskip(PLUGIN_GROUPS[group], reason="install the sweep extra: pip install -e '.[sweep]'")
    host = _host(group)
    cfg, _ = _compose(host, [f"{group}={option}"], tmp_path)
    for target in _targets(OmegaConf.to_container(cfg)):
        assert _importable(target), f"conf/{group}/{option}.yaml names {target}, which does not import"


def test_every_config_file_is_covered() -> None:
    covered = {f"{g}/{o}.yaml" for g, o in _group_options()} | {f"{p}.yaml" for p in PRIMARY}
    all_files = {str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*.yaml")} - {"hydra/default.yaml"}
    assert all_files <= covered


def test_debug_runs_on_cpu_without_loggers(tmp_path: Path) -> None:
    cfg, _ = _compose("train", ["debug=default"], tmp_path)
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.datamodule.num_workers == 0
    assert cfg.logger is None


def test_paper_experiment_sets_the_paper_stage(tmp_path: Path) -> None:
    cfg, _ = _compose("train", ["experiment=adaragct_8b"], tmp_path)
    assert (cfg.model.name, cfg.phase.name, cfg.retrieval.name) == ("8b", "rag", "adaptive")
    assert (cfg.phase.lora.r, cfg.phase.lora.alpha, cfg.phase.optimizer.lr) == (32, 64, 1e-5)
    base, _ = _compose("train", ["experiment=base_8b"], tmp_path)
    assert (base.phase.lora.r, base.phase.lora.alpha, base.phase.scheduler.warmup_steps) == (128, 256, 500)


def test_multirun_dirs_are_readable(tmp_path: Path) -> None:
    _, hydra_cfg = _compose("infer", ["ablation=retrieval_grid"], tmp_path)
    assert OmegaConf.to_container(hydra_cfg.sweep)["subdir"] == "${hydra.job.override_dirname}"
    assert hydra_cfg.mode.name == "MULTIRUN"


SCRIPTS = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
ARGPARSE_SCRIPTS = {"adaragct-show"}  # no Hydra config: argparse, like the release's aliases
HYDRA_SCRIPTS = sorted(set(SCRIPTS) - ARGPARSE_SCRIPTS)


def test_the_argparse_console_scripts_answer_help_from_any_directory(tmp_path: Path) -> None:
    for script in ARGPARSE_SCRIPTS:  # its --help is argparse's, and it exits 0 from any directory
        module, _, func = SCRIPTS[script].partition(":")
        done = subprocess.run(
            [sys.executable, "-c", f"from {module} import {func}; {func}()", "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("script", HYDRA_SCRIPTS)
def test_every_console_script_finds_its_configs_from_another_directory(script: str, tmp_path: Path) -> None:
    """A console script imports its app as a module, not as ``__main__``: Hydra then reads a relative
    ``config_path`` as a module path (``../../conf`` became the top-level module ``conf``, found nowhere)."""
    module, _, func = SCRIPTS[script].partition(":")
    done = subprocess.run(
        [sys.executable, "-c", f"from {module} import {func}; {func}()", "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "== Configuration groups ==" in done.stdout and "data: adaragct_bundle, ctrate, demo" in done.stdout
    )
    assert list(tmp_path.iterdir()) == [], "--help writes nothing"


def test_two_runs_started_together_get_run_folders_of_their_own(tmp_path: Path) -> None:
    """``${now:}`` has 1 s resolution: run folders also carry the process id (issue 24: two runs launched in the
    same second shared one folder, one overrides.yaml and one log)."""
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT / "src")}
    command = [sys.executable, "-m", "adaragct.evaluate", f"predictions={tmp_path}/none.jsonl"]
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for run in runs:
        run.communicate(timeout=300)
        assert run.returncode == 2  # a missing predictions file: one line, after Hydra made the run folder
    folders = sorted(p.name for p in (tmp_path / "outputs" / "evaluate" / "runs").iterdir())
    assert sorted(name.rpartition("_")[2] for name in folders) == sorted(str(run.pid) for run in runs)
