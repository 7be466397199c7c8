"""What predictions owe to their volumes (issue 20): distinct reports and clinical F1 owed, from labels alone."""

from __future__ import annotations

import numpy as np

from adaragct.eval.dependence import clinical_dependence, distinct_reports


def _cohort(n: int = 80, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = [f"valid_{i}_a_1" for i in range(n)]
    return ids, (rng.random((n, 18)) < 0.3).astype(np.int8)


def test_a_volume_independent_template_owes_nothing() -> None:
    ids, truth = _cohort()
    template = np.zeros((len(ids), 18), dtype=np.int8)
    template[:, [8, 9, 10]] = 1  # the same three findings asserted for every volume
    dep = clinical_dependence(ids, ["one report"] * len(ids), template, truth, num_resamples=200)
    assert dep.distinct_reports == 1
    assert abs(dep.f1_owed) < 0.02  # any patient's labels fit the template as well as the volume's own
    assert dep.f1_owed_interval.ci_lower <= 0 <= dep.f1_owed_interval.ci_upper


def test_predictions_that_follow_the_volume_owe_a_lot() -> None:
    ids, truth = _cohort()
    noisy = truth.copy()
    noisy[::7, 3] ^= 1  # mostly right
    texts = [f"report {i}" for i in range(len(ids))]
    dep = clinical_dependence(ids, texts, noisy, truth, num_resamples=200)
    assert dep.distinct_reports == len(ids)
    assert dep.f1_owed > 0.5
    assert dep.f1_owed_interval.ci_lower > 0.4
    # own F1 minus deranged F1 is what is owed
    assert 0 < dep.f1_deranged < 0.5


def test_f1_owed_is_undefined_for_one_patient() -> None:
    ids = ["valid_1_a_1", "valid_1_a_2"]
    labels = np.ones((2, 18), dtype=np.int8)
    dep = clinical_dependence(ids, ["a", "a"], labels, labels)
    assert dep.f1_owed is None and dep.distinct_reports == 1


def test_distinct_reports_ignores_case_and_edges() -> None:
    assert distinct_reports(["No effusion.", " no effusion. ", "Effusion."]) == 2
