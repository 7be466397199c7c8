"""Id normalisation and atomic writes: used by every reader and writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaragct.errors import DataError
from adaragct.ids import normalize_volume_id, patient_id
from adaragct.io import atomic_open, read_json_or_jsonl, read_jsonl, write_json


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("valid_53_a_1", "valid_53_a_1"),
        ("valid_53_a_1.nii.gz", "valid_53_a_1"),
        (" /data/valid/valid_53/valid_53_a/valid_53_a_1.nii ", "valid_53_a_1"),
        ("C:\\ct\\train_7_b_2.nii.gz", "train_7_b_2"),
        ("70a7d410-7d69-4cd8-b990-6a6d8f3c1d52", "70a7d410-7d69-4cd8-b990-6a6d8f3c1d52"),
    ],
)
def test_normalize_volume_id(raw: str, expected: str) -> None:
    assert normalize_volume_id(raw) == expected


def test_patient_id_groups_reconstructions() -> None:
    assert patient_id("train_12_a_1.nii.gz") == patient_id("train_12_b_2") == "train_12"
    assert patient_id("train_12_a_1") != patient_id("train_120_a_1")
    assert patient_id("70a7d410-7d69") == "70a7d410-7d69"


def test_atomic_open_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}, "the old file must survive a failed write"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"], "no temp file left behind"


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(DataError, match=r"p\.jsonl: line 3: malformed JSON"):
        read_jsonl(path)


def test_single_object_named_jsonl_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ctx.jsonl"
    path.write_text(json.dumps({"x": [1]}, indent=2))
    assert read_json_or_jsonl(path) == {"x": [1]}
    path.write_text('{"x": 1}\n{"y": 2}\n')
    assert read_json_or_jsonl(path) == [{"x": 1}, {"y": 2}]


def test_patient_derangement_never_pairs_a_volume_with_its_own_patient() -> None:
    from adaragct.ids import patient_derangement

    ids = [f"valid_{p}_a_{r}" for p in range(1, 30) for r in ((1, 2) if p % 3 == 0 else (1,))]
    draws = [patient_derangement(ids, seed) for seed in range(5)]
    for perm in draws:
        assert sorted(perm) == list(range(len(ids)))  # a permutation
        assert all(patient_id(ids[i]) != patient_id(ids[j]) for i, j in enumerate(perm))
    assert len({tuple(p) for p in draws}) == 5  # seeds give other pairings
    assert patient_derangement(ids, 3) == draws[3]  # and the same seed the same one


def test_patient_derangement_is_none_when_one_patient_dominates() -> None:
    from adaragct.ids import patient_derangement

    assert patient_derangement(["valid_1_a_1", "valid_1_a_2", "valid_2_a_1"], 0) is None
    assert patient_derangement(["valid_1_a_1"], 0) is None
    assert patient_derangement(["valid_1_a_1", "valid_1_a_2", "valid_2_a_1", "valid_3_a_1"], 0) is not None
