"""Demo-only check: the cohort's text asserts exactly its labels (by construction of the grammar).

The checks that work on any cohort (text variety, bottleneck, organ probes) live in
:mod:`adaragct.analysis.cohort` (which data/ does not import: tests/test_layers.py); this one needs the grammar's :data:`FINDING_PATTERNS` contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adaragct.constants import FINDINGS
from adaragct.data.sentences import Tagged
from adaragct.synthetic.grammar import asserted_findings


def label_text_agreement(
    reports: Sequence[str], labels: np.ndarray, tagged: Tagged
) -> dict[str, float | int]:
    """How often the text asserts exactly the labelled findings (1.0 for the demo cohort by construction).

    A finding is asserted when an abnormal sentence (per ``tag_sentence``) matches its pattern in
    :data:`~adaragct.synthetic.grammar.FINDING_PATTERNS`. Returns the share of agreeing (report, finding) pairs
    and the number of reports with any disagreement.
    """
    cache: dict[str, set[str]] = {}
    agree = bad_reports = 0
    for report, row in zip(reports, labels, strict=True):
        if report not in cache:
            cache[report] = set().union(*(asserted_findings(s, t.normal) for s, t in tagged[report]))
        said = cache[report]
        ok = [(f in said) == bool(y) for f, y in zip(FINDINGS, row, strict=True)]
        agree += sum(ok)
        bad_reports += not all(ok)
    return {"agreement": agree / max(labels.size, 1), "reports_disagreeing": bad_reports}
