"""Clinical metrics while training (conf/callbacks, adaragct.train.clinical_validation), on the indexed small demo
cohort with its pretrained tiny LM: val/clin_f1 and val/bleu4 reach the Lightning CSV log and equal the offline
scoring of the reports the callback wrote; the callback changes no weight; ``best`` follows the monitored metric;
the callbacks group's early stopping and LR monitor act."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from safetensors.torch import load_file

from tests.conftest import train_cfg

# phase align (the projectors on the frozen pretrained tiny LM): the cheapest stage that writes reports
ALIGN = ("experiment=demo", "phase=align", "datamodule.batch_size=4")
FEW = ("callbacks.clinical_metrics.num_volumes=6", "callbacks.clinical_metrics.max_new_tokens=48")


def _rows(run: Path) -> list[dict[str, str]]:
    files = sorted(run.glob("csv/version_*/metrics.csv"))
    with open(files[-1]) as handle:
        return list(csv.DictReader(handle))


def _train(root: Path, data_dir: Path, *overrides: str):
    from adaragct.apps.train import run as train

    cfg = train_cfg(root, data_dir, *ALIGN, *FEW, *overrides)
    with open_dict(cfg):  # debug=default has no logger: the Lightning CSV log is what this test reads
        cfg.logger = {
            "csv": {
                "_target_": "lightning.pytorch.loggers.CSVLogger",
                "save_dir": cfg.paths.output_dir,
                "name": "csv",
            }
        }
    train(cfg)
    return cfg


def test_val_clin_f1_is_logged_and_equals_scoring_its_reports(indexed_demo, tmp_path) -> None:
    from adaragct.eval.runner import EvalOptions, evaluate_predictions

    # 300 tokens: long enough for the pretrained tiny LM's reports to share 4-grams with the references
    cfg = _train(tmp_path, indexed_demo, "callbacks.clinical_metrics.max_new_tokens=300")
    rows = [r for r in _rows(Path(cfg.paths.output_dir)) if r.get("val/clin_f1")]
    assert rows and all(r["val/bleu4"] for r in rows)  # every validation logs both metrics in the CSV log
    last = rows[-1]
    reports = Path(cfg.checkpoint_dir) / "val_reports" / f"step-{int(last['step']) + 1:06d}.jsonl"
    records = [json.loads(line) for line in reports.read_text().splitlines()]
    assert len(records) == 6 and all(r["generated_text"].strip() for r in records)
    metrics = evaluate_predictions(
        EvalOptions(
            predictions=reports,
            output=tmp_path / "m.json",
            labels_csv=cfg.data.train_labels_csv,  # the validation volumes are training volumes
            meteor=False,
        )
    )
    assert float(last["val/clin_f1"]) == pytest.approx(metrics["overall/clinical_f1"], abs=1e-6)
    assert float(last["val/bleu4"]) == pytest.approx(metrics["overall/bleu_4"], abs=1e-6)
    assert (
        float(last["val/bleu4"]) > 0
    )  # the pretrained tiny LM writes report words: the test can see a change


def test_the_callback_changes_no_weight(indexed_demo, tmp_path) -> None:
    with_it = _train(tmp_path / "on", indexed_demo, "trainer.max_steps=4")
    without = _train(tmp_path / "off", indexed_demo, "trainer.max_steps=4", "callbacks=none")
    a = load_file(Path(with_it.checkpoint_dir) / "last" / "projector.safetensors")
    b = load_file(Path(without.checkpoint_dir) / "last" / "projector.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (Path(without.checkpoint_dir) / "val_reports").exists()


def test_best_follows_the_monitored_metric_and_warns_when_it_is_absent(
    indexed_demo, tmp_path, caplog
) -> None:
    cfg = _train(tmp_path / "on", indexed_demo, "trainer.max_steps=4", "trainer.val_check_interval=1")
    f1 = {
        int(r["step"]) + 1: float(r["val/clin_f1"])
        for r in _rows(Path(cfg.paths.output_dir))
        if r.get("val/clin_f1")
    }
    assert sorted(f1) == [1, 2, 3, 4]
    step = max(f1, key=lambda s: (f1[s], -s))  # the first of equal values
    best = json.loads((Path(cfg.checkpoint_dir) / "best.json").read_text())
    assert (best["step"], best["monitor"]) == (step, "val/clin_f1")
    assert (Path(cfg.checkpoint_dir) / "best").resolve().name == f"step-{step:06d}"
    with caplog.at_level(logging.WARNING):
        off = _train(tmp_path / "off", indexed_demo, "callbacks=none")
    assert "best_checkpoint.monitor=val/clin_f1 was not logged" in caplog.text
    assert not (Path(off.checkpoint_dir) / "best").exists()


def test_early_stopping_and_lr_monitor_from_the_callbacks_group(indexed_demo, tmp_path) -> None:
    cfg = _train(
        tmp_path,
        indexed_demo,
        "callbacks=[early_stopping,lr_monitor]",
        "trainer.max_steps=6",
        "trainer.val_check_interval=1",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=2.0",  # no F1 improves by 2: stop at the second validation
    )
    rows = _rows(Path(cfg.paths.output_dir))
    assert any(k.startswith("lr-") for k in rows[0])  # LearningRateMonitor's columns
    assert sum(1 for r in rows if r.get("val/clin_f1")) == 2  # stopped at the second validation
    assert (Path(cfg.checkpoint_dir) / "last").resolve().name < "step-000006"  # before trainer.max_steps


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two torchrun processes: ~2 min on 2 cores
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_ddp_processes_log_the_one_process_values(indexed_demo, tmp_path) -> None:
    """``torchrun --nproc-per-node 2 -m adaragct.train strategy=ddp``: each rank decodes half of the subset; the
    synced metrics and the gathered reports equal one process's. lr 0 keeps both runs on the same weights (two
    ranks see other batches); without the sum over ranks, each rank would log the score of its own half."""
    import os
    import re
    import subprocess
    import sys

    from tests.conftest import FAST_TRAIN, PROJECT_ROOT, data_overrides

    frozen = ("phase.optimizer.lr=0.0", "callbacks.clinical_metrics.max_new_tokens=200", "threads=1")
    one = _train(tmp_path / "one", indexed_demo, *frozen)
    f1 = [r for r in _rows(Path(one.paths.output_dir)) if r.get("val/clin_f1")][-1]
    overrides = [
        f"paths.root_dir={tmp_path / 'two'}",
        f"paths.output_dir={tmp_path / 'two' / 'run'}",
        *data_overrides(indexed_demo),
        *FAST_TRAIN,
        *ALIGN,
        *FEW,
        *frozen,
        "strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-port", str(_free_port()), "-m", "adaragct.train", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    logged = re.findall(
        r"clinical validation at step (\d+) on 6 volumes .*: clin_f1 ([\d.]+), bleu4 ([\d.]+)",
        done.stdout + done.stderr,
    )
    last_step = max(int(step) for step, _, _ in logged)
    finals = {(f, b) for step, f, b in logged if int(step) == last_step}
    assert finals == {
        (f"{float(f1['val/clin_f1']):.4f}", f"{float(f1['val/bleu4']):.4f}")
    }  # both ranks, one value
    name = f"val_reports/step-{last_step:06d}.jsonl"
    two_ckpt = tmp_path / "two" / "outputs" / "train" / "demo_tiny_align"
    assert (two_ckpt / name).read_text() == (Path(one.checkpoint_dir) / name).read_text()


def test_the_app_config_unresolved_trains_on_the_pretrained_tiny_lm(indexed_demo, tmp_path) -> None:
    """``python -m adaragct.train`` hands ``train`` an unresolved config (``model.path: ${data.tiny_lm_dir}``); the
    model config must be resolved before the builder sees it (it once got the literal string and fell back to a
    random init: loss 6.46 where the pretrained LM starts at 3.3)."""
    from adaragct.apps.train import run as train
    from tests.conftest import FAST_TRAIN, compose_config, data_overrides

    root = tmp_path
    cfg = compose_config(
        "train",
        [
            f"paths.root_dir={root}",
            f"paths.output_dir={root}/run",
            *data_overrides(indexed_demo),
            *FAST_TRAIN,
            *ALIGN,
            "callbacks=none",
            "trainer.max_steps=1",
        ],
        resolve=False,
    )
    assert cfg.model._get_node("path")._value() == "${data.tiny_lm_dir}"  # as the app gets it
    train(cfg)
    provenance = json.loads((Path(cfg.checkpoint_dir) / "last" / "provenance.json").read_text())
    assert provenance["base"]["scheme"] == "files"
    assert provenance["base"]["source"] == str(indexed_demo / "demo" / "tiny_lm")
