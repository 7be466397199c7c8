"""The prediction record (adaragct.formats.predictions.Prediction): one writer, lines as the demo wrote them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from adaragct.data.cohort import Volume
from adaragct.errors import DataError
from adaragct.experiments.baselines import copy_record
from adaragct.formats.predictions import FIELDS, Prediction, read_prediction_records
from adaragct.generation import GenerationSettings
from adaragct.generation.predictions import prediction_record

DEMO_PREDICTIONS = Path(__file__).resolve().parents[1] / "viewer" / "data" / "demo_rag_adaptive.jsonl"


def test_a_demo_predictions_file_reads_and_writes_back_byte_for_byte() -> None:
    records = read_prediction_records(DEMO_PREDICTIONS)
    assert len(records) == 8 and all(r.retrieval == "adaptive" for r in records)
    assert "".join(r.to_json() + "\n" for r in records) == DEMO_PREDICTIONS.read_text(encoding="utf-8")


def test_inference_records_keep_the_release_key_order_and_leave_absent_fields_out() -> None:
    output = SimpleNamespace(
        volume_id="valid_1_a_1",
        text="Heart normal. Ünïcode kept.",
        retrieval_count=1,
        retrieval_log=[{"position": 3}],
        token_ids=[5, 6, 7],
        stopped_on_end_token=True,
    )
    settings = GenerationSettings(top_k=3)
    plain = prediction_record(output, "ref", settings, "adaptive")
    assert list(json.loads(plain.to_json())) == [
        "image",
        "generated_text",
        "reference_text",
        "task_type",
        "retrieval",
        "retrieval_count",
        "retrieval_log",
        "num_generated_tokens",
        "stopped_on_end_token",
        "decoding",
    ]
    assert "Ünïcode" in plain.to_json() and json.loads(plain.to_json())["task_type"] == "report_generation"
    with_context = prediction_record(output, "ref", settings, "adaptive", global_context=[])
    assert json.loads(with_context.to_json())["global_context"] == []


def test_copy_records_keep_a_null_score_beside_their_source() -> None:
    query, source = Volume("valid_1_a_1", "ref", {}), Volume("train_2_a_1", "copied", {})
    row = json.loads(copy_record(query, source, "random", None).to_json())
    assert list(row)[-2:] == ["source_image", "source_score"] and row["source_score"] is None
    assert "num_generated_tokens" not in row and row["retrieval_log"] == []


def test_a_record_with_an_unknown_or_missing_field_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"image": "a", "generated_text": "x", "reference_text": "y", "extra": 1}) + "\n"
    )
    with pytest.raises(
        DataError, match=r"p\.jsonl: record 1 field 'extra': is not a field of a prediction record"
    ):
        read_prediction_records(path)
    path.write_text(json.dumps({"image": "a", "generated_text": "x"}) + "\n")
    with pytest.raises(DataError, match=r"record 1 field 'reference_text': missing"):
        read_prediction_records(path)
    path.write_text(json.dumps({"image": "a", "generated_text": 3, "reference_text": "y"}) + "\n")
    with pytest.raises(DataError, match=r"record 1 field 'generated_text': is a int, not text"):
        read_prediction_records(path)
    assert FIELDS[:3] == ("image", "generated_text", "reference_text")
    assert (
        Prediction("a", "x", "y").to_json() == '{"image": "a", "generated_text": "x", "reference_text": "y"}'
    )
