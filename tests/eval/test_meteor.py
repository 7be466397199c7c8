"""METEOR through the real Java scorer: pycocoevalcap's numbers on ordinary reports, and on hostile text a score or
an honest "unavailable" with its reason, never a hang and never a Java process left behind (issue 24)."""

from __future__ import annotations

import shutil
import time

import pytest

from adaragct.eval.meteor import (
    MeteorUnavailable,
    compute_meteor,
    meteor_scores,
    protocol_text,
    score_request,
)
from adaragct.eval.text_metrics import normalize_text

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java on PATH"),
    pytest.mark.timeout(600),  # a hang, as before issue 24, fails instead of blocking the run
]


def test_same_numbers_as_pycocoevalcap_on_real_reports(manual_labels) -> None:
    from pycocoevalcap.meteor.meteor import Meteor

    refs = [normalize_text(t) for t in manual_labels["report_text"].iloc[:40]]
    preds = [refs[(i + 3) % len(refs)] for i in range(len(refs))]
    preds[0], preds[1] = normalize_text(""), refs[1]  # an empty prediction (" ") and a perfect one
    preds[2] = "no   effusion |||  the heart is normal"  # pycocoevalcap's own edits of the hypothesis
    assert all(protocol_text(r) == r for r in refs)  # ordinary reports pass the protocol unchanged
    coco = Meteor()
    try:
        expected, expected_segments = coco.compute_score(
            {i: [r] for i, r in enumerate(refs)}, {i: [p] for i, p in enumerate(preds)}
        )
    finally:
        del coco
    assert meteor_scores(preds, refs) == (expected, expected_segments)  # bit for bit, corpus and per pair
    assert 0.05 < expected < 0.9


def test_protocol_text_keeps_one_line_without_separator() -> None:
    hostile = "Findings: lungs clear.\nImpression:\r normal.\x00|||\u2028end \ud800\udfff\x85"
    clean = protocol_text(hostile)
    assert clean == "Findings: lungs clear. Impression:  normal.  end \ufffd\ufffd "
    clean.encode("utf-8")  # no lone surrogate left
    assert score_request("a  b|||c", "x|||y") == "SCORE ||| xy ||| a bc"  # pycocoevalcap's line for this pair


def test_hostile_text_is_scored_as_its_clean_twin_without_hanging(java_children) -> None:
    # each of these hung cal_metrics for ever before issue 24 (traceback, then Meteor.__del__ waiting on its lock)
    hostile = [
        "findings: lungs clear.\nimpression: normal.",
        "\ud800 lungs are clear",
        "heart normal\x00 ||| size",
        "no\r\neffusion",
    ]
    refs = ["lungs are clear.\nnormal.", "lungs are clear", "heart size normal", "no effusion |||"]
    twins = [protocol_text(t) for t in hostile]
    twin_refs = [protocol_text(t) for t in refs]
    start = time.monotonic()
    score, segments = meteor_scores([*hostile, *twins], [*refs, *twin_refs])  # one JVM for both halves
    assert segments[:4] == segments[4:] and all(0 < x <= 1 for x in segments)
    assert 0 < score <= 1 and time.monotonic() - start < 120
    assert java_children() == []


def test_a_stalled_scorer_is_killed_and_reported(java_children) -> None:
    # the first answer needs the JVM started and the paraphrase table loaded: never within 50 ms
    start = time.monotonic()
    with pytest.raises(MeteorUnavailable, match=r"gave no answer within 0.05 s at pair 1 of 2"):
        compute_meteor(["a b", "c"], ["a b", "d"], timeout_s=0.05)
    assert time.monotonic() - start < 10
    assert java_children() == []


@pytest.mark.slow
def test_java_dying_on_a_5mb_report_is_reported_with_its_reason(java_children) -> None:
    # Java runs out of heap (-Xmx2G, pycocoevalcap's setting) on one 5 MB report: before issue 24, a hang
    start = time.monotonic()
    with pytest.raises(
        MeteorUnavailable, match=r"stopped at pair 1 of 1 \(exit code 1\): .*OutOfMemoryError"
    ):
        compute_meteor(["lung " * 1_000_000], ["lungs are clear"], timeout_s=600)
    print(f"\nJava gave up after {time.monotonic() - start:.0f} s")
    assert java_children() == []
