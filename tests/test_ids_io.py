"""Id normalisation and atomic writes: used by every reader and writer."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from adaragct.errors import USER_ERROR_EXIT, DataError, UsageError, user_errors_exit
from adaragct.ids import normalize_volume_id, patient_id
from adaragct.io import (
    atomic_dir,
    atomic_open,
    check_output_file,
    read_json,
    read_json_or_jsonl,
    read_jsonl,
    write_json,
)


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


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_open_gives_the_umask_mode(tmp_path: Path, umask: int) -> None:
    # tempfile.mkstemp made every output 0600 whatever the umask (issue 24)
    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_open(tmp_path / "new" / "m.md") as handle:
            handle.write("| a |\n")
    finally:
        os.umask(old)
    for path in (tmp_path / "m.json", tmp_path / "new" / "m.md"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "new"]  # no temp file left


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_dir_gives_the_umask_mode(tmp_path: Path, umask: int) -> None:
    # tempfile.mkdtemp made the folder 0700, then a fixed chmod 0755 ignored the umask (issue 24)
    old = os.umask(umask)
    try:
        with atomic_dir(tmp_path / "tokenizer") as folder:
            (folder / "vocab.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "tokenizer").stat().st_mode) == 0o777 & ~umask
    assert (tmp_path / "tokenizer" / "vocab.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]  # no temporary folder left beside it


def test_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": "ok"}\n{"a": "lungs \xff clear"}\n')
    for reader in (read_jsonl, read_json_or_jsonl, read_json):
        with pytest.raises(DataError, match=r"p.jsonl: line 2 byte 14: is not UTF-8 text \(byte 0xff\)"):
            reader(path)


def test_check_output_file_refuses_inputs_directories_and_files_as_folders(tmp_path: Path) -> None:
    source = tmp_path / "pred.jsonl"
    source.write_text("{}\n")
    (tmp_path / "link.json").symlink_to(source)
    os.link(source, tmp_path / "hard.json")
    for out in (
        source,
        tmp_path / "link.json",
        tmp_path / "hard.json",
        tmp_path / "sub" / ".." / "pred.jsonl",
    ):
        with pytest.raises(DataError, match="is also an input"):
            check_output_file(out, inputs=(None, source))
    with pytest.raises(DataError, match="is a directory"):
        check_output_file(tmp_path, inputs=(source,))
    with pytest.raises(DataError, match=r"pred.jsonl: output file: is a file, so .* cannot be created"):
        check_output_file(source / "deeper" / "m.json")
    # a new folder (created by atomic_open) below a writable one is fine
    assert (
        check_output_file(tmp_path / "a" / "b" / "m.json", inputs=(source,))
        == tmp_path / "a" / "b" / "m.json"
    )
    assert source.read_text() == "{}\n"


def test_user_errors_exit_prints_one_line_and_keeps_other_tracebacks(capsys) -> None:
    with pytest.raises(SystemExit) as stop, user_errors_exit():
        raise DataError("x.csv", "line 3", "is bad\nreally", "fix it")
    assert stop.value.code == USER_ERROR_EXIT == 2
    assert capsys.readouterr().err == "error: x.csv: line 3: is bad really (fix: fix it)\n"
    with pytest.raises(SystemExit), user_errors_exit():
        raise UsageError("--bootstrap", "is negative", "pass 0 or more")
    assert capsys.readouterr().err == "error: --bootstrap: is negative (fix: pass 0 or more)\n"
    with pytest.raises(KeyError), user_errors_exit():  # a bug, not an input: its traceback stays
        raise KeyError("bug")
