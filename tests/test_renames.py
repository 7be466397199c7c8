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


def test_the_scoring_keys_of_0_1_become_the_scoring_group(capsys) -> None:
    """evaluate.yaml's top-level scoring keys and infer's ``evaluate:`` node moved into conf/scoring; each app's
    old spellings compose what the new ones compose, with a warning naming the new key."""
    out = "paths.output_dir=/tmp/x"
    cases = {
        "infer": (
            [
                "evaluate.enabled=false",
                "evaluate.meteor=true",
                "evaluate.bootstrap=7",
                "evaluate.metrics_json=/m",
            ],
            ["score=false", "scoring.meteor=true", "scoring.bootstrap.num_resamples=7", "metrics_json=/m"],
        ),
        "evaluate": (
            [
                "predictions=P",
                "labeler.name=radbert",
                "bootstrap.num_resamples=5",
                "meteor=false",
                "+judge.x=1",
            ],
            [
                "predictions=P",
                "scoring.labeler.name=radbert",
                "scoring.bootstrap.num_resamples=5",
                "scoring.meteor=false",
                "+scoring.judge.x=1",
            ],
        ),
        "demo": (["bootstrap.num_resamples=200"], ["scoring.bootstrap.num_resamples=200"]),
    }
    for app, (old, new) in cases.items():
        assert rewrite_overrides(old, app) == new
        assert compose_config(app, [*rewrite_overrides(old, app), out]) == compose_config(app, [*new, out])
    err = capsys.readouterr().err
    assert (
        "`evaluate.enabled` is now `score`" in err and "`labeler.name` is now `scoring.labeler.name`" in err
    )
    assert rewrite_overrides(["meteor=false", "bootstrap=1"], "infer") == ["meteor=false", "bootstrap=1"]
    with pytest.raises(
        UsageError, match=r"evaluate=\{enabled:false\}: the node `evaluate` was split up: .*score"
    ):
        rewrite_overrides(["evaluate={enabled:false}"], "infer")


def test_the_apps_keep_their_scoring_behaviour() -> None:
    """infer scores without METEOR and progress bars, the demo with 1000 resamples, evaluate with the group's."""
    out = "paths.output_dir=/tmp/x"
    infer, demo = compose_config("infer", [out]), compose_config("demo", [out])
    evaluate = compose_config("evaluate", ["predictions=P", out])
    assert (
        infer.score and infer.metrics_json is None and not infer.scoring.meteor and not infer.scoring.progress
    )
    assert (
        infer.scoring.bootstrap.num_resamples == 0 and evaluate.scoring.meteor and evaluate.scoring.progress
    )
    assert dict(demo.scoring.bootstrap) == {"num_resamples": 1000, "seed": 42} and not demo.scoring.meteor
    assert "evaluate" not in infer and "bootstrap" not in demo and "labeler" not in evaluate


def test_a_moved_node_in_a_config_file_is_an_error_naming_the_new_keys() -> None:
    cfg = OmegaConf.create({"score": True, "evaluate": {"enabled": False}})
    with pytest.raises(UsageError, match=r"infer app's `evaluate` moved: evaluate.enabled -> score"):
        refuse_renamed_keys(cfg, app="infer")
    refuse_renamed_keys(cfg, app="evaluate")  # the evaluate app never had an `evaluate:` node
    with pytest.raises(UsageError, match=r"labeler -> scoring.labeler"):
        refuse_renamed_keys(OmegaConf.create({"labeler": {"name": "rule"}}), app="evaluate")


def test_the_release_inference_command_reads_0_1_keys_too(tmp_path) -> None:
    from adaragct.compat.inference_rag import parse, to_overrides

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    overrides = to_overrides(parse(["--checkpoint", str(ckpt), "evaluate.enabled=false", "stage=rag"]))
    assert overrides[-2:] == ["score=false", "phase=rag"]
