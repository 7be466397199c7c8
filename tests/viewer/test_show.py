"""adaragct-show: the page's data (reports, labels, traces), its embedding, and its errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from adaragct.apps.show import main
from adaragct.constants import FINDINGS
from adaragct.errors import USER_ERROR_EXIT
from adaragct.eval.labelers import build_labeler
from adaragct.formats.tables import read_labels_csv
from tests.viewer.conftest import write_records

DATA_RE = re.compile(r'<script type="application/json" id="view-data">(.*?)</script>', re.DOTALL)


def page_data(html: Path) -> dict:
    """The document the page embeds (what its script parses)."""
    found = DATA_RE.findall(html.read_text(encoding="utf-8"))
    assert len(found) == 1, "the data is embedded exactly once"
    return json.loads(found[0], parse_constant=_not_json)  # as strict as the browser's JSON.parse


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON: the page's JSON.parse would fail")


@pytest.fixture(scope="module")
def page(tmp_path_factory, predictions, labels_csv) -> Path:
    out = tmp_path_factory.mktemp("view") / "view.html"
    metrics = out.parent / "metrics.json"
    scores = {
        "num_samples": 8,
        "report_generation/clinical_f1": 0.25,
        "report_generation/meteor": float("nan"),
    }
    metrics.write_text(json.dumps(scores))  # NaN: Python writes it, JSON has no such value
    args = [
        str(predictions),
        "--labels-csv",
        str(labels_csv),
        "--metrics",
        str(metrics),
        "--output",
        str(out),
    ]
    assert main(args) == 0
    return out


def test_the_page_holds_every_volume_with_its_trace_and_labels(page, records, labels_csv) -> None:
    doc = page_data(page)
    assert [v["id"] for v in doc["volumes"]] == [r["image"] for r in records]
    truth = read_labels_csv(labels_csv)
    labeler = build_labeler("rule")
    for volume, record in zip(doc["volumes"], records, strict=True):
        assert (volume["gen"], volume["ref"]) == (record["generated_text"], record["reference_text"])
        assert volume["n"] == record["retrieval_count"]
        gen, ref = labeler.labels([record["generated_text"], record["reference_text"]])
        assert volume["g"] == np.flatnonzero(gen).tolist() and volume["r"] == np.flatnonzero(ref).tolist()
        assert volume["ts"] == "labels_csv"
        assert volume["t"] == np.flatnonzero(truth.loc[record["image"]].to_numpy()).tolist()
        for shown, entry in zip(volume["rets"], record["retrieval_log"], strict=True):
            assert shown["a"] == entry["action"] and shown["o"] == entry["char_offset"]
            sentences = [doc["sentences"][i] for i in shown["ctx"]]
            assert [text for _, text, _ in sentences] == entry.get("context", [])
            assert [sid for sid, _, _ in sentences] == entry.get("sentence_ids", [])
            assert [src for *_, src in sentences] == [
                re.sub(r"_s\d+$", "", s) for s in entry.get("sentence_ids", [])
            ]
            assert shown["sc"] == entry.get("scores", [])
            assert shown.get("draft") == entry.get("draft_accepted")
    assert doc["methods"] == {"recorded": sum(len(r["retrieval_log"]) for r in records)}
    assert any(v["t"] for v in doc["volumes"]) and any(
        r["a"] == "cancelled" for v in doc["volumes"] for r in v["rets"]
    )
    # each retrieved sentence is stored once
    assert len(doc["sentences"]) == len({tuple(row) for row in doc["sentences"]})


def test_the_header_shows_the_run_metrics(page) -> None:
    html = page.read_text(encoding="utf-8")
    assert "report_generation/clinical_f1</td><td>0.2500" in html
    assert "report_generation/meteor</td><td>n/a" in html
    assert "8 volumes" in html and "labels CSV demo_valid_labels.csv" in html


def test_the_page_is_the_same_wherever_the_run_folder_is(tmp_path, predictions, labels_csv) -> None:
    """No absolute path in the page: copied runs give the same bytes (the demo's reproducibility test compares
    two checkouts file by file), and the files it names are found from the page's folder after a copy."""
    pages = []
    for name in ("a", "b"):
        run = tmp_path / name / "outputs" / "run"
        run.mkdir(parents=True)
        labels = shutil.copy(labels_csv, tmp_path / name / "labels.csv")
        pred = shutil.copy(predictions, run / "predictions.jsonl")
        (run / "metrics.json").write_text('{"num_samples": 8}')
        main([str(pred), "--labels-csv", str(labels), "--metrics", str(run / "metrics.json")])
        pages.append((run / "view.html").read_bytes())
    assert pages[0] == pages[1]
    doc = page_data(tmp_path / "a" / "outputs" / "run" / "view.html")
    assert (doc["source"], doc["labels_csv"], doc["metrics"]["path"]) == (
        "predictions.jsonl",
        "../../labels.csv",
        "metrics.json",
    )
    assert doc["title"] == "run/predictions.jsonl"


def test_report_text_cannot_break_out_of_the_page(tmp_path, records) -> None:
    hostile = "</script><script>alert(1)</script><!-- & <b>"
    rows = [{**records[0], "reference_text": hostile}]
    out = tmp_path / "v.html"
    assert main([str(write_records(tmp_path / "p.jsonl", rows)), "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "<script>alert" not in html and html.count("</script>") == 2
    assert page_data(out)["volumes"][0]["ref"] == hostile


def test_without_a_labels_csv_the_reference_is_the_truth(tmp_path, predictions, labels_csv) -> None:
    """As the evaluate stage scores a bare predictions file; a volume missing from a labels CSV does too."""
    partial = tmp_path / "labels.csv"
    lines = labels_csv.read_text().splitlines()
    partial.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # the first volume dropped
    main([str(predictions), "--labels-csv", str(partial), "--output", str(tmp_path / "a.html")])
    doc = page_data(tmp_path / "a.html")
    first, *rest = doc["volumes"]
    assert first["ts"] == "reference" and first["t"] == first["r"] and doc["missing_truth"] == 1
    assert {v["ts"] for v in rest} == {"labels_csv"}
    main([str(predictions), "--output", str(tmp_path / "b.html")])
    assert {v["ts"] for v in page_data(tmp_path / "b.html")["volumes"]} == {"reference"}


def test_the_default_output_is_view_html_beside_the_predictions(tmp_path, predictions, capsys) -> None:
    copy = shutil.copy(predictions, tmp_path / "predictions.jsonl")
    assert main([str(copy)]) == 0
    assert (tmp_path / "view.html").is_file() and "view.html" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{tmp}/missing.jsonl"], "does not exist"),
        (["{pred}", "--labels-csv", "{tmp}/other.csv"], "none of the 8 predicted volumes"),
        (["{pred}", "--tokenizer", "{tmp}/nowhere"], "--tokenizer"),
        (["{pred}", "--output", "{pred}"], "is also an input"),
        (["{tmp}/bad_offset.jsonl"], "record 1 field 'retrieval_log'"),
    ],
    ids=["no-predictions", "labels-of-other-volumes", "no-tokenizer", "output-is-input", "bad-offset"],
)
def test_bad_inputs_are_one_line_errors(tmp_path, predictions, records, capsys, args, says) -> None:
    other = tmp_path / "other.csv"
    other.write_text("VolumeName," + ",".join(FINDINGS) + "\nvalid_999_a_1," + ",".join("0" * 18) + "\n")
    bad = records[0] | {"retrieval_log": [records[0]["retrieval_log"][0] | {"char_offset": 10_000}]}
    write_records(tmp_path / "bad_offset.jsonl", [bad])
    argv = [a.format(tmp=tmp_path, pred=predictions) for a in args]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "v.html")]
    assert main(argv) == USER_ERROR_EXIT
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err
    assert not (tmp_path / "v.html").exists()
