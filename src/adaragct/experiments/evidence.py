"""The evidence behind a results table: paired p-values against reference rows, and the paper's claims checked
on the numbers, one line each, whatever the outcome.

A results row is named ``stage/retrieval`` (``base/none``, ``rag/adaptive``, ``copy/nearest_ct``) and carries
``metrics`` (``{metric: value}``, the short names of :data:`adaragct.eval.bootstrap.BOOTSTRAP_METRICS`) and ``ci``
(``{metric: [lower, upper]}``, 95% percentile bootstrap). Comparisons are
``{reference row: {row: {metric: {difference, ci_lower, ci_upper, p_value}}}}`` from
:func:`adaragct.eval.compare.compare_predictions` (difference = row minus reference). The claims (AdaRAG-CT,
ECCV 2026, as issue 14 states them):

(a) the base model beats copying a random training report and copying the one nearest by whole-CT embedding on
    weighted clinical F1 with paired p < 0.05 (the nearest by organ embeddings is reported beside them);
(b), (c) come from the ablation cells (:mod:`adaragct.experiments.demo_ablations`) and are PENDING here;
(d) adaptive retrieval beats base on weighted clinical F1 with paired p < 0.05 and keeps BLEU-4 and ROUGE-L within
    base's 95% CI (not below its lower bound);
(e) text2text (static retrieval, no organ filter) helps less than adaptive: its weighted-F1 gain over rag/none is
    smaller than adaptive's;
(f) oracle contexts give the upper row: the highest weighted clinical F1 of the rag rows.

A claim about a model is evidence only if the model's reports depend on its volume: a claim resting on a trained row
whose "F1 owed" (clinical F1 against the volume's own labels minus against another patient's,
:mod:`adaragct.eval.dependence`) has a 95% interval that does not exclude 0 is printed NOT EVIDENCE, with the
status the numbers alone would have given, rather than PASS or FAIL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BASE, RAG_NONE = "base/none", "rag/none"
ADAPTIVE, TEXT2TEXT, ORACLE = "rag/adaptive", "rag/text2text", "rag/oracle"
COPY_ROWS = ("copy/random", "copy/nearest_ct", "copy/nearest_organs")
BEATEN_COPIES = ("copy/random", "copy/nearest_ct")  # claim (a): beaten with paired p < ALPHA
ALPHA = 0.05
NOT_EVIDENCE = "NOT EVIDENCE"
OWED = "clinical_f1_owed"

Rows = Mapping[str, Mapping[str, Any]]
Comparisons = Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, checked: ``status`` is PASS, FAIL, PENDING (checked elsewhere) or N/A (a row it
    needs is not in the table); ``detail`` gives the numbers it was decided on."""

    key: str
    text: str
    status: str
    detail: str

    def line(self) -> str:
        return f"({self.key}) {self.status}: {self.text} -- {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def paired_comparisons(
    predictions: Mapping[str, str | Path],
    references: Sequence[str],
    labels_csv: str | Path,
    *,
    num_resamples: int = 1000,
    seed: int = 42,
    labeler: str = "rule",
) -> dict[str, dict[str, dict[str, Any]]]:
    """Paired bootstrap of every row against each reference row present (the same resamples for all pairs).

    Args:
        predictions: ``{row name: predictions JSONL}``, all over the same volumes.
        references: row names to compare against (``base/none``, ``rag/none``); absent ones are skipped.
        labels_csv: ground truth of the split.
    """
    from adaragct.eval.compare import compare_predictions
    from adaragct.eval.labelers import build_labeler
    from adaragct.formats.tables import read_labels_csv

    labels = read_labels_csv(labels_csv)
    truth = {vid: row for vid, row in zip(labels.index, labels.to_numpy(), strict=True)}
    rule = build_labeler(labeler)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for ref in (r for r in references if r in predictions):
        out[ref] = {
            name: {
                **compare_predictions(
                    predictions[ref], path, truth, rule, num_resamples=num_resamples, seed=seed
                ),
                "num_resamples": num_resamples,
            }
            for name, path in predictions.items()
            if name != ref
        }
    return out


def format_p(p_value: float, num_resamples: int | None) -> str:
    """``p=0.012``; a p-value of 0 (no resample on the other side of zero) as ``p<2/B``, the smallest one the
    two-sided bootstrap can resolve."""
    if p_value == 0 and num_resamples:
        return f"p<{2 / num_resamples:.3g}"
    return f"p={p_value:.3f}"


def _p(comparisons: Comparisons, ref: str, row: str, metric: str = "clinical_f1") -> str | None:
    res = comparisons.get(ref, {}).get(row, {})
    if metric not in res:
        return None
    return format_p(res[metric]["p_value"], res.get("num_resamples"))


def _f1(rows: Rows, name: str) -> float:
    return float(rows[name]["metrics"]["clinical_f1"])


def _missing(rows: Rows, needed: Sequence[str]) -> list[str]:
    return [n for n in needed if n not in rows]


def _beats(comparisons: Comparisons, row: str, ref: str) -> bool:
    """``row`` is above ``ref`` on weighted clinical F1 with paired p < ALPHA (comparisons hold row - ref as
    ``comparisons[row][ref]`` negated, or ``comparisons[ref][row]``)."""
    res = comparisons.get(row, {}).get(ref, {}).get("clinical_f1")
    if res is not None:  # ref minus row
        return res["difference"] < 0 and res["p_value"] < ALPHA
    res = comparisons.get(ref, {}).get(row, {}).get("clinical_f1")
    return res is not None and res["difference"] > 0 and res["p_value"] < ALPHA


def owed_interval(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """The 95% interval of a row's F1 owed to its volume, when it was bootstrapped."""
    ci = row.get("ci", {}).get(OWED)
    return None if ci is None else (float(ci[0]), float(ci[1]))


def gate(claim: Claim, rows: Rows, models: Sequence[str]) -> Claim:
    """``claim`` as NOT EVIDENCE when one of the trained ``models`` rows it rests on owes nothing provable to its
    volume (F1 owed interval not above 0); the status the numbers give is kept in the detail."""
    if claim.status not in ("PASS", "FAIL"):
        return claim
    blind = []
    for name in models:
        ci = owed_interval(rows.get(name, {}))
        if ci is not None and ci[0] <= 0:
            blind.append(f"{name} F1 owed [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    if not blind:
        return claim
    why = (
        "; ".join(blind)
        + f" includes 0: its reports do not provably depend on the volume (numbers alone: {claim.status})"
    )
    return Claim(claim.key, claim.text, NOT_EVIDENCE, f"{why} -- {claim.detail}")


def claim_a(rows: Rows, comparisons: Comparisons) -> Claim:
    """(a) base beats copy/random and copy/nearest_ct on weighted clinical F1 with paired p < 0.05;
    copy/nearest_organs is reported beside them."""
    text = (
        "base beats copying a random training report and the one nearest by whole-CT embedding on weighted "
        "clinical F1 (paired p < 0.05; copy/nearest_organs reported)"
    )
    if missing := _missing(rows, (BASE, *COPY_ROWS)):
        return Claim("a", text, "N/A", f"rows missing: {', '.join(missing)}")
    parts = []
    for name in COPY_ROWS:
        p = _p(comparisons, BASE, name)
        parts.append(f"{name} {_f1(rows, name):.3f}" + (f" ({p})" if p else ""))
    passed = all(_beats(comparisons, BASE, name) for name in BEATEN_COPIES)
    return Claim(
        "a", text, "PASS" if passed else "FAIL", f"base {_f1(rows, BASE):.3f} vs " + ", ".join(parts)
    )


def claim_d(rows: Rows, comparisons: Comparisons) -> Claim:
    """(d) adaptive > base on weighted F1 with paired p < 0.05; BLEU-4 and ROUGE-L not below base's 95% CI."""
    text = (
        "adaptive beats base on weighted clinical F1 (paired p < 0.05) and keeps BLEU-4 and ROUGE-L within "
        "base's 95% CI"
    )
    if missing := _missing(rows, (BASE, ADAPTIVE)):
        return Claim("d", text, "N/A", f"rows missing: {', '.join(missing)}")
    cmp = comparisons.get(BASE, {}).get(ADAPTIVE, {}).get("clinical_f1")
    if cmp is None:
        return Claim("d", text, "N/A", "no paired comparison of rag/adaptive against base/none")
    f1_ok = cmp["difference"] > 0 and cmp["p_value"] < ALPHA
    parts = [
        f"clin-F1 {_f1(rows, ADAPTIVE):.3f} vs base {_f1(rows, BASE):.3f} (diff {cmp['difference']:+.3f}, "
        f"{_p(comparisons, BASE, ADAPTIVE)})"
    ]
    kept = True
    for metric, label in (("bleu_4", "BLEU-4"), ("rouge_l", "ROUGE-L")):
        value = float(rows[ADAPTIVE]["metrics"][metric])
        lo, hi = rows[BASE]["ci"][metric]
        inside = value >= lo
        kept &= inside
        where = "within" if lo <= value <= hi else ("above" if value > hi else "below")
        parts.append(f"{label} {value:.3f} {where} base's CI [{lo:.3f}, {hi:.3f}]")
    return Claim("d", text, "PASS" if f1_ok and kept else "FAIL", "; ".join(parts))


def claim_e(rows: Rows, comparisons: Comparisons) -> Claim:
    """(e) text2text's weighted-F1 gain over rag/none is smaller than adaptive's."""
    text = "text2text (static, no organ filter) helps less than adaptive (weighted clinical F1 gain over rag/none)"
    if missing := _missing(rows, (RAG_NONE, ADAPTIVE, TEXT2TEXT)):
        return Claim("e", text, "N/A", f"rows missing: {', '.join(missing)}")
    gains = {n: _f1(rows, n) - _f1(rows, RAG_NONE) for n in (ADAPTIVE, TEXT2TEXT)}
    pvals = {n: _p(comparisons, RAG_NONE, n) for n in gains}
    detail = ", ".join(
        f"{n.split('/')[1]} {gains[n]:+.3f}" + (f" ({pvals[n]})" if pvals[n] else "")
        for n in (TEXT2TEXT, ADAPTIVE)
    )
    status = "PASS" if gains[TEXT2TEXT] < gains[ADAPTIVE] else "FAIL"
    return Claim("e", text, status, f"gain over rag/none {_f1(rows, RAG_NONE):.3f}: {detail}")


def claim_f(rows: Rows, comparisons: Comparisons) -> Claim:
    """(f) oracle has the highest weighted clinical F1 of the rag rows."""
    text = "oracle is the upper row (highest weighted clinical F1 of the rag rows)"
    rag_rows = [n for n in rows if n.startswith("rag/")]
    if ORACLE not in rows or len(rag_rows) < 2:
        return Claim("f", text, "N/A", "rows missing: rag/oracle or the other rag rows")
    others = [n for n in rag_rows if n != ORACLE]
    best = max(others, key=lambda n: _f1(rows, n))
    status = "PASS" if _f1(rows, ORACLE) > _f1(rows, best) else "FAIL"
    detail = f"oracle {_f1(rows, ORACLE):.3f} vs " + ", ".join(
        f"{n.split('/')[1]} {_f1(rows, n):.3f}" for n in others
    )
    return Claim("f", text, status, detail)


def pending(key: str, text: str) -> Claim:
    """A claim that another experiment (the ablation grid) checks."""
    return Claim(key, text, "PENDING", "checked by `make demo-ablations` (outputs/demo_ablations/results.md)")


def check_claims(rows: Rows, comparisons: Comparisons) -> list[Claim]:
    """Every claim in order (a)-(f); (b) and (c) are placeholders for the grid's results."""
    others = [n for n in rows if n.startswith("rag/") and n != ORACLE]
    runner_up = max(others, key=lambda n: _f1(rows, n)) if others else None  # what decides (f)
    return [
        gate(claim_a(rows, comparisons), rows, [BASE]),
        pending("b", "organ + whole-CT input beats whole-CT input alone (the embedding bottleneck)"),
        pending("c", "a tiny model 2-4x larger gives no clear gain"),
        gate(claim_d(rows, comparisons), rows, [BASE, ADAPTIVE]),
        gate(claim_e(rows, comparisons), rows, [RAG_NONE, ADAPTIVE, TEXT2TEXT]),
        gate(claim_f(rows, comparisons), rows, [ORACLE, runner_up] if runner_up else [ORACLE]),
    ]


def volumes_needed(
    ci_lower: float, ci_upper: float, n: int, delta: float, *, power: float = 0.8, alpha: float = ALPHA
) -> int:
    """Volumes a paired comparison needs so a true difference ``delta`` gives p < ``alpha`` with ``power``.

    The paired bootstrap's 95% interval of the difference at ``n`` volumes gives its standard error
    (width / (2 * 1.96)); the standard error shrinks as 1/sqrt(n), so n' = n * ((z_alpha/2 + z_power) * se /
    delta)^2. With ``power=0.5`` this is where the interval of a difference of exactly ``delta`` just excludes 0.
    """
    from statistics import NormalDist

    if delta <= 0 or ci_upper <= ci_lower or n < 1:
        raise ValueError(
            f"need delta > 0, ci_upper > ci_lower and n >= 1, got {delta}, [{ci_lower}, {ci_upper}], {n}"
        )
    z = NormalDist().inv_cdf
    se = (ci_upper - ci_lower) / (2 * z(0.975))
    return math.ceil(round(n * ((z(1 - alpha / 2) + z(power)) * se / delta) ** 2, 6))
