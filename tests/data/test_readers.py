"""Readers of CT-RATE, the AdaRAG-CT bundle and VLM3D: the good path and each kind of bad input (issue 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from adaragct.formats.contexts import context_key, read_contexts
from adaragct.formats.embeddings import VISD_BOOST_KEYS, align_volumes, read_embeddings_npz
from adaragct.formats.neighbours import read_image_neighbours
from adaragct.formats.organ_reports import read_organ_reports_json
from adaragct.formats.sentence_db import read_sentence_database, read_sentence_embeddings
from adaragct.formats.tables import read_labels_csv, read_reports_csv
from adaragct.formats.vlm3d import read_vlm3d_reports, strip_section_headers


def _reports(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    pd.DataFrame(
        [
            {
                "VolumeName": v,
                "ClinicalInformation_EN": "",
                "Technique_EN": "",
                "Findings_EN": f,
                "Impressions_EN": i,
            }
            for v, f, i in rows
        ]
    ).to_csv(path, index=False)
    return path


def _labels(path: Path, ids: list[str], value: object = 0) -> Path:
    frame = pd.DataFrame({"VolumeName": ids, **{f: [value] * len(ids) for f in FINDINGS}})
    frame.to_csv(path, index=False)
    return path


def test_reports_csv_builds_reference_and_normalises_ids(tmp_path: Path) -> None:
    path = _reports(
        tmp_path / "r.csv",
        [("train_1_a_1.nii.gz", " Heart normal. ", " No effusion. "), ("train_1_a_2", "Lungs clear.", "")],
    )
    reports = read_reports_csv(path)
    assert list(reports.index) == ["train_1_a_1", "train_1_a_2"]
    assert reports.loc["train_1_a_1", "report"] == "Heart normal. No effusion."
    assert reports.loc["train_1_a_2", "report"] == "Lungs clear."


def test_reports_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    pd.DataFrame({"VolumeName": ["a"], "Findings_EN": ["x"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"r\.csv: column 'Impressions_EN': missing"):
        read_reports_csv(path)


def test_reports_csv_empty_report_dropped_or_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _reports(tmp_path / "r.csv", [("train_1_a_1", "A.", "B."), ("train_2_a_1", " ", "")])
    with pytest.raises(DataError, match="line 3: 1 rows with an empty id or report"):
        read_reports_csv(path, drop_empty=False)
    assert list(read_reports_csv(path).index) == ["train_1_a_1"]
    assert "dropped 1 rows" in caplog.text


def test_reports_csv_duplicate_id(tmp_path: Path) -> None:
    path = _reports(tmp_path / "r.csv", [("train_1_a_1.nii.gz", "A.", "B."), ("train_1_a_1", "C.", "D.")])
    with pytest.raises(DataError, match="duplicate volume ids, first: 'train_1_a_1'"):
        read_reports_csv(path)


def test_labels_csv_coerces_floats_and_keeps_order(tmp_path: Path) -> None:
    path = _labels(tmp_path / "l.csv", ["valid_1_a_1.nii.gz"], "1.0")
    labels = read_labels_csv(path)
    assert list(labels.columns) == list(FINDINGS)
    assert labels.to_numpy().dtype == np.int8 and labels.to_numpy().sum() == 18


@pytest.mark.parametrize("bad", ["2", "yes", "", "0.5"])
def test_labels_not_binary(tmp_path: Path, bad: str) -> None:
    path = _labels(tmp_path / "l.csv", ["v_1_a_1", "v_2_a_1"])
    frame = pd.read_csv(path, dtype=str)
    frame.loc[1, "Cardiomegaly"] = bad
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'Cardiomegaly' line 3: value .* is not 0/1"):
        read_labels_csv(path)


def test_labels_missing_finding_column(tmp_path: Path) -> None:
    path = _labels(tmp_path / "l.csv", ["v_1_a_1"])
    pd.read_csv(path).drop(columns=["Emphysema"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'Emphysema': missing"):
        read_labels_csv(path)


def test_vlm3d_fixture(shared_data: Path) -> None:
    folder = shared_data / "vlm3d_reportgen_example"
    reports = read_vlm3d_reports(folder / "ground_truth.json")
    labels = read_labels_csv(folder / "ground_truth.csv")
    assert len(reports) == 10 and len(set(reports.values())) == 5
    assert set(reports) == set(labels.index)
    text = strip_section_headers(next(iter(reports.values())))
    assert not text.lower().startswith("findings") and "impression:" not in text.lower()


def test_vlm3d_duplicate_and_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "sub.json"
    path.write_text(
        json.dumps(
            {
                "generated_reports": [
                    {"input_image_name": "a.nii.gz", "report": "x"},
                    {"input_image_name": "a", "report": "y"},
                ]
            }
        )
    )
    with pytest.raises(DataError, match=r"generated_reports\[1\]\.input_image_name: duplicate volume id 'a'"):
        read_vlm3d_reports(path)
    path.write_text(json.dumps({"generated_reports": [{"input_image_name": "a"}]}))
    with pytest.raises(DataError, match=r"generated_reports\[0\]\.report: missing"):
        read_vlm3d_reports(path)


def _npz(path: Path, ids: list[str], **arrays: np.ndarray) -> Path:
    np.savez(path, sample_ids=np.array(ids), **arrays)
    return path


def test_embeddings_both_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clip = _npz(tmp_path / "c.npz", ["v_1_a_1", "v_2_a_1"], ct_clip_max=rng.normal(size=(2, 512)))
    visd = _npz(
        tmp_path / "o.npz",
        ["v_2_a_1.nii.gz", "v_1_a_1.nii.gz"],
        **{k: rng.normal(size=(2, 256)) for k in VISD_BOOST_KEYS},
    )
    whole = read_embeddings_npz(clip, ["ct_clip_max"], dim=512)
    organs = read_embeddings_npz(visd, VISD_BOOST_KEYS, dim=256)
    assert organs.ids == ("v_2_a_1", "v_1_a_1")
    assert whole.arrays["ct_clip_max"].dtype == np.float32
    np.testing.assert_array_equal(organs.rows("lung", ["v_1_a_1"])[0], organs.arrays["lung"][1])


def test_embeddings_dim_mismatch_nan_and_missing_key(tmp_path: Path) -> None:
    ids = ["v_1_a_1", "v_2_a_1"]
    with pytest.raises(DataError, match="array 'ct_clip_max': dimension 256, expected 512"):
        read_embeddings_npz(
            _npz(tmp_path / "a.npz", ids, ct_clip_max=np.zeros((2, 256))), ["ct_clip_max"], 512
        )
    bad = np.zeros((2, 512))
    bad[1, 3] = np.nan
    with pytest.raises(DataError, match="1 rows contain NaN/inf, first volume v_2_a_1"):
        read_embeddings_npz(_npz(tmp_path / "b.npz", ids, ct_clip_max=bad), ["ct_clip_max"], 512)
    with pytest.raises(DataError, match="array 'ct_clip_avg': missing"):
        read_embeddings_npz(_npz(tmp_path / "c.npz", ids, ct_clip_max=np.zeros((2, 512))), ["ct_clip_avg"])
    with pytest.raises(DataError, match="duplicate volume id 'v_1_a_1'"):
        read_embeddings_npz(
            _npz(tmp_path / "d.npz", ["v_1_a_1", "v_1_a_1.nii.gz"], x=np.zeros((2, 4))), ["x"]
        )


def test_truncated_npz(tmp_path: Path) -> None:
    path = _npz(tmp_path / "t.npz", ["v_1_a_1"], ct_clip_max=np.zeros((1, 512)))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable NPZ"):
        read_embeddings_npz(path, ["ct_clip_max"])


def test_volume_without_embedding_error_or_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emb = read_embeddings_npz(_npz(tmp_path / "e.npz", ["v_1_a_1"], x=np.ones((1, 4))), ["x"])
    with pytest.raises(DataError, match="1 volumes have a report but no embedding, first: \\['v_2_a_1'\\]"):
        align_volumes(["v_1_a_1", "v_2_a_1"], [emb])
    assert align_volumes(["v_1_a_1", "v_2_a_1"], [emb], missing="skip") == ["v_1_a_1"]
    assert "skipped 1 volumes" in caplog.text


def test_organ_reports_json(tmp_path: Path) -> None:
    entry = {
        "image": "valid_1_a_1.nii.gz",
        "raw_report": "Heart normal.",
        "id": 0,
        "organ_reports": {"lung": "", "heart": "Heart normal.", "esophagus": "", "aorta": "", "other": ""},
    }
    path = tmp_path / "o.json"
    path.write_text(json.dumps([entry]))
    assert read_organ_reports_json(path)["valid_1_a_1"]["organ_reports"]["heart"] == "Heart normal."
    del entry["organ_reports"]["aorta"]
    path.write_text(json.dumps([entry]))
    with pytest.raises(DataError, match=r"\[0\]\.organ_reports\.aorta: missing"):
        read_organ_reports_json(path)
    path.write_text('[{"image": "x",')
    with pytest.raises(DataError, match=r"line 1 column .*malformed JSON"):
        read_organ_reports_json(path)


def test_contexts_single_object_and_true_jsonl(tmp_path: Path) -> None:
    entries = [
        {"query_sentence": {"text": " The heart is normal. "}, "retrieved": [{"text": "a"}, {"text": "b"}]}
    ]
    single = tmp_path / "oracle_context_top3.jsonl"
    single.write_text(json.dumps({"train_1_a_1.nii.gz": entries}))
    lines = tmp_path / "true.jsonl"
    lines.write_text(json.dumps({"sample_id": "train_1_a_1", "contexts": entries}) + "\n")
    for path in (single, lines):
        ctx = read_contexts(path)
        assert ctx["train_1_a_1"][context_key("the heart is normal")] == ["a", "b"]
    lines.write_text(json.dumps({"sample_id": "a", "contexts": entries}) + "\n{broken\n")
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        read_contexts(lines)


def test_sentence_database_and_embeddings(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    db.write_text(
        json.dumps(
            {
                "train_1_a_1.nii.gz": [
                    {"sentence_id": "0", "text": "Heart normal.", "organs": ["heart"], "normal": True},
                    {"sentence_id": "1", "text": "Nodule in the lung.", "organs": ["lung"], "normal": False},
                ]
            }
        )
    )
    records = read_sentence_database(db)
    assert [(r.volume_id, r.organs, r.normal) for r in records] == [
        ("train_1_a_1", ("heart",), True),
        ("train_1_a_1", ("lung",), False),
    ]
    emb = tmp_path / "e.npz"
    np.savez(emb, embeddings=np.ones((2, 8), np.float32), sentence_ids=np.array(["0", "1"]))
    ids, mat = read_sentence_embeddings(emb, dim=8)
    assert ids == ["0", "1"] and mat.shape == (2, 8)
    with pytest.raises(DataError, match="dimension 8, expected 256"):
        read_sentence_embeddings(emb, dim=256)
    db.write_text(
        json.dumps({"t_1_a_1": [{"sentence_id": "0", "text": "x", "organs": ["liver"], "normal": 1}]})
    )
    with pytest.raises(DataError, match=r"t_1_a_1\[0\]\.organs: unknown organs \['liver'\]"):
        read_sentence_database(db)


def test_image_neighbours(tmp_path: Path) -> None:
    path = tmp_path / "img2img_top20.json"
    path.write_text(json.dumps({"valid_1_a_1": {"lung": [{"image_id": "train_2_a_1.nii.gz"}]}}))
    assert read_image_neighbours(path) == {"valid_1_a_1": {"lung": ["train_2_a_1"]}}
    path.write_text(json.dumps({"valid_1_a_1": {"lung": [{"id": "x"}]}}))
    with pytest.raises(DataError, match=r"valid_1_a_1\.lung\.image_id: missing"):
        read_image_neighbours(path)


def test_built_index_files_are_named_after_the_count_they_hold(tmp_path: Path) -> None:
    """The index stage names what it builds after contexts.top_k (contexts) and neighbours.k (neighbours: an
    img2img_top20.json always held 20 before, whatever it held); readers without a ledger look for the configured
    (release layout) context name and the one neighbours file there is."""
    from adaragct.data.index_files import built_path

    data = {
        "retrieval_dir": str(tmp_path / "retrieval"),
        "oracle_contexts": str(tmp_path / "oracle" / "oracle_context_top3.jsonl"),
        "retrieved_contexts": str(tmp_path / "retrieval" / "retrieval_context_top3.jsonl"),
    }
    assert built_path(data, "oracle_contexts", 5) == tmp_path / "oracle" / "oracle_context_top5.jsonl"
    assert (
        built_path(data, "retrieved_contexts", 1) == tmp_path / "retrieval" / "retrieval_context_top1.jsonl"
    )
    assert built_path(data, "retrieved_contexts") == Path(data["retrieved_contexts"])
    assert built_path(data, "neighbours", 5).name == "img2img_top5.json"
    assert built_path(data, "neighbours").name == "img2img_top20.json"  # nothing there: the release's name
    (tmp_path / "retrieval").mkdir()
    (tmp_path / "retrieval" / "img2img_top7.json").write_text("{}")
    assert built_path(data, "neighbours").name == "img2img_top7.json"
    (tmp_path / "retrieval" / "img2img_top9.json").write_text("{}")
    with pytest.raises(DataError, match="2 neighbour files and no index ledger"):
        built_path(data, "neighbours")
