"""A rerun of ``python -m adaragct.train`` resumes, exactly: a real run SIGKILLed mid-epoch and rerun reaches the
weights of one never interrupted; a checkpoint of other settings, a truncated one and ``resume=false`` are handled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from safetensors.torch import load_file

from adaragct.errors import DataError, UsageError
from adaragct.train.resume import AtomicCheckpointIO, resume_file, run_settings
from tests.models.conftest import VISUAL_DIMS, debug_train_config, write_tiny_cohort

MAX_STEPS, SAVE_EVERY, KILL_AT = 60, 7, 14  # ~5 batches an epoch: saves at 7, 14, 21, ... fall mid-epoch
# how long the run is: a step count (the default), or epochs (then Lightning builds the training iterator before it
# restores the loops: adaragct.train.resume.ResumeState hands the loader its position)
LENGTHS = {
    "max_steps": [f"trainer.max_steps={MAX_STEPS}"],
    "max_epochs": ["trainer.max_steps=-1", "trainer.max_epochs=12"],
    # two CPU processes (torchrun, gloo): each rank draws its own dropout and reads its own share of the batches
    "ddp": [f"trainer.max_steps={MAX_STEPS}", "strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"],
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("resume")
    return root, write_tiny_cohort(root / "data")


@pytest.fixture(scope="module")
def base_run(cohort, tokenizer_dir) -> tuple[Path, Path]:
    """A finished phase=base run of 4 steps (what phase=rag starts from): (its checkpoint_dir, its resume file)."""
    from adaragct.apps.train import run as train

    root, data = cohort
    cfg = debug_train_config(root, data, tokenizer_dir, "phase=base")
    train(cfg)
    return Path(cfg.checkpoint_dir), resume_file(cfg.checkpoint_dir)


def _tensors(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor a finished run leaves: our final checkpoint's and Lightning's (weights and optimizer moments)."""
    out = {}
    for name in ("adapter_model.safetensors", "projector.safetensors"):
        out |= {f"{name}:{k}": v for k, v in load_file(checkpoint_dir / "last" / name).items()}
    ckpt = torch.load(resume_file(checkpoint_dir), map_location="cpu", weights_only=True)
    out |= {f"last.ckpt:{k}": v for k, v in ckpt["state_dict"].items()}
    for i, opt in enumerate(ckpt["optimizer_states"]):
        for param, moments in opt["state"].items():
            out |= {f"last.ckpt:opt{i}.{param}.{k}": v for k, v in moments.items() if torch.is_tensor(v)}
    return out


def _command(root: Path, tokenizer_dir: Path, base_dir: Path, checkpoint_dir: Path, length: str) -> list[str]:
    """``python -m adaragct.train`` on the tiny cohort, phase=rag (context rolls + LoRA dropout), one thread (under
    ``torchrun --nproc-per-node 2`` for ``length="ddp"``)."""
    launch = [sys.executable, "-m"]
    if length == "ddp":
        launch += ["torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m"]
    return [
        *launch,
        "adaragct.train",
        "--config-dir",
        str(root / "conf"),
        "data=resume_test",
        "debug=default",
        "phase=rag",
        "threads=1",
        f"paths.root_dir={root}",
        f"hydra.run.dir={checkpoint_dir}.hydra",
        f"model.path={tokenizer_dir}",
        *[f"model.visual_dims.{slot}={dim}" for slot, dim in VISUAL_DIMS.items()],
        f"phase.init_from={base_dir / 'last'}",
        f"checkpoint_dir={checkpoint_dir}",
        *LENGTHS[length],
        f"trainer.val_check_interval={MAX_STEPS}",
        "trainer.detect_anomaly=false",
        "phase.scheduler.warmup_steps=2",
        f"resume_every_n_steps={SAVE_EVERY}",
    ]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process under it (torchrun's workers run in process groups of their own)."""
    import psutil

    children = psutil.Process(pid).children(recursive=True)
    for process in [psutil.Process(pid), *children]:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=30)  # not the direct child: Popen.wait reaps it and reads its status


def _saved_step(path: Path) -> int | None:
    try:  # written atomically: whenever it exists it is whole
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except FileNotFoundError:
        return None


@pytest.mark.parametrize(
    "length",
    [
        pytest.param("max_steps"),
        pytest.param("max_epochs", marks=pytest.mark.slow),
        pytest.param("ddp", marks=pytest.mark.slow),
    ],
)
def test_a_run_killed_mid_epoch_and_rerun_ends_with_the_uninterrupted_weights(
    cohort, base_run, tokenizer_dir, length: str
) -> None:
    root, data = cohort
    (root / "conf" / "data").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "data" / "resume_test.yaml").write_text(yaml.safe_dump(data))
    base_dir = base_run[0]
    whole, killed = root / f"uninterrupted-{length}", root / f"killed-{length}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference_log = root / f"uninterrupted-{length}.log"
    with reference_log.open("w") as sink:  # two runs at once, one thread each: the same bits either way
        reference = subprocess.Popen(
            _command(root, tokenizer_dir, base_dir, whole, length), stdout=sink, stderr=sink, env=env
        )
    victim = subprocess.Popen(
        _command(root, tokenizer_dir, base_dir, killed, length),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while victim.poll() is None and time.monotonic() < deadline:
            step = _saved_step(resume_file(killed))
            if step is not None and step >= KILL_AT:
                _kill_tree(victim.pid)
                break
            time.sleep(0.02)
    finally:
        if victim.poll() is None:
            _kill_tree(victim.pid)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    step = _saved_step(resume_file(killed))
    state = torch.load(resume_file(killed), map_location="cpu", weights_only=True)
    (loader,) = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader["batches"] > 0, f"killed after a save in the middle of an epoch (step {step})"

    rerun = subprocess.run(
        _command(root, tokenizer_dir, base_dir, killed, length),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"resuming from {resume_file(killed)} (step {step}" in rerun.stdout + rerun.stderr
    assert reference.wait(timeout=300) == 0, reference_log.read_text()[-3000:]
    assert step < _saved_step(resume_file(whole)), "killed before the end"

    expected, got = _tensors(whole), _tensors(killed)
    assert set(got) == set(expected) and len(expected) > 50
    differ = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert differ == [], f"{len(differ)} of {len(expected)} tensors differ after resuming at step {step}"
    assert _saved_step(resume_file(killed)) == _saved_step(resume_file(whole)) >= MAX_STEPS


def test_a_checkpoint_of_other_settings_is_refused_naming_them(cohort, base_run, tokenizer_dir) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    with pytest.raises(DataError, match=r"trainer\.max_steps: 4 -> 6.*resume=false to start over") as caught:
        train(debug_train_config(root, data, tokenizer_dir, "phase=base", "trainer.max_steps=6"))
    assert str(caught.value).startswith(f"{base_run[1]}: config: written by a run of this checkpoint_dir")
    with pytest.raises(UsageError, match="drop one of them"):
        train(
            debug_train_config(
                root, data, tokenizer_dir, "phase=base", "resume=false", f"ckpt_path={base_run[1]}"
            )
        )


def test_rerunning_a_finished_run_trains_nothing(cohort, base_run, tokenizer_dir, caplog) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    checkpoint_dir, resume = base_run
    before = {p: p.stat().st_mtime_ns for p in [resume, *(checkpoint_dir / "step-000004").iterdir()]}
    with caplog.at_level("INFO", logger="adaragct.train.resume"):
        train(debug_train_config(root, data, tokenizer_dir, "phase=base"))
    assert f"resuming from {resume} (step 4 = trainer.max_steps: nothing left to train" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_truncated_resume_file_is_a_one_line_error_and_resume_false_moves_the_run_aside(
    cohort, base_run, tokenizer_dir
) -> None:
    from adaragct.apps.train import run as train

    root, data = cohort
    cfg = debug_train_config(root, data, tokenizer_dir, "phase=base", f"checkpoint_dir={root}/truncated")
    path = resume_file(cfg.checkpoint_dir)
    path.parent.mkdir(parents=True)
    path.write_bytes(base_run[1].read_bytes()[:5000])  # what a non-atomic write cut short would leave
    with pytest.raises(DataError, match=r"last\.ckpt: file: cannot be read .*resume=false to start over"):
        train(cfg)
    train(
        debug_train_config(
            root, data, tokenizer_dir, "phase=base", f"checkpoint_dir={root}/truncated", "resume=false"
        )
    )
    (aside,) = root.glob("truncated.replaced-*")
    assert (aside / "lightning" / "last.ckpt").stat().st_size == 5000  # the old run is kept, not deleted
    assert _saved_step(path) == 4 and (Path(cfg.checkpoint_dir) / "step-000004").is_dir()


def test_a_sharded_resume_folder_is_checked_against_the_runs_settings(
    cohort, base_run, tokenizer_dir
) -> None:
    """strategy=deepspeed writes ``last.ckpt`` as a folder of shards (DeepSpeed's layout, not one torch file): the
    settings of the run that wrote it come from ``lightning/run.yaml``, written by every run at fit start. Here the
    base run's file is swapped for such a folder (DeepSpeed needs CUDA; the check reads only run.yaml)."""
    from adaragct.train.resume import RUN_SETTINGS_FILE, resume_from

    root, data = cohort
    resume = base_run[1]
    settings = resume.parent / RUN_SETTINGS_FILE
    cfg = debug_train_config(root, data, tokenizer_dir, "phase=base")
    assert run_settings(settings.read_text()) == run_settings(OmegaConf.to_yaml(cfg, resolve=True))
    sharded = root / "sharded" / "lightning" / "last.ckpt" / "checkpoint"
    sharded.mkdir(parents=True)
    (sharded / "mp_rank_00_model_states.pt").write_bytes(b"shards")
    moved = debug_train_config(root, data, tokenizer_dir, "phase=base", f"checkpoint_dir={root}/sharded")
    yaml = OmegaConf.to_yaml(moved, resolve=True)
    with pytest.raises(DataError, match=r"run\.yaml: file: holds no run settings"):
        resume_from(moved, yaml)
    (root / "sharded" / "lightning" / RUN_SETTINGS_FILE).write_text(settings.read_text())
    assert resume_from(moved, yaml) == str(
        sharded.parent
    )  # same settings: resumed (checkpoint_dir is no setting)
    other = debug_train_config(
        root, data, tokenizer_dir, "phase=base", f"checkpoint_dir={root}/sharded", "seed=7"
    )
    with pytest.raises(DataError, match=r"last\.ckpt: config: written by .*seed: 42 -> 7"):
        resume_from(other, OmegaConf.to_yaml(other, resolve=True))


def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path) -> None:
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cut short")

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 3, "w": torch.ones(1000)}, path)
    with pytest.raises(RuntimeError, match="cut short"):
        io.save_checkpoint({"global_step": 4, "w": torch.zeros(1000), "z": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind
