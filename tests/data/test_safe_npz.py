"""NPZ files with object arrays, as the release writes them: plain values load, nothing else is unpickled."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adaragct.errors import DataError
from adaragct.formats.embeddings import read_embeddings_npz
from adaragct.formats.safe_npz import open_npz
from adaragct.formats.sentence_db import read_sentence_embeddings


class _WritesMarker:
    """Unpickling this runs a shell command that creates ``marker`` (what a crafted release file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Custom:
    """A harmless class of this test module: still not a plain value."""

    def __init__(self) -> None:
        self.value = 1


def test_object_id_arrays_load_as_plain_str_and_number_arrays(tmp_path: Path) -> None:
    path = tmp_path / "ids.npz"
    np.savez(
        path,
        sample_ids=np.array(["valid_1_a_1.nii.gz", "valid_2_a_1.nii.gz"], dtype=object),
        ints=np.array([3, 1, 2], dtype=object),
        mixed_numbers=np.array([1, 2.5], dtype=object),
        numpy_scalars=np.array([np.str_("a"), np.int64(4)], dtype=object),
        grid=np.array([["a", "b"], ["c", "d"]], dtype=object),
        floats=np.arange(4, dtype=np.float32),
    )
    with open_npz(path, "unused") as npz:
        assert sorted(npz.files) == ["floats", "grid", "ints", "mixed_numbers", "numpy_scalars", "sample_ids"]
        ids = npz["sample_ids"]
        assert ids.dtype.kind == "U" and ids.tolist() == ["valid_1_a_1.nii.gz", "valid_2_a_1.nii.gz"]
        assert npz["ints"].dtype == np.int64 and npz["ints"].tolist() == [3, 1, 2]
        assert npz["mixed_numbers"].dtype == np.float64 and npz["mixed_numbers"].tolist() == [1.0, 2.5]
        assert npz["numpy_scalars"].tolist() == ["a", "4"]  # a str among them: all read as str
        assert npz["grid"].shape == (2, 2) and npz["grid"][1, 0] == "c"
        assert npz["floats"].dtype == np.float32 and npz["floats"].tolist() == [0, 1, 2, 3]


def test_readers_take_the_release_object_id_arrays(tmp_path: Path) -> None:
    organs = tmp_path / "valid_embeds.npz"
    lung = np.random.default_rng(0).normal(size=(2, 256)).astype(np.float32)
    np.savez(
        organs, sample_ids=np.array(["valid_2_a_1.nii.gz", "valid_1_a_1.nii.gz"], dtype=object), lung=lung
    )
    emb = read_embeddings_npz(organs, ["lung"], dim=256)
    assert emb.ids == ("valid_2_a_1", "valid_1_a_1")
    np.testing.assert_array_equal(emb.rows("lung", ["valid_1_a_1"])[0], lung[1])
    sentences = tmp_path / "train_sentence_embeds.npz"
    np.savez(
        sentences, embeddings=np.eye(3, dtype=np.float32), sentence_ids=np.array([0, 1, 2], dtype=object)
    )
    ids, vectors = read_sentence_embeddings(sentences, dim=3)
    assert ids == ["0", "1", "2"] and vectors.dtype == np.float32


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.npz"
    np.savez(
        path,
        embeddings=np.eye(2, dtype=np.float32),
        sentence_ids=np.array(["0", _WritesMarker(marker)], dtype=object),
    )
    with pytest.raises(DataError) as err:
        read_sentence_embeddings(path)
    assert err.value.path == str(path) and err.value.field == "array 'sentence_ids'"
    assert "names posix.system, which is refused" in str(err.value) and err.value.fix
    assert not marker.exists(), "the crafted pickle ran"
    # the same file through plain pickle (the release's allow_pickle=True) does run it: the test can fail
    with np.load(path, allow_pickle=True) as npz:
        npz["sentence_ids"]
    assert marker.exists()


def test_other_classes_and_non_plain_elements_are_refused(tmp_path: Path) -> None:
    cases = {
        "custom": (np.array([_Custom()], dtype=object), "names tests.data.test_safe_npz._Custom"),
        "none": (np.array(["a", None], dtype=object), "element 1 is a NoneType"),
        "bytes": (np.array([b"a"], dtype=object), "element 0 is a bytes"),
        "nested": (np.array([["a"], "b"], dtype=object), "element 0 is a list"),
        "bool": (np.array([True], dtype=object), "element 0 is a bool"),
    }
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, (v, _) in cases.items()})
    with open_npz(path, "unused") as npz:
        for key, (_, problem) in cases.items():
            with pytest.raises(DataError, match=f"array '{key}'") as err:
                npz[key]
            assert problem in str(err.value) and str(path) in str(err.value), key


def _npz_with_member(path: Path, name: str, header_dtype: str, payload: bytes) -> Path:
    buffer = io.BytesIO()
    header = {"descr": header_dtype, "fortran_order": False, "shape": (2,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}.npy", buffer.getvalue() + payload)
    return path


def test_a_pickle_that_is_not_the_declared_object_array_is_refused(tmp_path: Path) -> None:
    import pickle

    path = _npz_with_member(tmp_path / "dict.npz", "sample_ids", "|O", pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match="array 'sample_ids': its pickle holds a dict"):
        read_embeddings_npz(path, [])
    wrong_shape = pickle.dumps(np.array(["a", "b", "c"], dtype=object))
    path = _npz_with_member(tmp_path / "shape.npz", "sample_ids", "|O", wrong_shape)
    with pytest.raises(DataError, match=r"not the object array of shape \(2,\) it declares"):
        read_embeddings_npz(path, [])
    truncated = pickle.dumps(np.array(["a", "b"], dtype=object))[:-5]
    path = _npz_with_member(tmp_path / "cut.npz", "sample_ids", "|O", truncated)
    with pytest.raises(DataError, match=r"array 'sample_ids': not a readable \.npy member"):
        read_embeddings_npz(path, [])


def test_missing_and_non_zip_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file: does not exist"):
        open_npz(tmp_path / "none.npz", "run prepare")
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(b"\x80\x04N.")  # a bare pickle, which np.load(allow_pickle=True) would unpickle
    with pytest.raises(DataError, match="not a readable NPZ"):
        open_npz(pickled, "unused")
