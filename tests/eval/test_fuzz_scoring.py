"""Fuzzing what scoring reads (issue 24): whatever a predictions JSONL, a VLM3D JSON or a labels CSV holds (any
unicode, lone surrogates and control characters included, any size, wrong types, broken bytes), reading and scoring
it gives a result or a DataError, within a time limit, and leaves the file as it was (bytes and mtime).

The default run is derandomised (CI sees the same examples every time) at 200 examples per property, ~30 s on 2
busy cores; the ``slow`` variants search 3000 random examples each (``pytest -m slow tests/eval/test_fuzz_scoring.py``,
~8 min). METEOR goes through the real Java scorer, a JVM start per example, so it has its own counts: 3 (plus every
hostile text in one explicit example) and 40.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from adaragct.eval.meteor import MeteorUnavailable, meteor_scores
from adaragct.eval.runner import EvalOptions, run_evaluation
from adaragct.eval.text_metrics import compute_text_metrics
from adaragct.formats.predictions import attach_references, read_predictions
from adaragct.formats.tables import read_labels_csv
from adaragct.ids import normalize_volume_id

EXAMPLE_SECONDS = (
    30  # one example (read, or read and score without METEOR) on 2 busy cores; far more than needed
)
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
FAST = settings(max_examples=200, derandomize=True, database=None, **_COMMON)
SLOW = settings(max_examples=3000, **_COMMON)
JAVA_FAST = settings(max_examples=3, derandomize=True, database=None, **_COMMON)
JAVA_SLOW = settings(max_examples=40, **_COMMON)

# ---- strategies
HOSTILE = [
    "Findings: lungs clear.\nImpression: normal.",
    "\ud800",
    "a\x00b",
    "x ||| y",
    "\r\n\t\x0b\x0c\x1c\x85\u2028\u2029",
    "\ufeffbom",
    "",
    "   ",
    "🫁 emoji 肺",
    '"quoted", comma',
]
TEXT = st.text(st.characters(exclude_categories=()), max_size=60)  # every category, surrogates (Cs) included
REPORT = st.one_of(
    TEXT,
    st.sampled_from(HOSTILE),
    st.builds(lambda piece, times: piece * times, TEXT, st.integers(1, 3000)),  # long reports, cheaply
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON_VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)
FIELD = st.one_of(
    st.sampled_from(
        ["image", "volume_id", "id", "generated_text", "prediction", "reference_text", "reference", "report"]
    ),
    TEXT,
)
VOLUME_ID = st.one_of(st.from_regex(r"[a-z]{1,6}_[0-9]{1,4}(\.nii\.gz)?", fullmatch=True), TEXT)
GOOD_RECORD = st.fixed_dictionaries(
    {"image": VOLUME_ID, "generated_text": REPORT, "reference_text": REPORT}, optional={"task_type": TEXT}
)
RECORD = st.one_of(GOOD_RECORD, st.dictionaries(FIELD, st.one_of(REPORT, JSON_VALUE), max_size=4), JSON_VALUE)


def _unique_volumes(records: st.SearchStrategy, key: str) -> st.SearchStrategy:
    return st.lists(records, min_size=1, max_size=5, unique_by=lambda r: normalize_volume_id(str(r[key])))


def _dumps(value: object, ascii_only: bool) -> bytes:
    # ensure_ascii=False writes lone surrogates raw: surrogatepass turns them into bytes that are not UTF-8
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _maybe_break(draw, content: bytes) -> bytes:
    """One time in four: cut the file, or put up to 3 arbitrary bytes anywhere."""
    if draw(st.integers(0, 3)):
        return content
    at = draw(st.integers(0, len(content)))
    return content[:at] + draw(st.binary(max_size=3)) + content[at + draw(st.integers(0, 2)) :]


@st.composite
def jsonl_files(draw) -> bytes:
    """Mostly well-formed predictions (so that scoring runs), else any JSON values per line; sometimes broken."""
    rows = draw(st.one_of(_unique_volumes(GOOD_RECORD, "image"), st.lists(RECORD, max_size=6)))
    ascii_only = draw(st.booleans())
    content = b"".join(_dumps(r, ascii_only) + draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"])) for r in rows)
    return _maybe_break(draw, content)


@st.composite
def vlm3d_files(draw) -> bytes:
    good = st.fixed_dictionaries({"input_image_name": VOLUME_ID, "report": REPORT})
    anything = st.one_of(
        st.fixed_dictionaries({"input_image_name": JSON_VALUE, "report": st.one_of(REPORT, JSON_VALUE)}),
        JSON_VALUE,
    )
    reports = st.one_of(_unique_volumes(good, "input_image_name"), st.lists(anything, max_size=4), JSON_VALUE)
    doc = {
        "name": draw(TEXT),
        "type": "report_generation",
        "generated_reports": draw(reports),
        "version": "1",
    }
    return _maybe_break(draw, _dumps(doc, draw(st.booleans())))


CELL = st.one_of(
    st.sampled_from(["0", "1", "0.0", "1.0"]), st.sampled_from([" 1 ", "", "2", "-1", "nan"]), TEXT
)


@st.composite
def labels_csv_files(draw) -> bytes:
    header = [draw(st.sampled_from(["AccessionNo", "VolumeName"])), *FINDINGS]
    if not draw(st.integers(0, 3)):  # columns renamed, shuffled, some missing
        header = draw(st.permutations([draw(st.sampled_from(["id", ""])), *header[1:]]))
        header = header[: draw(st.integers(0, len(header)))]
    ids = draw(st.lists(VOLUME_ID, max_size=5))
    cells = (
        st.one_of(st.sampled_from(["0", "1"]), CELL) if draw(st.booleans()) else st.sampled_from(["0", "1"])
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    width = max(len(header) - 1, 0)  # cells after the id
    writer.writerows([vid, *draw(st.lists(cells, min_size=width, max_size=width))] for vid in ids)
    return _maybe_break(draw, buffer.getvalue().encode("utf-8", "surrogatepass"))


# ---- the property: a result or a DataError, in time, the input untouched


def result_or_data_error(
    content: bytes, name: str, use: Callable[[Path, Path], object]
) -> object | DataError:
    """Write ``content`` to a fresh file and call ``use(file, folder)``; returns its result or the DataError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        start = time.monotonic()
        try:
            outcome = use(path, Path(folder))
            event(f"result: {type(outcome).__name__}")
        except DataError as err:
            outcome = err
            event(f"DataError: {err.problem[:30]}")
            assert err.path and err.field and err.fix
        assert time.monotonic() - start < EXAMPLE_SECONDS
        assert path.read_bytes() == content and path.stat().st_mtime_ns == 1_000_000_000
    return outcome


def _no_constant(name: str) -> None:
    raise AssertionError(f"metrics JSON holds {name}, which is not JSON")


def _score_jsonl(path: Path, folder: Path) -> object:
    preds = read_predictions(path)
    assert all(isinstance(t, str) for t in preds.predictions) and len(preds.ids) == len(set(preds.ids))
    if preds.references is None:
        return preds
    return _evaluate(path, folder, references=None)


def _score_vlm3d(path: Path, folder: Path) -> object:
    preds = attach_references(read_predictions(path), path)  # a VLM3D file is its own ground truth
    assert preds.references == preds.predictions
    return _evaluate(path, folder, references=path)


def _evaluate(path: Path, folder: Path, references: Path | None) -> dict:
    metrics = run_evaluation(EvalOptions(path, folder / "m.json", references=references, meteor=False))
    written = json.loads((folder / "m.json").read_text(encoding="utf-8"), parse_constant=_no_constant)
    assert written["num_samples"] == metrics["num_samples"] > 0
    return metrics


def _read_labels(path: Path, folder: Path) -> object:
    frame = read_labels_csv(path)
    assert list(frame.columns) == list(FINDINGS) and set(frame.to_numpy().ravel()) <= {0, 1}
    return frame


def check_text_metrics(pairs: list[tuple[str, str]]) -> None:
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    start = time.monotonic()
    out = compute_text_metrics(preds, refs, with_meteor=False)
    assert time.monotonic() - start < EXAMPLE_SECONDS
    for value in (*out.bleu, out.rouge_l, out.bleu_sacre):
        assert 0.0 <= value <= 1.0 + 1e-9
    assert math.isfinite(out.cider) and out.cider >= 0


def check_meteor(pairs: list[tuple[str, str]], java_children: Callable[[], list[int]]) -> None:
    start = time.monotonic()
    try:
        score, segments = meteor_scores([p for p, _ in pairs], [r for _, r in pairs], timeout_s=120)
    except MeteorUnavailable as err:
        event(f"METEOR unavailable: {str(err)[:40]}")
        assert str(err)  # a reason, never a hang
    else:
        event("METEOR scored")
        assert 0.0 <= score <= 1.0 and len(segments) == len(pairs)
    assert time.monotonic() - start < 300 and java_children() == []


PAIRS = st.lists(st.tuples(REPORT, REPORT), min_size=1, max_size=5)
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")


# ---- default run: small counts, same examples every time


@FAST
@given(jsonl_files())
def test_predictions_jsonl_scores_or_data_error(content: bytes) -> None:
    result_or_data_error(content, "pred.jsonl", _score_jsonl)


@FAST
@given(vlm3d_files())
def test_vlm3d_json_scores_or_data_error(content: bytes) -> None:
    result_or_data_error(content, "submission.json", _score_vlm3d)


@FAST
@given(st.one_of(labels_csv_files(), labels_csv_files(), st.binary(max_size=200)))
def test_labels_csv_reads_or_data_error(content: bytes) -> None:
    result_or_data_error(content, "labels.csv", _read_labels)


@FAST
@given(PAIRS)
def test_text_metrics_score_any_text(pairs: list[tuple[str, str]]) -> None:
    check_text_metrics(pairs)


@needs_java
@pytest.mark.timeout(600)
@JAVA_FAST
@given(PAIRS)
@example(list(zip(HOSTILE, reversed(HOSTILE), strict=True)))  # every hostile text, whatever is drawn
def test_meteor_scores_any_text_or_says_why(java_children, pairs: list[tuple[str, str]]) -> None:
    check_meteor(pairs, java_children)


# ---- slow: many random examples


@pytest.mark.slow
@SLOW
@given(jsonl_files())
def test_predictions_jsonl_scores_or_data_error_many(content: bytes) -> None:
    result_or_data_error(content, "pred.jsonl", _score_jsonl)


@pytest.mark.slow
@SLOW
@given(vlm3d_files())
def test_vlm3d_json_scores_or_data_error_many(content: bytes) -> None:
    result_or_data_error(content, "submission.json", _score_vlm3d)


@pytest.mark.slow
@SLOW
@given(st.one_of(labels_csv_files(), labels_csv_files(), st.binary(max_size=2000)))
def test_labels_csv_reads_or_data_error_many(content: bytes) -> None:
    result_or_data_error(content, "labels.csv", _read_labels)


@pytest.mark.slow
@SLOW
@given(PAIRS)
def test_text_metrics_score_any_text_many(pairs: list[tuple[str, str]]) -> None:
    check_text_metrics(pairs)


@needs_java
@pytest.mark.slow
@pytest.mark.timeout(3600)
@JAVA_SLOW
@given(PAIRS)
def test_meteor_scores_any_text_or_says_why_many(java_children, pairs: list[tuple[str, str]]) -> None:
    check_meteor(pairs, java_children)
