"""The demo's results as text: the results table with 95% bootstrap CIs, the p-value table, the claim lines,
``results.md`` and ``results.png``.

The terminal gets a narrow version (``value [lo, hi]`` for the headline columns, the rest as values); the markdown
file gets every column with its interval. Rows are dicts with ``name`` (``stage/retrieval``), ``phase``,
``retrieval``, ``metrics`` and ``ci`` (see :mod:`adaragct.experiments.evidence`) and ``retrievals_per_report``
(None for copy baselines, which generate nothing). Wall-clock throughput is a timing, not a result: the demo
writes it to ``timings.json``, so two runs write identical results files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaragct.experiments.evidence import Claim, format_p
from adaragct.formats.metrics import DEMO_COLUMNS

HEADLINE = ("clinical_f1", "bleu_4", "rouge_l")  # the columns the terminal shows with their intervals
PVALUE_METRICS: tuple[tuple[str, str], ...] = (
    ("clin-F1", "clinical_f1"),
    ("BLEU-4", "bleu_4"),
    ("ROUGE-L", "rouge_l"),
)


def _cell(row: Mapping[str, Any], metric: str, with_ci: bool) -> str:
    value = row["metrics"].get(metric)
    if value is None:  # e.g. F1 owed where the volumes span too few patients
        return "-"
    ci = row.get("ci", {}).get(metric)
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if with_ci and ci else f"{value:.3f}"


def _optional(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _gain(row: Mapping[str, Any]) -> str:
    """The model's visual gain (nats per report token) with its interval; ``-`` for copy rows."""
    if row.get("visual_gain") is None:
        return "-"
    lo, hi = row["visual_gain_ci"]
    return f"{row['visual_gain']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def results_table(rows: Sequence[Mapping[str, Any]], *, all_intervals: bool = True) -> str:
    """Markdown table, one row per results row; ``all_intervals=False`` gives intervals to :data:`HEADLINE` only
    (the terminal's narrow table). Every trained row shows its model's visual gain and its F1 owed to the volume
    with their intervals, and the distinct reports it wrote."""
    head = ["model", "retrieval", *[c for c, _ in DEMO_COLUMNS], "visual gain", "distinct", "retr/report"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [
            _cell(row, m, all_intervals or m in HEADLINE or m == "clinical_f1_owed") for _, m in DEMO_COLUMNS
        ]
        cells += [_gain(row), _optional(row.get("distinct_reports"), "d")]
        cells.append(_optional(row.get("retrievals_per_report"), ".2f"))
        lines.append("| " + " | ".join([row["phase"], row["retrieval"], *cells]) + " |")
    return "\n".join(lines)


def pvalue_table(rows: Sequence[Mapping[str, Any]], comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    """Paired bootstrap difference and two-sided p-value of each row against each reference row."""
    refs = list(comparisons)
    head = ["row"] + [f"{label} vs {ref}" for ref in refs for label, _ in PVALUE_METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["name"]]
        for ref in refs:
            for _, metric in PVALUE_METRICS:
                cmp = comparisons[ref].get(row["name"], {})
                res = cmp.get(metric)
                p = None if res is None else format_p(res["p_value"], cmp.get("num_resamples"))
                cells.append("-" if res is None else f"{res['difference']:+.3f} ({p})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claim_lines(claims: Sequence[Claim]) -> str:
    return "\n".join(c.line() for c in claims)


def markdown(
    rows: Sequence[Mapping[str, Any]],
    comparisons: Mapping[str, Mapping[str, Any]],
    claims: Sequence[Claim],
    *,
    num_volumes: int,
    num_resamples: int,
    seed: int,
) -> str:
    """``results.md``: the full table, the p-value table and the claims, with one paragraph saying how to read
    them."""
    return (
        f"# adaragct demo results\n\n{num_volumes} validation volumes of the demo cohort; clinical F1 from the rule "
        f"labeler against the cohort's labels. Brackets: 95% percentile bootstrap intervals ({num_resamples} "
        f"resamples of the volumes, seed {seed}; CIDEr-D's with document frequencies of the full set). `copy` rows "
        f"copy one training report per volume (random, nearest by whole-CT embedding, nearest by the mean of the "
        f"four organ-embedding cosines).\n\n{results_table(rows)}\n\n"
        f"## Paired comparisons\n\nRow minus reference on the same resampled volumes; p: two-sided paired "
        f"bootstrap.\n\n{pvalue_table(rows, comparisons)}\n\n"
        f"## The paper's claims on these numbers\n\n" + "\n".join(f"- {c.line()}" for c in claims) + "\n"
    )


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Bar chart of weighted clinical F1, BLEU-4 and ROUGE-L per row, with their 95% intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['phase']}\n{r['retrieval']}" for r in rows]
    shown = [(c, m) for c, m in DEMO_COLUMNS if m in HEADLINE]
    x, width = np.arange(len(rows)), 0.8 / len(shown)
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(rows)), 4))
    for i, (name, metric) in enumerate(shown):
        values = np.array([r["metrics"][metric] for r in rows])
        ci = np.array([r.get("ci", {}).get(metric) or (v, v) for r, v in zip(rows, values, strict=True)])
        err = np.clip(np.stack([values - ci[:, 0], ci[:, 1] - values]), 0, None)
        ax.bar(x + i * width, values, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(x + width * (len(shown) - 1) / 2, labels, fontsize=8)
    ax.set(ylabel="score", title="adaragct demo: validation volumes of the demo cohort (95% bootstrap CI)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
