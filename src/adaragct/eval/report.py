"""Metrics JSON (keys compatible with the AdaRAG-CT release) and the markdown table (docs/evaluation.md).

Release keys: ``num_samples``; ``report_generation/{bleu_1..4, bleu_sacre, rouge_l, meteor, cider,
clinical_precision, clinical_recall, clinical_f1}``; ``report_generation/clinical_detailed/{finding: {precision,
recall, f1, support}}``; the same scalars under ``overall/``; ``report_generation/{m}_{ci_lower, ci_upper,
bootstrap_mean, bootstrap_std}`` for bootstrapped metrics; ``llama_score``. Ours are added under the same prefix:
micro/macro P/R/F1, CRG, duplicate rate, empty-prediction, empty-reference and dropped-volume counts, and
``meteor_unavailable`` (why METEOR is null, or null when it was computed).
"""

from __future__ import annotations

import math
from typing import Any

from adaragct.constants import FINDINGS
from adaragct.eval.bootstrap import Interval
from adaragct.eval.clinical import ClinicalMetrics
from adaragct.eval.dependence import Dependence
from adaragct.eval.text_metrics import TextMetrics
from adaragct.formats.metrics import HEADLINE, OVERALL, TASK


def _clean(value: float | None) -> float | None:
    """JSON has no NaN: undefined values are written as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def headline_scalars(text: TextMetrics, clinical: ClinicalMetrics | None) -> dict[str, float | None]:
    """The headline metrics of one evaluation, keyed as in :data:`HEADLINE` and in that order (the clinical ones
    None without ``clinical``: clinical efficacy off)."""
    weighted = clinical.weighted if clinical is not None else {"p": None, "r": None, "f1": None}
    values = {
        "bleu_sacre": text.bleu_sacre,
        "rouge_l": text.rouge_l,
        "meteor": text.meteor,
        "cider": text.cider,
        "clinical_precision": weighted["p"],
        "clinical_recall": weighted["r"],
        "clinical_f1": weighted["f1"],
    }
    values.update({f"bleu_{k + 1}": b for k, b in enumerate(text.bleu)})
    return {name: values[name] for name in HEADLINE}


def build_metrics_dict(
    *,
    num_samples: int,
    text: TextMetrics,
    clinical: ClinicalMetrics | None,
    intervals: dict[str, Interval] | None = None,
    llama_score: float | None = None,
    judge_unparseable: int | None = None,
    duplicate_rate: float = 0.0,
    dependence: Dependence | None = None,
    num_empty_predictions: int = 0,
    num_empty_references: int = 0,
    num_dropped_missing_labels: int = 0,
    labeler: str | None = "rule",
    ground_truth: str | None = "labels_csv",
    protocol: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the metrics JSON object (``clinical`` None: clinical efficacy off, its keys null or absent)."""
    scalars = headline_scalars(text, clinical)
    out: dict[str, Any] = {"num_samples": int(num_samples)}
    for prefix in (TASK, OVERALL):
        for name, value in scalars.items():
            out[f"{prefix}/{name}"] = _clean(value)
    out[f"{TASK}/meteor_unavailable"] = text.meteor_unavailable
    out[f"{TASK}/clinical_detailed"] = clinical.per_finding if clinical is not None else {}
    for avg in ("micro", "macro"):
        values = getattr(clinical, avg) if clinical is not None else {"p": None, "r": None, "f1": None}
        out[f"{TASK}/clinical_{avg}_precision"] = values["p"]
        out[f"{TASK}/clinical_{avg}_recall"] = values["r"]
        out[f"{TASK}/clinical_{avg}_f1"] = values["f1"]
    out[f"{TASK}/crg"] = _clean(clinical.crg) if clinical is not None else None
    out[f"{TASK}/duplicate_rate"] = duplicate_rate
    if dependence is not None:  # adaragct.eval.dependence: what the predictions owe to their volumes
        out[f"{TASK}/distinct_reports"] = int(dependence.distinct_reports)
        out[f"{TASK}/clinical_f1_owed"] = _clean(dependence.f1_owed)
        out[f"{TASK}/clinical_f1_deranged"] = _clean(dependence.f1_deranged)
        if dependence.f1_owed_interval is not None:
            intervals = {**(intervals or {}), "clinical_f1_owed": dependence.f1_owed_interval}
    out[f"{TASK}/num_empty_predictions"] = int(num_empty_predictions)
    out[f"{TASK}/num_empty_references"] = int(num_empty_references)
    out["num_dropped_missing_labels"] = int(num_dropped_missing_labels)
    out["labeler"] = labeler
    out["ground_truth"] = ground_truth
    for name, interval in (intervals or {}).items():
        for field in ("ci_lower", "ci_upper", "bootstrap_mean", "bootstrap_std"):
            out[f"{TASK}/{name}_{field}"] = getattr(interval, field)
    out["llama_score"] = _clean(llama_score)
    if judge_unparseable is not None:
        out["llama_score_unparseable"] = int(judge_unparseable)
    judge = (protocol or {}).get("judge")
    if judge is not None:  # whose rubric: a LLaMA score is comparable to another only with the same hash
        out["llama_score_rubric_sha256"] = judge["rubric_sha256"]
        out["llama_score_rubric"] = "adaragct_default" if judge["rubric_is_default"] else "custom"
        out["llama_score_num_cached"] = judge["num_cached"]
    if protocol is not None:
        out["protocol"] = protocol
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def markdown_table(metrics: dict[str, Any]) -> str:
    """Headline table and per-finding table, as markdown."""
    lines = [
        f"# Evaluation ({metrics['num_samples']} volumes, labeler: {metrics.get('labeler', '?')})",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    rows = (
        "clinical_micro_f1",
        "clinical_macro_f1",
        "crg",
        "clinical_f1_owed",
        "distinct_reports",
        "duplicate_rate",
    )
    for name in (*HEADLINE, *rows):
        value = metrics.get(f"{TASK}/{name}")
        lo, hi = metrics.get(f"{TASK}/{name}_ci_lower"), metrics.get(f"{TASK}/{name}_ci_upper")
        ci = f"[{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
        lines.append(f"| {name} | {_fmt(value)} | {ci} |")
    lines.append(f"| llama_score | {_fmt(metrics.get('llama_score'))} | |")
    lines.append(f"| empty predictions | {metrics.get(f'{TASK}/num_empty_predictions', 0)} | |")
    lines.append(f"| empty references | {metrics.get(f'{TASK}/num_empty_references', 0)} | |")
    if metrics.get(f"{TASK}/meteor_unavailable"):
        lines += ["", f"METEOR unavailable: {metrics[f'{TASK}/meteor_unavailable']}"]
    if "protocol" in metrics:  # what was used, and whether it is the paper's protocol (eval/protocol.py)
        from adaragct.eval.protocol import console_lines

        lines += ["", *(f"- {line}" for line in console_lines(metrics["protocol"]))]
        lines += ["", "| metric | implementation |", "|---|---|"]
        lines += [f"| {name} | {how} |" for name, how in metrics["protocol"]["implementations"].items()]
    lines += ["", "| finding | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    detailed = metrics.get(f"{TASK}/clinical_detailed", {})
    for finding in FINDINGS:
        row = detailed.get(finding)
        if row:
            lines.append(
                f"| {finding} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | "
                f"{row['support']} |"
            )
    return "\n".join(lines) + "\n"


def console_report(metrics: dict[str, Any], json_path: Any, md_path: Any) -> list[str]:
    """What both scoring commands print: the protocol (labeler, ground truth, comparability), every metric that
    was skipped and why (never a silent n/a), and the headline numbers with the files written."""
    from adaragct.eval.protocol import console_lines

    lines = console_lines(metrics["protocol"]) if "protocol" in metrics else []
    if metrics.get(f"{TASK}/meteor_unavailable"):
        lines.append(f"METEOR skipped: {metrics[f'{TASK}/meteor_unavailable']}")
    if metrics.get("protocol", {}).get("labeler", "") is None:
        lines.append(
            "clinical efficacy skipped: turned off (--no-compute-clinical-efficacy, compute_clinical=false)"
        )
    if metrics.get("llama_score") is None:
        lines.append(
            "LLaMA score skipped: no judge (--compute-llama-score --llama-model-path DIR; scoring.judge.model_path=DIR)"
        )

    def fmt(key: str) -> str:
        value = metrics.get(f"{TASK}/{key}")
        return "n/a" if value is None else f"{value:.4f}"

    parts = [f"clinical F1 {fmt('clinical_f1')}", f"BLEU-4 {fmt('bleu_4')}", f"ROUGE-L {fmt('rouge_l')}"]
    parts.append(f"METEOR {fmt('meteor')}")
    if metrics.get("llama_score") is not None:
        parts.append(f"LLaMA score {metrics['llama_score']:.2f}")
    lines.append(f"{metrics['num_samples']} volumes: {', '.join(parts)} -> {json_path}, {md_path}")
    return lines
