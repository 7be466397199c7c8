"""The claim lines are computed correctly from given numbers; the demo's p-values are those of compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaragct.constants import FINDINGS
from adaragct.eval.compare import compare_predictions
from adaragct.eval.labelers import build_labeler
from adaragct.experiments.demo_report import pvalue_table, results_table
from adaragct.experiments.evidence import check_claims, paired_comparisons


def _row(name: str, f1: float, bleu: float = 0.25, rouge: float = 0.4, ci=None) -> dict:
    metrics = {
        "clinical_f1": f1,
        "clinical_micro_f1": f1,
        "clinical_macro_f1": f1,
        "bleu_4": bleu,
        "rouge_l": rouge,
        "cider": 0.1,
    }
    stage, retrieval = name.split("/")
    return {"name": name, "phase": stage, "retrieval": retrieval, "metrics": metrics, "ci": ci or {}}


def _cmp(diff: float, p: float) -> dict:
    return {"clinical_f1": {"difference": diff, "ci_lower": diff - 0.1, "ci_upper": diff + 0.1, "p_value": p}}


def _table(
    adaptive_f1: float, adaptive_bleu: float, text2text_f1: float, oracle_f1: float, p_adaptive: float
):
    base_ci = {"bleu_4": [0.20, 0.30], "rouge_l": [0.35, 0.45]}
    rows = {
        "copy/random": _row("copy/random", 0.05),
        "copy/nearest_ct": _row("copy/nearest_ct", 0.07),
        "copy/nearest_organs": _row("copy/nearest_organs", 0.12),
        "base/none": _row("base/none", 0.10, ci=base_ci),
        "rag/none": _row("rag/none", 0.15),
        "rag/oracle": _row("rag/oracle", oracle_f1),
        "rag/adaptive": _row("rag/adaptive", adaptive_f1, bleu=adaptive_bleu),
        "rag/text2text": _row("rag/text2text", text2text_f1),
    }
    comparisons = {
        "base/none": {"rag/adaptive": _cmp(adaptive_f1 - 0.10, p_adaptive), "copy/random": _cmp(-0.05, 0.2)},
        "rag/none": {"rag/adaptive": _cmp(adaptive_f1 - 0.15, 0.3)},
    }
    return rows, comparisons


def test_claims_pass_and_fail_on_the_given_numbers() -> None:
    rows, comparisons = _table(0.20, 0.26, 0.16, 0.25, p_adaptive=0.01)
    claims = {c.key: c for c in check_claims(rows, comparisons)}
    assert [c for c in claims] == ["a", "b", "c", "d", "e", "f"]
    # (a) base 0.10 loses to nearest_organs 0.12
    assert claims["a"].status == "FAIL"
    assert claims["a"].detail == (
        "base 0.100 vs copy/random 0.050 (p=0.200), copy/nearest_ct 0.070, copy/nearest_organs 0.120"
    )
    assert claims["b"].status == claims["c"].status == "PENDING"
    assert claims["d"].status == "PASS"
    assert "BLEU-4 0.260 within base's CI [0.200, 0.300]" in claims["d"].detail
    assert claims["e"].status == "PASS"  # gains +0.010 (text2text) < +0.050 (adaptive)
    assert claims["e"].detail == "gain over rag/none 0.150: text2text +0.010, adaptive +0.050 (p=0.300)"
    assert claims["f"].status == "PASS"
    assert claims["f"].line().startswith("(f) PASS: oracle is the upper row")


@pytest.mark.parametrize(
    ("args", "failing"),
    [
        ((0.20, 0.26, 0.16, 0.25, 0.06), "d"),  # p >= 0.05
        ((0.20, 0.19, 0.16, 0.25, 0.01), "d"),  # BLEU-4 below base's lower bound
        ((0.20, 0.26, 0.21, 0.25, 0.01), "e"),  # text2text gains more
        ((0.20, 0.26, 0.16, 0.19, 0.01), "f"),  # adaptive above oracle
    ],
)
def test_each_condition_can_fail(args: tuple, failing: str) -> None:
    rows, comparisons = _table(*args)
    assert {c.key: c.status for c in check_claims(rows, comparisons)}[failing] == "FAIL"


def test_claim_a_needs_paired_p_against_random_and_nearest_ct() -> None:
    rows, comparisons = _table(0.20, 0.26, 0.16, 0.25, 0.01)
    comparisons["base/none"].update(
        {
            "copy/random": _cmp(-0.05, 0.01),
            "copy/nearest_ct": _cmp(-0.03, 0.04),
            "copy/nearest_organs": _cmp(0.02, 0.5),
        }
    )
    claims = {c.key: c for c in check_claims(rows, comparisons)}
    assert claims["a"].status == "PASS"  # nearest_organs (0.12 > base 0.10) is reported, not required
    comparisons["base/none"]["copy/nearest_ct"] = _cmp(-0.03, 0.06)
    assert {c.key: c.status for c in check_claims(rows, comparisons)}["a"] == "FAIL"


def test_a_claim_on_a_model_that_owes_nothing_to_its_volume_is_not_evidence() -> None:
    rows, comparisons = _table(0.20, 0.26, 0.16, 0.25, p_adaptive=0.01)
    for name, lo in (("base/none", 0.05), ("rag/none", 0.04), ("rag/oracle", 0.03), ("rag/text2text", 0.02)):
        rows[name]["ci"]["clinical_f1_owed"] = [lo, lo + 0.1]
    rows["rag/adaptive"]["ci"]["clinical_f1_owed"] = [
        -0.02,
        0.08,
    ]  # adaptive's reports: any patient's labels fit
    claims = {c.key: c for c in check_claims(rows, comparisons)}
    assert claims["d"].status == claims["e"].status == "NOT EVIDENCE"
    assert claims["d"].detail.startswith("rag/adaptive F1 owed [-0.020, +0.080] includes 0")
    assert "(numbers alone: PASS)" in claims["d"].detail
    # (f) is decided by oracle (0.25) against the best other rag row (adaptive 0.20): not evidence either
    assert claims["f"].status == "NOT EVIDENCE"
    rows["rag/text2text"]["metrics"]["clinical_f1"] = (
        0.22  # now text2text, a volume-dependent row, decides (f)
    )
    assert {c.key: c.status for c in check_claims(rows, comparisons)}["f"] == "PASS"


def test_a_missing_row_is_not_applicable() -> None:
    rows, comparisons = _table(0.20, 0.26, 0.16, 0.25, 0.01)
    del rows["rag/text2text"]
    claims = {c.key: c for c in check_claims(rows, comparisons)}
    assert claims["e"].status == "N/A" and "rag/text2text" in claims["e"].detail


def _predictions(path: Path, ids: list[str], texts: list[str], refs: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for vid, text, ref in zip(ids, texts, refs, strict=True):
            handle.write(json.dumps({"image": vid, "generated_text": text, "reference_text": ref}) + "\n")
    return path


def test_paired_comparisons_equal_compare_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = [f"valid_{i}_a_1" for i in range(30)]
    truth = (rng.random((30, len(FINDINGS))) < 0.3).astype(int)
    pd = pytest.importorskip("pandas")
    labels = pd.DataFrame(truth, columns=list(FINDINGS))
    labels.insert(0, "VolumeName", [f"{v}.nii.gz" for v in ids])
    labels.to_csv(tmp_path / "labels.csv", index=False)
    phrases = ["Cardiomegaly is present.", "Pleural effusion is seen.", "No acute findings.", "Emphysema."]
    refs = [" ".join(rng.choice(phrases, 2)) for _ in ids]
    files = {
        name: _predictions(
            tmp_path / f"{i}.jsonl", ids, [" ".join(rng.choice(phrases, 2)) for _ in ids], refs
        )
        for i, name in enumerate(["base/none", "rag/none", "rag/adaptive"])
    }
    out = paired_comparisons(
        files, ["base/none", "rag/none", "absent/row"], tmp_path / "labels.csv", num_resamples=200
    )
    assert set(out) == {"base/none", "rag/none"} and set(out["base/none"]) == {"rag/none", "rag/adaptive"}
    truth_by_id = dict(zip(ids, truth, strict=True))
    direct = compare_predictions(
        files["base/none"], files["rag/adaptive"], truth_by_id, build_labeler("rule"), num_resamples=200
    )
    assert out["base/none"]["rag/adaptive"] == {**direct, "num_resamples": 200}
    rows = [_row("rag/adaptive", 0.2, ci={"clinical_f1": [0.1, 0.3]})]
    table = pvalue_table(rows, out)
    res = direct["clinical_f1"]
    assert f"{res['difference']:+.3f} (p={res['p_value']:.3f})" in table.splitlines()[2]
    assert "0.200 [0.100, 0.300]" in results_table(rows)


def test_volumes_needed_scales_the_standard_error() -> None:
    from adaragct.experiments.evidence import volumes_needed

    # an interval of half-width 1.96*se = 0.05 at 78 volumes just excludes 0 for delta 0.05 at 50% power
    assert volumes_needed(-0.05, 0.05, 78, 0.05, power=0.5) == 78
    # half the difference needs four times the volumes; 80% power needs (1.96+0.84)^2/1.96^2 ~ 2.04x more
    assert volumes_needed(-0.05, 0.05, 78, 0.025, power=0.5) == 312
    assert volumes_needed(-0.05, 0.05, 78, 0.05) == 160
    with pytest.raises(ValueError, match="delta > 0"):
        volumes_needed(0.0, 0.1, 78, 0.0)


def test_a_zero_p_value_is_printed_as_a_bound() -> None:
    from adaragct.experiments.evidence import format_p

    assert (
        format_p(0.0, 1000) == "p<0.002"
        and format_p(0.0132, 1000) == "p=0.013"
        and format_p(0.0, None) == "p=0.000"
    )


@pytest.mark.parametrize(
    ("whole_diff", "whole_p", "large_diff", "large_p", "expected"),
    [
        (-0.08, 0.01, 0.01, 0.60, {"b": "PASS", "c": "PASS"}),  # bottleneck shown, size no gain
        (
            -0.08,
            0.20,
            0.06,
            0.01,
            {"b": "FAIL", "c": "FAIL"},
        ),  # not significant; the larger model clearly gains
        (+0.02, 0.01, -0.05, 0.01, {"b": "FAIL", "c": "PASS"}),  # whole-CT alone better; larger model worse
    ],
)
def test_ablation_claims_b_and_c(whole_diff, whole_p, large_diff, large_p, expected) -> None:
    from adaragct.experiments.demo_ablations import CELLS, REFERENCE, check

    whole, large = CELLS["whole_ct"], CELLS["tiny_large"]
    rows = {
        REFERENCE: _row(REFERENCE, 0.20),
        whole: _row(whole, 0.20 + whole_diff),
        large: _row(large, 0.20 + large_diff),
    }
    comparisons = {REFERENCE: {whole: _cmp(whole_diff, whole_p), large: _cmp(large_diff, large_p)}}
    claims = {c.key: c for c in check(rows, comparisons)}
    assert {k: c.status for k, c in claims.items()} == expected
    assert f"diff {whole_diff:+.3f}" in claims["b"].detail and f"diff {large_diff:+.3f}" in claims["c"].detail
    assert check({REFERENCE: rows[REFERENCE]}, {REFERENCE: {}}) == []  # no cell results yet: no claim lines


def test_ablation_claims_are_gated_on_the_models_that_must_read_their_image() -> None:
    """(b): a whole-CT-only model that owes nothing to its volume is the bottleneck itself, not a reason to doubt
    the claim; the demo's base model must read its image for either claim to be evidence."""
    from adaragct.experiments.demo_ablations import CELLS, REFERENCE, check

    whole, large = CELLS["whole_ct"], CELLS["tiny_large"]
    owed = {REFERENCE: [0.06, 0.17], whole: [-0.03, 0.06], large: [-0.01, 0.09]}
    rows = {
        n: _row(n, f, ci={"clinical_f1_owed": owed[n]})
        for n, f in ((REFERENCE, 0.36), (whole, 0.30), (large, 0.33))
    }
    comparisons = {REFERENCE: {whole: _cmp(-0.06, 0.02), large: _cmp(-0.03, 0.3)}}
    claims = {c.key: c.status for c in check(rows, comparisons)}
    assert claims == {"b": "PASS", "c": "NOT EVIDENCE"}
    rows[REFERENCE]["ci"]["clinical_f1_owed"] = [-0.01, 0.1]
    assert {c.key: c.status for c in check(rows, comparisons)} == {"b": "NOT EVIDENCE", "c": "NOT EVIDENCE"}
