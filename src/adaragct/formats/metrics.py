"""Metric keys of the metrics JSON (docs/evaluation.md): the prefix and the column lists, in one place.

The release names every report-generation metric ``report_generation/<metric>`` (its task name, also the
``task_type`` of a prediction record); the headline scalars are repeated under ``overall/``. Whoever writes,
reads, tabulates or logs a metric builds its key here:

    ===================  =======================================================================================
    :data:`TASK`         the release's task name, ``report_generation``
    :data:`PREFIX`       ``report_generation/``, the prefix of every metric key
    :func:`metric_key`   ``metric_key("bleu_4") == "report_generation/bleu_4"``
    :data:`HEADLINE`     the release's headline scalars, in the metrics JSON's order (adaragct.eval.report)
    :data:`GRID_COLUMNS` a grid's results table: column -> metric key (adaragct.aggregate)
    :data:`DEMO_COLUMNS` the demo's results page: (heading, metric) (adaragct.experiments.demo_report)
    ===================  =======================================================================================
"""

from __future__ import annotations

TASK = "report_generation"
PREFIX = f"{TASK}/"
OVERALL = "overall"  # the release repeats the headline scalars under overall/


def metric_key(metric: str) -> str:
    """The metrics-JSON key of ``metric`` (``bleu_4`` -> ``report_generation/bleu_4``)."""
    return PREFIX + metric


HEADLINE = (
    "bleu_1",
    "bleu_2",
    "bleu_3",
    "bleu_4",
    "bleu_sacre",
    "rouge_l",
    "meteor",
    "cider",
    "clinical_precision",
    "clinical_recall",
    "clinical_f1",
)
GRID_COLUMNS = {
    "clin_f1": metric_key("clinical_f1"),
    "clin_f1_micro": metric_key("clinical_micro_f1"),
    "clin_f1_macro": metric_key("clinical_macro_f1"),
    "bleu_4": metric_key("bleu_4"),
    "rouge_l": metric_key("rouge_l"),
    "cider": metric_key("cider"),
}
DEMO_COLUMNS: tuple[tuple[str, str], ...] = (
    ("clin-F1 (w)", "clinical_f1"),
    ("micro", "clinical_micro_f1"),
    ("macro", "clinical_macro_f1"),
    ("BLEU-4", "bleu_4"),
    ("ROUGE-L", "rouge_l"),
    ("CIDEr", "cider"),
    ("F1 owed", "clinical_f1_owed"),
)
