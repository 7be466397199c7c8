"""0.1's training-phase group ``stage`` is ``phase`` now: the old spelling is read with a warning on the command
line, refused with the new name inside a config, and a checkpoint config of 0.1 still loads."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from adaragct.compat.renames import refuse_renamed_keys, rewrite_overrides, saved_phase
from adaragct.errors import UsageError
from tests.conftest import compose_config


def test_command_line_spellings_of_stage_become_phase(capsys) -> None:
    old = ["stage=rag", "stage.lora.r=8", "+stage.extra=1", "~stage.contexts", "-m", "model=tiny", "stages=3"]
    assert rewrite_overrides(old) == [
        "phase=rag",
        "phase.lora.r=8",
        "+phase.extra=1",
        "~phase.contexts",
        "-m",
        "model=tiny",
        "stages=3",
    ]
    assert "`stage` is now `phase`" in capsys.readouterr().err


def test_the_rewritten_command_composes_what_the_new_spelling_composes() -> None:
    old = compose_config(
        "train", rewrite_overrides(["stage=rag", "stage.lora.r=8", "paths.output_dir=/tmp/x"])
    )
    new = compose_config("train", ["phase=rag", "phase.lora.r=8", "paths.output_dir=/tmp/x"])
    assert old.phase == new.phase and old.phase.lora.r == 8 and "stage" not in old


def test_a_stage_node_in_a_config_file_is_an_error_naming_phase() -> None:
    cfg = OmegaConf.create({"phase": {"name": "rag"}, "stage": {"lora": {"r": 8}}})
    with pytest.raises(UsageError, match=r"key `stage` was renamed `phase` .*override /phase"):
        refuse_renamed_keys(cfg)
    refuse_renamed_keys(OmegaConf.create({"phase": {"name": "rag"}}))


def test_a_checkpoint_config_of_0_1_still_names_its_phase() -> None:
    assert saved_phase({"stage": {"name": "base"}}) == {"name": "base"}
    assert saved_phase({"phase": {"name": "rag"}, "stage": {"name": "old"}}) == {"name": "rag"}


def test_the_train_command_accepts_stage_with_a_warning(tmp_path) -> None:
    """The real console path: argv rewritten before Hydra parses it (``--cfg job`` prints the config, trains nothing)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaragct.train",
            "stage=rag",
            "stage.lora.r=8",
            f"paths.output_root={tmp_path}",
            "--cfg",
            "job",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    printed = OmegaConf.create(out.stdout)
    assert printed.phase.name == "rag" and printed.phase.lora.r == 8 and "stage" not in printed
    assert "`stage` is now `phase`" in out.stderr
