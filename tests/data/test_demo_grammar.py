"""The demo grammar's contract, checked on every template: abnormal sentences name exactly their finding (for the
pattern check *and* the rule labeler), normal ones assert nothing; radiologist styles are deterministic; reports
respect the length cap; and the text is our own words, not CT-RATE's."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from adaragct.analysis.text_sources import demo_report_set, manual_report_set
from adaragct.constants import FINDINGS
from adaragct.data.sentences import split_sentences, tag_sentence
from adaragct.eval.labelers.rules import RuleLabeler
from adaragct.synthetic import phrasebook as pb
from adaragct.synthetic.grammar import (
    VERBOSITY,
    ReportStyle,
    ReportWriter,
    asserted_findings,
    draw_slots,
    expand,
)
from adaragct.synthetic.report import DETAILS, LUNG_FINDINGS, MAX_REPORT_WORDS, QUALIFIERS, write_report
from tests.conftest import compose_config

DRAWS = 40  # expansions per template: enough to hit every alternative of these small templates


def _expansions(template: str, seed: int, n: int = DRAWS) -> list[str]:
    rng = np.random.default_rng(seed)
    return [expand(template, rng) for _ in range(n)]


def _rule_findings(texts: list[str]) -> list[set[str]]:
    return [{f for f, y in zip(FINDINGS, row, strict=True) if y} for row in RuleLabeler().labels(texts)]


def _asserted(sentence: str) -> set[str]:
    return asserted_findings(sentence, tag_sentence(sentence).normal)


def test_expand_alternatives_slots_and_errors() -> None:
    rng = np.random.default_rng(0)
    seen = {expand("[a|b [c|d]] {x}[| e].", rng, {"x": "y"}) for _ in range(200)}
    assert seen == {"A y.", "A y e.", "B c y.", "B c y e.", "B d y.", "B d y e."}
    assert expand("  one ,  two.", rng, {}) == "One, two."
    with pytest.raises(ValueError, match="unbalanced"):
        expand("a] b", rng, {})


@pytest.mark.parametrize("finding", FINDINGS)
def test_positive_sentences_name_exactly_their_finding(finding: str) -> None:
    rng = np.random.default_rng(1)
    sentences = [s for t in pb.POSITIVE[finding] for s in _expansions(t, FINDINGS.index(finding))]
    if finding in pb.DENIAL_NAMES:  # lung findings also carry a qualifier or a descriptive clause
        sentences += [s[:-1] + QUALIFIERS[int(rng.integers(len(QUALIFIERS)))] + "." for s in sentences[:40]]
        sentences += [
            s[:-1] + expand(DETAILS[k % len(DETAILS)], rng).lower() + "."
            for k, s in enumerate(sentences[:40])
        ]
    for sentence in sentences:
        assert _asserted(sentence) == {finding}, sentence
    for sentence, said in zip(sentences, _rule_findings(sentences), strict=True):
        assert said == {finding}, sentence


@pytest.mark.parametrize("finding", FINDINGS)
def test_impression_phrases_name_exactly_their_finding(finding: str) -> None:
    rng = np.random.default_rng(2)
    phrases = [expand(t, rng) + "." for t in pb.IMPRESSION[finding] for _ in range(DRAWS)]
    for phrase, said in zip(phrases, _rule_findings(phrases), strict=True):
        assert _asserted(phrase) == {finding} and said == {finding}, phrase


def test_impression_pairs_name_exactly_both_findings() -> None:
    """Joined impression phrases must not combine into a third finding (e.g. 'aort...' + 'calcif...').

    An impression sentence joins mediastinal findings or lung findings, never both (report.py).
    """
    rng = np.random.default_rng(3)
    lung = set(LUNG_FINDINGS) | {"Pleural effusion"}
    pairs, sentences = [], []
    for a, b in combinations(FINDINGS, 2):
        if (a in lung) != (b in lung):
            continue
        for _ in range(3):
            slots = draw_slots(rng)
            first, second = (expand(rng.choice(pb.IMPRESSION[f]), rng, slots) for f in (a, b))
            text = f"{first} and {second[0].lower()}{second[1:]}"
            sentences.append(text if text.endswith("?") else text + ".")
            pairs.append({a, b})
    for sentence, want, said in zip(sentences, pairs, _rule_findings(sentences), strict=True):
        assert _asserted(sentence) == want and said == want, sentence


def test_normal_and_negated_statements_assert_nothing() -> None:
    templates = [t for table in (pb.NORMAL, pb.NEGATIVE) for ts in table.values() for t in ts]
    templates += list(pb.RECOMMENDATION)
    sentences = [s for k, t in enumerate(templates) for s in _expansions(t, 100 + k, 20)]
    sentences = [s for s in sentences if s.endswith(".")]  # the lung-window lead-in is not a sentence
    rng = np.random.default_rng(5)
    names = list(pb.DENIAL_NAMES.values())
    for k in range(len(names)):  # report.py denies 1-3 absent findings in one sentence
        listed = f"{names[k]}, {names[(k + 1) % len(names)]} or {names[(k + 2) % len(names)]}"
        sentences += [expand(t, rng, {**draw_slots(rng), "names": listed}) for t in pb.DENIAL_LIST]
    for sentence in sentences:
        assert tag_sentence(sentence).normal, sentence
    for sentence, said in zip(sentences, _rule_findings(sentences), strict=True):
        assert said == set(), sentence


def test_other_abnormal_sentences_name_no_finding() -> None:
    sentences = [
        s for k, t in enumerate(pb.BONES_OLD + pb.ABDOMEN_INCIDENTAL) for s in _expansions(t, 200 + k, 20)
    ]
    for sentence, said in zip(sentences, _rule_findings(sentences), strict=True):
        assert not tag_sentence(sentence).normal and _asserted(sentence) == set() and said == set(), sentence


def test_radiologist_styles_are_deterministic() -> None:
    style = ReportStyle(seed=5, radiologists=4, stock_phrasing=1.0)
    orders = {tuple(style.order(r, "mediastinum", ("a", "b", "c", "d", "e"))) for r in range(4)}
    assert len(orders) > 1  # radiologists differ
    assert style.order(2, "mediastinum", ("a", "b", "c")) == style.order(2, "mediastinum", ("a", "b", "c"))
    assert sorted(style.verbosity(r) for r in range(4)) == pytest.approx(np.linspace(*VERBOSITY, 4))
    # with stock phrasing only, one radiologist words a statement the same way in every report
    writers = [ReportWriter(np.random.default_rng(k), style) for k in range(30)]
    by_radiologist: dict[int, set[str]] = {}
    for w in writers:
        by_radiologist.setdefault(w.radiologist, set()).add(w.statement("normal:airway"))
    assert all(len(texts) == 1 for texts in by_radiologist.values())
    assert len(set().union(*by_radiologist.values())) == len(by_radiologist)


def test_reports_respect_the_length_cap_and_are_deterministic() -> None:
    style = ReportStyle(seed=11, radiologists=6, stock_phrasing=0.5)
    for k in range(30):  # 8 findings (CT-RATE reports rarely have more): long reports that must be capped
        labels = np.zeros(len(FINDINGS), dtype=np.int8)
        labels[np.random.default_rng(k).choice(len(FINDINGS), size=8, replace=False)] = 1
        findings, impression = write_report(labels, 75, np.random.default_rng(k), style)
        assert len(findings.split()) + len(impression.split()) <= MAX_REPORT_WORDS
        report = f"{findings} {impression}"
        said = set().union(*(_asserted(s) for s in split_sentences(report)))
        want = {f for f, y in zip(FINDINGS, labels, strict=True) if y}
        assert said == want and _rule_findings([report])[0] == want, report
    labels = np.ones(len(FINDINGS), dtype=np.int8)
    again = write_report(labels, 75, np.random.default_rng(3), style)
    assert again == write_report(labels, 75, np.random.default_rng(3), style)


def test_demo_is_in_our_own_words(shared_data: Path) -> None:
    """Almost no demo sentence equals a CT-RATE sentence: only short generic ones ("Cardiomegaly.") may coincide.

    The grammar before issue 14 reused CT-RATE template sentences verbatim (18% of its sentences).
    """
    real = manual_report_set(shared_data / "ctrate_manual_labels" / "train.csv")
    real_sentences = {s.lower() for r in real.reports for s in split_sentences(r)}
    demo = demo_report_set(compose_config("analyze", resolve=False).data.generator)
    counts = Counter(s for r in demo.reports for s in split_sentences(r))
    shared = sum(c for s, c in counts.items() if s.lower() in real_sentences)
    assert shared / sum(counts.values()) < 0.02
    assert all(len(s.split()) <= 8 for s in counts if s.lower() in real_sentences)
