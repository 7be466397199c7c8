"""Predictions JSONL: resume after a kill, no duplicates, shard merge in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaragct.errors import DataError
from adaragct.generation.predictions import PredictionWriter, merge_shards, read_done_ids, shard, shard_path


def _rec(i: int) -> dict:
    return {"image": f"valid_{i}_a_1", "generated_text": f"report {i}", "reference_text": "ref"}


def test_resume_after_kill_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionWriter(path) as writer:
        for i in range(3):
            writer.write(_rec(i))
    with open(path, "a") as handle:  # a write killed half-way
        handle.write('{"image": "valid_3_a_1", "generated_te')
    with PredictionWriter(path) as writer:
        assert writer.done == {f"valid_{i}_a_1" for i in range(3)}
        for i in range(3, 5):
            writer.write(_rec(i))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["image"] for r in lines] == [f"valid_{i}_a_1" for i in range(5)]


def test_writer_refuses_duplicates(tmp_path: Path) -> None:
    with PredictionWriter(tmp_path / "p.jsonl") as writer:
        writer.write(_rec(0))
        with pytest.raises(ValueError, match="already written"):
            writer.write(_rec(0))


def test_duplicate_or_malformed_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_rec(0)) + "\n" + json.dumps(_rec(0)) + "\n")
    with pytest.raises(DataError, match="line 2: duplicate volume"):
        read_done_ids(path)
    path.write_text("not json\n")
    with pytest.raises(DataError, match="line 1: not a prediction record"):
        read_done_ids(path)


def test_shards_merge_in_order(tmp_path: Path) -> None:
    order = [f"valid_{i}_a_1" for i in range(7)]
    paths = [shard_path(tmp_path / "p.jsonl", r, 3) for r in range(3)]
    for rank, path in enumerate(paths):
        with PredictionWriter(path) as writer:
            for i, _ in enumerate(order):
                if i in shard(range(7), rank, 3):
                    writer.write(_rec(i))
    assert merge_shards(paths, order, tmp_path / "p.jsonl") == 7
    assert [json.loads(x)["image"] for x in (tmp_path / "p.jsonl").read_text().splitlines()] == order
    with pytest.raises(DataError, match="1 volumes missing"):
        merge_shards(paths, [*order, "valid_9_a_1"], tmp_path / "q.jsonl")
