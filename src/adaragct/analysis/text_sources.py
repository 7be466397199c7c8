"""Report sets for :mod:`adaragct.analysis.text_stats`: one report and its 18 labels per patient or scan.

A source is named on the command line (``python -m adaragct.analyze text.a=... text.b=...``) in one of three forms:

- ``demo``: the demo cohort drawn in memory from the ``data.generator`` config (train + valid patients, one report
  each), so a calibration of the generator needs no prepare run;
- a path to a CSV in the hand-labelled layout (``report_text`` + the 18 findings, id ``AccessionNo``);
- ``[reports.csv, labels.csv]``: a CT-RATE reports CSV and labels CSV (docs/formats.md#ct-rate-layout), joined on the volume id.

Reconstructions of one scan share a report, and a pair of identical reports would score BLEU 1 as "nearest", so
CT-RATE volumes are reduced to one per (patient, report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adaragct.constants import FINDINGS
from adaragct.errors import DataError
from adaragct.formats.tables import read_labels_csv, read_reports_csv
from adaragct.ids import patient_id


@dataclass(frozen=True)
class ReportSet:
    """Reports with their labels, one row each; ``name`` is the short column title of the table."""

    name: str
    source: str
    reports: tuple[str, ...]
    labels: np.ndarray  # (n, 18) int8 in FINDINGS order

    def subsample(self, max_reports: int | None, seed: int) -> ReportSet:
        """A seeded random subset of at most ``max_reports`` rows (all of them when None or more than n)."""
        if max_reports is None or len(self.reports) <= max_reports:
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.reports), max_reports, replace=False))
        return ReportSet(self.name, self.source, tuple(self.reports[i] for i in keep), self.labels[keep])


def demo_report_set(generator: Mapping[str, Any]) -> ReportSet:
    """The demo cohort of ``generator`` (the ``data.generator`` block): every patient's report and labels."""
    from adaragct.formats.tables import reference_report
    from adaragct.synthetic.generate import generate_cohort

    splits = generate_cohort(generator)
    reports = tuple(
        reference_report(s.findings[p], s.impressions[p])
        for s in splits.values()
        for p in range(len(s.cohort.patient_ids))
    )
    labels = np.concatenate([s.cohort.labels for s in splits.values()]).astype(np.int8)
    return ReportSet("demo", f"demo cohort (seed {generator['seed']})", reports, labels)


def manual_report_set(path: str | Path) -> ReportSet:
    """A CSV in the hand-labelled layout: ``AccessionNo, report_text`` and the 18 findings as 0/1."""
    path = Path(path)
    labels = read_labels_csv(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "report_text" not in frame.columns:
        raise DataError(
            path,
            "column 'report_text'",
            "missing",
            "give a hand-labelled CSV (report_text + 18 findings) or a CT-RATE pair as [reports.csv, labels.csv]",
        )
    reports = tuple(text.strip() for text in frame["report_text"])
    return ReportSet(path.name, str(path), reports, labels.to_numpy())


def ctrate_report_set(reports_csv: str | Path, labels_csv: str | Path) -> ReportSet:
    """A CT-RATE reports CSV + labels CSV, one row per (patient, report): reconstructions collapse to one."""
    reports = read_reports_csv(reports_csv)
    labels = read_labels_csv(labels_csv)
    missing = reports.index.difference(labels.index)
    if len(missing):
        raise DataError(
            labels_csv,
            "column 'VolumeName'",
            f"{len(missing)} volumes of {reports_csv} have no labels, first: {missing[0]!r}",
            "give the labels CSV of the same split as the reports CSV",
        )
    keys = pd.Series([patient_id(v) for v in reports.index], index=reports.index) + "\0" + reports["report"]
    keep = ~keys.duplicated().to_numpy()
    ids = reports.index[keep]
    return ReportSet(
        Path(reports_csv).name,
        f"{reports_csv} + {labels_csv}",
        tuple(reports.loc[ids, "report"]),
        labels.loc[ids, list(FINDINGS)].to_numpy(),
    )


def load_report_set(source: str | Sequence[str], generator: Mapping[str, Any] | None) -> ReportSet:
    """Resolve one command-line source (``demo``, a hand-labelled CSV, or ``[reports.csv, labels.csv]``)."""
    if isinstance(source, str) and source == "demo":
        if generator is None:
            raise ValueError("text source 'demo' needs the demo generator config: run with data=demo")
        return demo_report_set(generator)
    if isinstance(source, str):
        return manual_report_set(source)
    if len(source) == 2:
        return ctrate_report_set(source[0], source[1])
    raise ValueError(
        f"text source {list(source)!r}: expected demo, a hand-labelled CSV, or [reports.csv, labels.csv]"
    )
