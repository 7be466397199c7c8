"""Runs land in the tracker: a real offline wandb run of a 2-step train, then infer logging into it."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from adaragct.tracking import RUN_RECORD
from tests.conftest import compose_config, data_overrides

PAPER = ("experiment=demo", "prompt=default")  # the tiny checkpoints' settings (tests/conftest.py)
# tests.conftest.FAST_TRAIN without debug=default, which drops every logger
WANDB_TRAIN = (
    "model=tiny",
    "trainer.accelerator=cpu",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "++trainer.limit_val_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "datamodule.batch_size=2",
    "datamodule.num_workers=0",
    "phase.scheduler.warmup_steps=1",
    "logger=wandb",
    "callbacks.clinical_metrics.num_volumes=2",  # val/clin_f1 reaches the run too
    "callbacks.clinical_metrics.max_new_tokens=16",
)
INFER = ("limit=4", "batch_size=4", "generation.max_new_tokens=16", "progress=false", "retrieval=none")


def wandb_records(path: Path):
    """The records of an offline run's ``run-<id>.wandb`` file (LevelDB log format: 7-byte file header, 32 KiB
    blocks, each record a 7-byte header -- crc, length, type FULL/FIRST/MIDDLE/LAST -- then its bytes)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, parts = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B", f"{path}: not a wandb run file"
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            pos += left
            continue
        if pos + 7 + length > len(data):  # a record still being written
            return
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record


def run_contents(folder: Path) -> dict:
    """What one offline-run folder holds: config, tags, logged keys and table files."""
    out = {"config": {}, "tags": [], "logged": {}, "tables": {}}
    records = []
    for _ in range(120):  # wandb's service may still be writing the file when finish() has returned
        records = list(wandb_records(next(folder.glob("run-*.wandb"))))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.5)
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["tags"], out["job_type"] = list(record.run.tags), record.run.job_type
            config = record.run.config
        elif kind == "config":
            config = record.config
        if kind in ("run", "config"):
            out["config"].update(
                {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in config.update}
            )
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key[:1])
                out["logged"].setdefault(key, json.loads(item.value_json))
    for table in folder.glob("files/media/table/**/*.table.json"):
        out["tables"][str(table.relative_to(folder / "files/media/table")).rsplit("_", 2)[0]] = json.loads(
            table.read_text()
        )
    return out


def _infer(data_dir: Path, ckpt: Path, out: Path, *extra: str):
    from adaragct.apps.infer import run as run_infer

    cfg = compose_config(
        "infer",
        [
            *data_overrides(data_dir),
            *PAPER,
            f"paths.output_dir={out}",
            f"paths.cache_dir={data_dir}/cache",
            f"ckpt={ckpt}",
            f"predictions={out}/predictions.jsonl",
            *INFER,
            *extra,
        ],
    )
    return run_infer(cfg)


def test_train_and_infer_land_in_one_offline_wandb_run(indexed_demo, tmp_path) -> None:
    from adaragct.apps.train import run as train

    cfg = compose_config(
        "train",
        [
            f"paths.root_dir={tmp_path}",
            f"paths.output_dir={tmp_path}/run",
            *data_overrides(indexed_demo),
            *PAPER,
            "phase=base",
            *WANDB_TRAIN,
        ],
    )
    train(cfg)
    record = json.loads((Path(cfg.checkpoint_dir) / RUN_RECORD).read_text())
    wandb_dir = Path(cfg.paths.output_dir) / "wandb"
    assert record["save_dir"] == str(Path(cfg.paths.output_dir).resolve())
    (trained,) = (run_contents(f) for f in wandb_dir.glob(f"offline-run-*-{record['id']}*"))
    assert trained["tags"] == ["demo"]  # experiment=demo's top-level tags
    config = trained["config"]
    assert config["phase"]["name"] == "base" and config["seed"] == cfg.seed  # the whole resolved config
    assert config["trainer"]["max_steps"] == 2 and config["checkpoint_dir"] == cfg.checkpoint_dir
    params = config["model/params"]
    assert (
        params["total"] == params["trainable"] + params["non_trainable"]
        and 0 < params["trainable"] < params["total"]
    )
    assert {"train/loss", "val/clin_f1", "val/bleu4"} <= set(trained["logged"])

    # rerunning the command resumes the train run (nothing left to train here), and its wandb run: same id
    train(cfg)
    assert json.loads((Path(cfg.checkpoint_dir) / RUN_RECORD).read_text())["id"] == record["id"]
    assert len(list(wandb_dir.glob(f"offline-run-*-{record['id']}*"))) == 2

    # infer (logger=wandb) resumes the checkpoint's run: same id, one more offline folder beside the others
    summary = _infer(indexed_demo, Path(cfg.checkpoint_dir) / "last", tmp_path / "infer", "logger=wandb")
    folders = sorted(wandb_dir.glob(f"offline-run-*-{record['id']}*"))
    assert len(folders) == 3 and len(list(wandb_dir.glob("offline-run-*"))) == 3
    scored = run_contents((wandb_dir / "latest-run").resolve())  # wandb's link to the newest folder
    metrics = summary["metrics"]
    assert scored["logged"]["infer/none/clinical_f1"] == metrics["report_generation/clinical_f1"]
    assert scored["logged"]["infer/none/bleu_4"] == metrics["report_generation/bleu_4"]
    assert scored["logged"]["infer/none/num_samples"] == 4
    assert scored["config"]["infer/none"]["ckpt"] == str(Path(cfg.checkpoint_dir) / "last")
    table = scored["tables"]["infer/none/per_finding"]
    assert table["columns"] == ["finding", "precision", "recall", "f1", "support"]
    detailed = metrics["report_generation/clinical_detailed"]
    assert {row[0]: row[3] for row in table["data"]} == {k: v["f1"] for k, v in detailed.items()}
    assert (
        "infer/none/per_finding_f1_table" in scored["logged"]
    )  # the bar chart (wandb.plot.bar) over the table
    # no report text: no table of reports, and no reference report anywhere in the run's files
    assert "infer/none/reports" not in {*scored["tables"], *scored["logged"]}
    written = b"".join(f.read_bytes() for f in (wandb_dir / "latest-run").resolve().rglob("*") if f.is_file())
    predictions = [
        json.loads(line) for line in (tmp_path / "infer" / "predictions.jsonl").read_text().splitlines()
    ]
    assert all(p["reference_text"] and p["reference_text"].encode() not in written for p in predictions)

    # report text only when asked
    _infer(
        indexed_demo,
        Path(cfg.checkpoint_dir) / "last",
        tmp_path / "text",
        "logger=wandb",
        "logger.log_report_text=true",
    )
    latest = (wandb_dir / "latest-run").resolve()  # a third folder of the run (-1 when in the same second)
    reports = run_contents(latest)["tables"]["infer/none/reports"]
    rows = [json.loads(line) for line in (tmp_path / "text" / "predictions.jsonl").read_text().splitlines()]
    assert reports["columns"] == ["volume", "generated", "reference"]
    assert [r[1] for r in reports["data"]] == [r["generated_text"] for r in rows]
    assert [r[2] for r in reports["data"]] == [r["reference_text"] for r in rows]
    assert rows[0]["reference_text"].encode() in b"".join(
        f.read_bytes() for f in latest.rglob("*") if f.is_file()
    )

    # evaluate (logger=wandb) with ckpt= logs into the checkpoint's run too, under evaluate/
    scored_file = tmp_path / "infer" / "predictions.jsonl"
    evaluated = _evaluate(scored_file, tmp_path / "eval", f"ckpt={Path(cfg.checkpoint_dir) / 'last'}")
    assert len(list(wandb_dir.glob(f"offline-run-*-{record['id']}*"))) == 5
    logged = run_contents((wandb_dir / "latest-run").resolve())
    assert logged["logged"]["evaluate/clinical_f1"] == evaluated["report_generation/clinical_f1"]
    assert logged["logged"]["evaluate/num_samples"] == 4 and "evaluate/per_finding" in logged["tables"]
    assert "evaluate/reports" not in logged["tables"]

    # a checkpoint without a recorded run (the release's, or trained without wandb): a new run, job_type=infer
    (Path(cfg.checkpoint_dir) / RUN_RECORD).unlink()
    _infer(indexed_demo, Path(cfg.checkpoint_dir) / "last", tmp_path / "new", "logger=wandb")
    (own,) = (tmp_path / "new" / "wandb").glob("offline-run-*")
    assert record["id"] not in own.name and len(list(wandb_dir.glob("offline-run-*"))) == 5
    new = run_contents(own)
    assert (
        new["job_type"] == "infer"
        and new["tags"] == ["demo"]
        and new["config"]["ckpt"] == str(Path(cfg.checkpoint_dir) / "last")
    )
    assert "infer/none/clinical_f1" in new["logged"] and "infer/none/per_finding" in new["tables"]

    # evaluate without ckpt (any generator's file): a run of its own, job_type=evaluate
    _evaluate(scored_file, tmp_path / "eval_own", "wandb_prefix=mine")
    (own,) = (tmp_path / "eval_own" / "wandb").glob("offline-run-*")
    alone = run_contents(own)
    assert alone["job_type"] == "evaluate" and "mine/clinical_f1" in alone["logged"]


def _evaluate(predictions: Path, out: Path, *extra: str) -> dict:
    from adaragct.apps.evaluate import run

    cfg = compose_config(
        "evaluate",
        [
            f"predictions={predictions}",
            f"paths.output_dir={out}",
            "logger=wandb",
            "scoring.meteor=false",
            "view=false",
            "scoring.progress=false",
            *extra,
        ],
    )
    return run(cfg)
