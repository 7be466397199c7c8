"""The infer command on the small demo cohort with tiny checkpoints: release fields, traces, resume, alias."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adaragct.apps.infer import run as run_infer
from adaragct.generation.predictions import PredictionWriter
from tests.conftest import PROJECT_ROOT, compose_config, data_overrides

# 6 volumes, short reports, and a [RAG] bias that makes the tiny model retrieve
SMALL_RUN = (
    "limit=6",
    "batch_size=4",
    "generation.max_new_tokens=24",
    "progress=false",
    "generation.rag_logit_bias=50.0",
    "generation.min_probe_chars=1",
)


def _overrides(data_dir: Path, ckpt: Path, predictions: Path, retrieval: str = "adaptive", *extra: str):
    return [
        *data_overrides(data_dir),
        f"paths.output_dir={predictions.parent}",
        f"paths.cache_dir={data_dir}/cache",
        f"ckpt={ckpt}",
        f"predictions={predictions}",
        f"retrieval={retrieval}",
        *SMALL_RUN,
        *extra,
    ]


def _cfg(*args, **kwargs):
    return compose_config("infer", _overrides(*args, **kwargs))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predictions_have_the_release_fields_and_metrics(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    summary = run_infer(_cfg(indexed_demo, tiny_checkpoints["rag"], tmp_path / "p.jsonl"))
    rows = _lines(tmp_path / "p.jsonl")
    assert len(rows) == 6 == summary["generated"]
    for row in rows:
        assert {
            "image",
            "generated_text",
            "reference_text",
            "task_type",
            "retrieval_count",
            "retrieval_log",
            "decoding",
        } <= set(row)
        assert row["task_type"] == "report_generation" and row["reference_text"]
        assert "[RAG]" not in row["generated_text"]
        for entry in row["retrieval_log"]:
            assert {"step", "probe_text", "action"} <= set(entry)
    assert sum(r["retrieval_count"] for r in rows) > 0, "the [RAG] bias must make the tiny model retrieve"
    retrieved = [e for r in rows for e in r["retrieval_log"] if e["action"] == "retrieved"]
    assert all(e["organ"] and len(e["sentence_ids"]) == len(e["context"]) > 0 for e in retrieved)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_samples"] == 6 and "report_generation/clinical_f1" in metrics
    # the viewer's page beside the predictions, holding every volume and its metrics (issue 22)
    assert summary["view"] == str(tmp_path / "view.html")
    page = (tmp_path / "view.html").read_text()
    assert all(r["image"] in page for r in rows) and "clinical_f1" in page


@pytest.mark.parametrize("continuous", [False, True], ids=["fixed-batches", "continuous-batching"])
def test_killed_run_resumes_to_the_uninterrupted_file(
    indexed_demo, tiny_checkpoints, tmp_path, monkeypatch, continuous: bool
) -> None:
    def cfg(name: str):
        return _cfg(
            indexed_demo,
            tiny_checkpoints["rag"],
            tmp_path / name,
            "adaptive",
            f"continuous_batching={continuous}",
        )

    run_infer(cfg("full.jsonl"))
    original = PredictionWriter.write
    calls = {"n": 0}

    def dying_write(self, record):
        if calls["n"] == 3:
            with open(self.path, "a", encoding="utf-8") as handle:  # a torn line, as a kill mid-write leaves
                handle.write(record.to_json()[:40])
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        original(self, record)

    monkeypatch.setattr(PredictionWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run_infer(cfg("resumed.jsonl"))
    assert len((tmp_path / "resumed.jsonl").read_text().splitlines()) == 4  # 3 records + the torn line
    monkeypatch.setattr(PredictionWriter, "write", original)
    summary = run_infer(cfg("resumed.jsonl"))
    assert summary["skipped"] == 3 and summary["generated"] == 3
    resumed, full = _lines(tmp_path / "resumed.jsonl"), _lines(tmp_path / "full.jsonl")
    assert [r["image"] for r in resumed] == [r["image"] for r in full]
    assert resumed == full


def test_a_rerun_with_another_process_count_resumes(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    """Shards of killed 2- and 3-process runs: a single-process rerun generates only what they lack."""
    from adaragct.generation.predictions import shard_path, sibling_shards

    run_infer(
        _cfg(
            indexed_demo,
            tiny_checkpoints["rag"],
            tmp_path / "full.jsonl",
            "adaptive",
            "score=false",
        )
    )
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    final = tmp_path / "p.jsonl"
    shard_path(final, 0, 2).write_text(lines[0] + lines[2])
    shard_path(final, 2, 3).write_text(lines[4] + lines[5][:30])  # killed mid-line
    summary = run_infer(_cfg(indexed_demo, tiny_checkpoints["rag"], final, "adaptive", "score=false"))
    assert summary["skipped"] == 3 and summary["generated"] == 3
    assert final.read_text() == "".join(lines) and sibling_shards(final) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_shard_and_merge_to_the_single_process_file(
    indexed_demo, tiny_checkpoints, tmp_path
) -> None:
    """``torchrun --nproc-per-node 2 -m adaragct.infer`` (gloo on the CPU) writes the single-process file."""
    import torch
    from threadpoolctl import threadpool_limits

    ckpt = tiny_checkpoints["rag"]
    # Both sides pinned to one thread per library (the ranks below get threads=1 too): scores are float sums whose
    # last digit depends on the thread count (CI's 2-core run differed in the 6th decimal of a retrieval score).
    ambient = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores every BLAS/OpenMP pool's limit on exit
        try:
            run_infer(
                _cfg(
                    indexed_demo,
                    ckpt,
                    tmp_path / "one" / "p.jsonl",
                    "adaptive",
                    "score=false",
                    "threads=1",
                )
            )
        finally:
            torch.set_num_threads(ambient)
    two = tmp_path / "two" / "p.jsonl"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(_free_port()),
        "-m",
        "adaragct.infer",
        *_overrides(indexed_demo, ckpt, two, "adaptive", "score=false", "device=cpu", "threads=1"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("3 generated, 0 already done") == 2, done.stdout  # 6 volumes, 3 per rank
    assert two.read_text() == (tmp_path / "one" / "p.jsonl").read_text()
    assert sorted(p.name for p in two.parent.glob("p.*jsonl")) == ["p.jsonl"]


def test_seed_alias_maps_flags_to_overrides(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    from adaragct.compat.inference_rag import main

    out = tmp_path / "alias.jsonl"
    summary = main(
        [
            "--checkpoint",
            str(tiny_checkpoints["base"]),
            "--output",
            str(out),
            "--no-rag",
            "--max-retrievals",
            "2",
            "--top-k",
            "2",
            f"paths.data_dir={indexed_demo}",
            "limit=3",
            "generation.max_new_tokens=16",
            "progress=false",
            "phase=base",
        ]
    )
    rows = _lines(out)
    assert len(rows) == 3 and summary["retrieval"] == "none"
    assert rows[0]["decoding"]["max_retrievals"] == 2 and rows[0]["decoding"]["top_k"] == 2
    assert all(r["retrieval_count"] == 0 for r in rows)


def _as_release(base_ckpt: Path, rag_ckpt: Path, root: Path) -> tuple[Path, Path]:
    """Our two tiny checkpoints rewritten in the release's layout: (base directory, AdaRAG step directory).

    The base directory is the merged stage-base model + ``projector.pt``; the step directory carries the rag
    LoRA under raw PEFT keys and the full trained embed_tokens / lm_head matrices, as the release's do."""
    import copy

    from adaragct.models.loading import load_checkpoint
    from tests.models.conftest import write_release_base, write_release_step

    base, tokenizer, _ = load_checkpoint(base_ckpt)
    base_dir = write_release_base(
        root / "release_base", base.llm.merge_and_unload(), base.projector, tokenizer
    )
    rag, tokenizer, _ = load_checkpoint(rag_ckpt)
    merged = copy.deepcopy(rag.llm).merge_and_unload()  # applies the trained new-token rows
    step_dir = write_release_step(root / "adarag_step", rag.llm, merged, rag.projector, tokenizer, base_dir)
    return base_dir, step_dir


def test_a_release_checkpoint_decodes_like_ours(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    """The seed's command on the release's AdaRAG step directory gives our checkpoint's reports and traces."""
    from adaragct.compat.inference_rag import main

    rag_ckpt = _with_visible_lora(tiny_checkpoints["rag"], tmp_path / "rag")
    base_dir, step_dir = _as_release(tiny_checkpoints["base"], rag_ckpt, tmp_path)
    ours = run_infer(_cfg(indexed_demo, rag_ckpt, tmp_path / "ours.jsonl", "adaptive", "score=false"))
    # the prompt of our checkpoint, set by hand as a user sets the release's strings
    prompt = [f"prompt.{k}={json.dumps(v)}" for k, v in _trained_prompt(rag_ckpt).items()]

    def seed_command(ckpt: Path, output: str) -> dict:
        # a step directory without --base: its adapter_config.json names the base directory
        return main(
            [
                "--checkpoint",
                str(ckpt),
                "--output",
                str(tmp_path / output),
                *data_overrides(indexed_demo),
                f"paths.cache_dir={indexed_demo}/cache",
                *SMALL_RUN,
                "score=false",
                *prompt,
            ]
        )

    release = seed_command(step_dir, "release.jsonl")
    assert release["generated"] == ours["generated"] == 6 and ours["retrievals_per_report"] > 0
    mine, theirs = _lines(tmp_path / "ours.jsonl"), _lines(tmp_path / "release.jsonl")
    assert [(r["generated_text"], r["retrieval_log"]) for r in theirs] == [
        (r["generated_text"], r["retrieval_log"]) for r in mine
    ]
    seed_command(base_dir, "release_base.jsonl")  # the base directory alone: no rag LoRA, other reports
    assert [r["generated_text"] for r in _lines(tmp_path / "release_base.jsonl")] != [
        r["generated_text"] for r in mine
    ]


def _with_visible_lora(ckpt: Path, root: Path) -> Path:
    """A copy of a 2-step rag checkpoint with random trained weights, so that dropping them changes the reports."""
    from adaragct.models.checkpoint import save_checkpoint
    from adaragct.models.loading import load_checkpoint
    from tests.models.conftest import perturb_trainable

    model, tokenizer, _ = load_checkpoint(ckpt)
    perturb_trainable(model, 0)
    save_checkpoint(root, "step-000002", model, tokenizer, (ckpt / "config.yaml").read_text())
    return root / "last"


def _trained_prompt(ckpt: Path) -> dict:
    import yaml

    return yaml.safe_load((ckpt / "config.yaml").read_text())["prompt"]


def test_a_directory_that_is_no_checkpoint_names_the_field_and_fix(tmp_path) -> None:
    from adaragct.compat.inference_rag import parse, to_overrides
    from adaragct.errors import DataError
    from adaragct.models.loading import checkpoint_kind
    from adaragct.models.release import release_base_for

    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(
        DataError, match=r"ckpt: not a checkpoint \(found: \['notes.txt'\]\).*fix: point ckpt="
    ):
        checkpoint_kind(tmp_path)
    step = tmp_path / "step"
    step.mkdir()
    (step / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "meta-llama/Llama-3.1-8B"})
    )
    with pytest.raises(DataError, match=r"adapter_config.json: base_model_name_or_path: .*fix: .*--base"):
        release_base_for(step)
    with pytest.raises(DataError, match=r"ckpt_base: not a release base"):
        release_base_for(step, tmp_path)
    args = parse(["--checkpoint", str(step), "--output", str(tmp_path / "p.jsonl"), "--base", str(tmp_path)])
    assert f"ckpt_base={tmp_path.resolve()}" in to_overrides(args)
