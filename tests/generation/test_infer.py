"""The infer command on the small demo cohort with tiny checkpoints: release fields, traces, resume, alias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaragct.generation.predictions import PredictionWriter
from adaragct.infer import run_infer
from tests.conftest import compose_config, data_overrides


def _cfg(data_dir: Path, ckpt: Path, predictions: Path, retrieval: str = "adaptive", *extra: str):
    return compose_config(
        "infer",
        [
            *data_overrides(data_dir),
            f"paths.output_dir={predictions.parent}",
            f"paths.cache_dir={data_dir}/cache",
            f"ckpt={ckpt}",
            f"predictions={predictions}",
            f"retrieval={retrieval}",
            "limit=6",
            "batch_size=4",
            "generation.max_new_tokens=24",
            "progress=false",
            "generation.rag_logit_bias=50.0",
            "generation.min_probe_chars=1",
            *extra,
        ],
    )


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
                handle.write(json.dumps(record)[:40])
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


def test_seed_alias_maps_flags_to_overrides(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    from adaragct.inference.inference_rag import main

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
            "stage=base",
        ]
    )
    rows = _lines(out)
    assert len(rows) == 3 and summary["retrieval"] == "none"
    assert rows[0]["decoding"]["max_retrievals"] == 2 and rows[0]["decoding"]["top_k"] == 2
    assert all(r["retrieval_count"] == 0 for r in rows)
