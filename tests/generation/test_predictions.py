"""Predictions JSONL: resume after a kill, no duplicates, shard merge in order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adaragct.errors import DataError
from adaragct.formats.predictions import Prediction
from adaragct.generation.predictions import (
    PredictionWriter,
    done_ids_elsewhere,
    finalize,
    merge_shards,
    read_done_ids,
    shard,
    shard_path,
    sibling_shards,
)


def _rec(i: int) -> dict:
    return {"image": f"valid_{i}_a_1", "generated_text": f"report {i}", "reference_text": "ref"}


def test_resume_after_kill_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionWriter(path) as writer:
        for i in range(3):
            writer.write(Prediction(**_rec(i)))
    with open(path, "a") as handle:  # a write killed half-way
        handle.write('{"image": "valid_3_a_1", "generated_te')
    with PredictionWriter(path) as writer:
        assert writer.done == {f"valid_{i}_a_1" for i in range(3)}
        for i in range(3, 5):
            writer.write(Prediction(**_rec(i)))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["image"] for r in lines] == [f"valid_{i}_a_1" for i in range(5)]


def test_writer_refuses_duplicates(tmp_path: Path) -> None:
    with PredictionWriter(tmp_path / "p.jsonl") as writer:
        writer.write(Prediction(**_rec(0)))
        with pytest.raises(ValueError, match="already written"):
            writer.write(Prediction(**_rec(0)))


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
                    writer.write(Prediction(**_rec(i)))
    assert merge_shards(paths, order, tmp_path / "p.jsonl") == 7
    assert [json.loads(x)["image"] for x in (tmp_path / "p.jsonl").read_text().splitlines()] == order
    with pytest.raises(DataError, match="1 volumes missing"):
        merge_shards(paths, [*order, "valid_9_a_1"], tmp_path / "q.jsonl")


def _write(path: Path, ids) -> None:
    path.write_text("".join(json.dumps(_rec(i)) + "\n" for i in ids))


def test_final_file_and_shards_of_any_process_count_merge_and_resume(tmp_path: Path) -> None:
    final = tmp_path / "p.jsonl"
    order = [f"valid_{i}_a_1" for i in range(8)]
    _write(final, [0, 1])  # a finished single-process run of two volumes ...
    _write(
        shard_path(final, 0, 2), [1, 2, 4]
    )  # ... leftovers of a killed 2-process run (1 is also merged) ...
    _write(shard_path(final, 1, 3), [3, 5])  # ... and of a 3-process one, with a torn last line
    with open(shard_path(final, 1, 3), "a") as handle:
        handle.write('{"image": "valid_7_a_1", "gen')
    (tmp_path / "p2.rank0-of-2.jsonl").write_text("not ours\n")  # another prediction file's shard
    assert [p.name for p in sibling_shards(final)] == ["p.rank0-of-2.jsonl", "p.rank1-of-3.jsonl"]
    # a 2-process rerun reads the final file and the 3-process shard, not its own (its writers read those)
    assert done_ids_elsewhere(final, 2) == {f"valid_{i}_a_1" for i in (0, 1, 3, 5)}
    assert done_ids_elsewhere(final, 1) == {f"valid_{i}_a_1" for i in (1, 2, 3, 4, 5)}
    with pytest.raises(DataError, match="2 volumes missing"):
        finalize(final, order)
    assert len(sibling_shards(final)) == 2, "a failed merge keeps every shard"
    _write(shard_path(final, 0, 2), [1, 2, 4, 6, 7])
    _write(final, [0, 1, 9])  # 9: a volume outside this run's split, kept after the ordered ones
    assert finalize(final, order) == 9
    assert [json.loads(x)["image"] for x in final.read_text().splitlines()] == [*order, "valid_9_a_1"]
    assert sibling_shards(final) == [] and (tmp_path / "p2.rank0-of-2.jsonl").exists()


def test_a_volume_with_two_different_records_is_an_error(tmp_path: Path) -> None:
    final = tmp_path / "p.jsonl"
    _write(final, [0])
    stale = shard_path(final, 0, 2)
    stale.write_text(json.dumps({**_rec(0), "generated_text": "another report"}) + "\n")
    with pytest.raises(
        DataError, match=r"p.rank0-of-2.jsonl: volume 'valid_0_a_1': differs from its record in"
    ):
        finalize(final, ["valid_0_a_1"])


def test_a_rerun_with_other_decoding_settings_is_refused_not_mixed_in(tmp_path: Path) -> None:
    """A rerun skips the volumes already in the file: with other settings it would mix two experiments."""
    from dataclasses import asdict

    from adaragct.generation import GenerationSettings
    from adaragct.generation.predictions import check_resumable

    settings = asdict(GenerationSettings(top_k=3, max_new_tokens=600))
    path = tmp_path / "p.jsonl"
    check_resumable(path, decoding=settings, retrieval="adaptive", global_context=False)  # no file yet
    record = {"image": "v1", "generated_text": "x", "retrieval": "adaptive", "decoding": settings}
    shard = path.with_name("p.rank1-of-2.jsonl")
    shard.write_text(json.dumps(record) + "\n")
    check_resumable(path, decoding=settings, retrieval="adaptive", global_context=False)
    # exact-by-design knobs may change between runs
    neutral = {**settings, "speculative": False, "split_injections": False, "compact_cache": False}
    check_resumable(path, decoding=neutral, retrieval="adaptive", global_context=False)
    cases = [
        ({**settings, "max_new_tokens": 5}, "adaptive", False, "generation.max_new_tokens=600 (this run: 5)"),
        (settings, "corrupt", False, "retrieval=adaptive (this run: corrupt)"),
        (settings, "adaptive", True, "global context off (this run: on)"),
    ]
    for decoding, retrieval, context, words in cases:
        with pytest.raises(
            DataError, match=r"p\.rank1-of-2\.jsonl: decoding settings: .*" + re.escape(words)
        ):
            check_resumable(path, decoding=decoding, retrieval=retrieval, global_context=context)
    older = {k: v for k, v in record.items() if k != "decoding"}  # a record without the key: not compared
    path.write_text(json.dumps(older) + "\n")
    shard.unlink()
    check_resumable(
        path, decoding={**settings, "max_new_tokens": 5}, retrieval="adaptive", global_context=False
    )
