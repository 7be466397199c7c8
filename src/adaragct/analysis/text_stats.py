"""How much two report sets look alike as text: length, sentence reuse, and how similar two reports are.

Why: a model trained on the demo cohort should meet text shaped like CT-RATE's (issue 14), or the demo's BLEU
and retrieval results say nothing about the real task. These figures describe a report set on its own, so the
demo can be calibrated against the hand-labelled CT-RATE reports and any two sets compared side by side:

- ``words_per_report``: mean whitespace tokens of a report.
- ``sentences_per_report``: mean sentences of a report, as :func:`~adaragct.data.sentences.split_sentences`
  splits them (it treats CT-RATE's bare ``"`` before the impression as a boundary; a split only at ``.?!`` +
  space gives ~1 sentence per report fewer on CT-RATE).
- ``recurring_share``: share of all sentence occurrences whose exact text (as split) occurs in at least one
  *other* report; templated normal statements recur, free descriptions do not.
- ``positives_per_report``: mean label 1s of a report (18 findings).
- ``random_bleu4`` / ``random_rouge_l``: each report against one seeded random other report (the report is the
  candidate, the partner the reference); corpus BLEU-4 over those pairs and mean ROUGE-L, exactly as the
  evaluation computes them (:mod:`adaragct.eval.text_metrics`, text stripped and lower-cased). This is the score
  a generator gets by writing some other patient's report: the floor a model must clear.
- ``nearest_bleu4`` / ``nearest_rouge_l``: the same with the partner being the other report whose 18 labels are
  nearest in Hamming distance (ties broken by a seeded uniform choice): the score of a perfect label-conditioned
  retrieval of whole reports.

Bands say how close a candidate set must be to a reference set (demo vs CT-RATE, issue 14): see :data:`BANDS`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from adaragct.data.sentences import split_sentences
from adaragct.eval.text_metrics import bleu_stats, corpus_bleu, normalize_text, rouge_l_scores

FIGURES: dict[str, str] = {
    "reports": "reports",
    "words_per_report": "words per report",
    "sentences_per_report": "sentences per report",
    "recurring_share": "recurring sentence share",
    "positives_per_report": "positives per report",
    "unique_sentences": "unique sentences",
    "random_bleu4": "random pair BLEU-4",
    "random_rouge_l": "random pair ROUGE-L",
    "nearest_bleu4": "label-nearest pair BLEU-4",
    "nearest_rouge_l": "label-nearest pair ROUGE-L",
}


@dataclass(frozen=True)
class Band:
    """How far a candidate figure may sit from the reference: ``tolerance`` absolute, or a share of it."""

    tolerance: float
    relative: bool = False

    def limits(self, reference: float) -> tuple[float, float]:
        """The closed interval a candidate must fall in, given the reference figure."""
        width = self.tolerance * abs(reference) if self.relative else self.tolerance
        return reference - width, reference + width


# The issue-14 bands of the demo against CT-RATE; figures without a band are printed for information.
BANDS: dict[str, Band] = {
    "words_per_report": Band(0.15, relative=True),
    "sentences_per_report": Band(0.15, relative=True),
    "recurring_share": Band(0.10),
    "random_bleu4": Band(0.03),
    "random_rouge_l": Band(0.03),
    "nearest_bleu4": Band(0.04),
    "nearest_rouge_l": Band(0.04),
}


def recurring_share(sentences: Sequence[Sequence[str]]) -> float:
    """Share of sentence occurrences whose text occurs in at least one other report (``sentences``: per report)."""
    reports_with = Counter(s for report in sentences for s in set(report))
    total = sum(len(report) for report in sentences)
    recurring = sum(1 for report in sentences for s in report if reports_with[s] > 1)
    return recurring / total if total else 0.0


def random_partners(n: int, rng: np.random.Generator) -> np.ndarray:
    """For each of ``n`` reports, a uniformly drawn *other* report (needs ``n >= 2``)."""
    if n < 2:
        raise ValueError(f"pairs need at least 2 reports, got {n}")
    return (np.arange(n) + rng.integers(1, n, size=n)) % n


def nearest_partners(labels: np.ndarray, rng: np.random.Generator, block: int = 1024) -> np.ndarray:
    """For each report, the other report with the fewest differing labels; ties by a seeded uniform choice.

    Distances are computed a block of rows at a time, so CT-RATE's 47k reports fit in memory.
    """
    y = np.asarray(labels, dtype=np.float32)
    n = len(y)
    if n < 2:
        raise ValueError(f"pairs need at least 2 reports, got {n}")
    partners = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        rows = y[start : start + block]
        dist = rows @ (1.0 - y).T + (1.0 - rows) @ y.T  # Hamming distance of 0/1 vectors
        dist[np.arange(len(rows)), np.arange(start, start + len(rows))] = np.inf  # never oneself
        for k, row in enumerate(dist):
            ties = np.flatnonzero(row == row.min())
            partners[start + k] = ties[int(rng.integers(len(ties)))]
    return partners


def pair_scores(normalized: Sequence[str], partners: np.ndarray) -> tuple[float, float]:
    """Corpus BLEU-4 and mean ROUGE-L of each (already normalised) report against its partner."""
    references = [normalized[j] for j in partners]
    bleu4 = corpus_bleu(bleu_stats(normalized, references))[3]
    return float(bleu4), float(np.mean(rouge_l_scores(normalized, references)))


def report_stats(reports: Sequence[str], labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Every figure of the module docstring for one report set (``labels``: (n, 18) 0/1 in FINDINGS order).

    The random and the nearest partners draw from separate seeded streams, so one does not shift the other.
    """
    labels = np.asarray(labels)
    if len(reports) != len(labels):
        raise ValueError(f"{len(reports)} reports but {len(labels)} label rows")
    sentences = [split_sentences(r) for r in reports]
    normalized = [normalize_text(r) for r in reports]
    random_bleu4, random_rouge = pair_scores(
        normalized, random_partners(len(reports), np.random.default_rng([seed, 0]))
    )
    nearest_bleu4, nearest_rouge = pair_scores(
        normalized, nearest_partners(labels, np.random.default_rng([seed, 1]))
    )
    return {
        "reports": len(reports),
        "words_per_report": float(np.mean([len(r.split()) for r in reports])),
        "sentences_per_report": float(np.mean([len(s) for s in sentences])),
        "recurring_share": recurring_share(sentences),
        "positives_per_report": float(labels.sum(axis=1).mean()),
        "unique_sentences": len({s for report in sentences for s in report}),
        "random_bleu4": random_bleu4,
        "random_rouge_l": random_rouge,
        "nearest_bleu4": nearest_bleu4,
        "nearest_rouge_l": nearest_rouge,
    }


def band_check(
    reference: Mapping[str, float], candidate: Mapping[str, float], bands: Mapping[str, Band] = BANDS
) -> dict[str, dict[str, float | bool]]:
    """For each banded figure: the interval around the reference and whether the candidate lies inside."""
    out: dict[str, dict[str, float | bool]] = {}
    for figure, band in bands.items():
        low, high = band.limits(float(reference[figure]))
        out[figure] = {"low": low, "high": high, "pass": bool(low <= float(candidate[figure]) <= high)}
    return out


def _cell(figure: str, value: float) -> str:
    return f"{int(value)}" if figure in ("reports", "unique_sentences") else f"{value:.3f}"


def format_table(
    names: Sequence[str],
    stats: Sequence[Mapping[str, float]],
    bands: Mapping[str, Mapping[str, float | bool]] | None = None,
) -> str:
    """A plain-text table, one column per set and, with ``bands``, the band of the last set against the first."""
    header = [f"{'figure':<28}", *(f"{n:>16}" for n in names)]
    if bands is not None:
        header.append(f"  band ({names[-1]} vs {names[0]})")
    lines = ["".join(header)]
    for figure, title in FIGURES.items():
        row = [f"{title:<28}", *(f"{_cell(figure, s[figure]):>16}" for s in stats)]
        if bands is not None and figure in bands:
            b = bands[figure]
            row.append(f"  [{b['low']:.3f}, {b['high']:.3f}] {'pass' if b['pass'] else 'FAIL'}")
        lines.append("".join(row))
    if bands is not None:
        passed = sum(bool(b["pass"]) for b in bands.values())
        lines.append(f"{passed}/{len(bands)} figures inside their band")
    return "\n".join(lines)
