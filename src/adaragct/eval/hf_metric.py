"""The evaluation suite as a local Hugging Face ``evaluate`` module.

Load it by path (the hub's own ``bleu``/``rouge`` scripts cannot be fetched offline, and nothing here uses them):

    >>> import adaragct.eval.hf_metric as m                              # doctest: +SKIP
    >>> metric = evaluate.load(m.__file__)                               # doctest: +SKIP
    >>> metric.compute(predictions=["..."], references=["..."])          # doctest: +SKIP

It returns BLEU-1..4, ROUGE-L, CIDEr-D (identical to pycocoevalcap), sacreBLEU/100 and the support-weighted
clinical P/R/F1 with the rule labeler on the references as ground truth (there is no labels CSV here).
"""

from __future__ import annotations

import datasets
import evaluate

from adaragct.eval.clinical import compute_clinical_metrics
from adaragct.eval.labelers.rules import RuleLabeler
from adaragct.eval.report import headline_scalars
from adaragct.eval.text_metrics import compute_text_metrics

_DESCRIPTION = (
    "AdaRAG-CT report-generation metrics: pycocoevalcap-identical BLEU/ROUGE-L/CIDEr-D + clinical P/R/F1."
)
_KWARGS = "predictions: list of generated reports; references: list of reference reports (one each)."


class AdaRagCTMetrics(evaluate.Metric):
    """``evaluate`` wrapper around :func:`compute_text_metrics` and the rule-labeler clinical metrics."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        text = compute_text_metrics(predictions, references, with_meteor=False)
        labeler = RuleLabeler()
        clinical = compute_clinical_metrics(labeler.labels(predictions), labeler.labels(references))
        # METEOR needs Java, so this module leaves it out (``with_meteor=False`` above)
        return {k: v for k, v in headline_scalars(text, clinical).items() if k != "meteor"}
