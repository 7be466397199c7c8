"""One demo report, section by section, in CT-RATE's order: airways, mediastinum, lungs, pleura, abdomen, bones,
then the impression (docs/formats.md#demo-cohort).

Which optional statements appear, and how often an absent finding is denied, is set by the probabilities below;
they were tuned so that the default cohort sits inside every issue-14 band against the hand-labelled CT-RATE
reports (``python -m adaragct.analyze text.a=CT-CLIP/text_classifier/data/train.csv text.b=demo``) while
staying near the short end of the length band: every extra token costs demo training and generation time.
"""

from __future__ import annotations

import numpy as np

from adaragct.constants import FINDINGS
from adaragct.synthetic import phrasebook as pb
from adaragct.synthetic.grammar import ReportStyle, ReportWriter, draw_slots, expand

MEDIASTINUM: tuple[str, ...] = (
    "vessels",
    "heart",
    "pericardium",
    "coronary",
    "aorta",
    "thyroid",
    "nodes",
    "esophagus",
    "hila",
    "chest_wall",
)
LUNG_FINDINGS: tuple[str, ...] = (
    "Emphysema",
    "Lung nodule",
    "Lung opacity",
    "Consolidation",
    "Atelectasis",
    "Pulmonary fibrotic sequela",
    "Mosaic attenuation pattern",
    "Interlobular septal thickening",
    "Peribronchial thickening",
    "Bronchiectasis",
)
ABDOMEN: tuple[str, ...] = ("liver", "spleen", "adrenals", "kidneys", "pancreas", "abdomen")
# Impression order: mediastinal findings, then lung and pleura (each group in its own sentences).
MEDIASTINAL_FINDINGS: tuple[str, ...] = (
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Arterial wall calcification",
    "Lymphadenopathy",
    "Hiatal hernia",
    "Medical material",
)
CHEST_FINDINGS: tuple[str, ...] = (*LUNG_FINDINGS, "Pleural effusion")
# Probability that a statement is written (the denial of an absent finding, or an optional normal statement).
WRITE_PROB: dict[str, float] = {
    "airway": 0.9,
    "noncontrast": 0.35,
    "vessels": 0.8,
    "pericardium": 0.8,
    "coronary": 0.35,
    "aorta": 0.7,
    "thyroid": 0.45,
    "hila": 0.3,
    "chest_wall": 0.35,
    "nodes": 0.85,
    "esophagus": 0.85,
    "hernia_denial": 0.15,
    "lung_window": 0.45,
    "lung_denial": 0.06,
    "second_focus": 0.55,
    "lung_denial_list": 0.6,
    "lungs_second": 0.5,
    "lungs_mass": 0.45,
    "pleura": 0.85,
    "abdomen_organ": 0.38,
    "abdomen_incidental": 0.25,
    "bones_second": 0.5,
    "degenerative": 0.75,
    "recommendation": 0.35,
}
QUALIFIERS: tuple[str, ...] = (
    ", more prominent on the right",
    ", more prominent on the left",
    " in the peripheral zones",
    " in a peribronchovascular distribution",
    " in the subpleural area",
    ", predominantly in the dependent parts",
    " along the fissure",
)
QUALIFIER_PROB = 0.3
# Descriptive clauses for a lung finding's sentence: shape, margins, neighbours (they name no finding).
DETAILS: tuple[str, ...] = (
    ", [abutting|adjacent to|close to|extending towards] the [visceral pleura|major fissure|minor fissure|diaphragm|mediastinal pleura|chest wall]",
    ", [with|showing] [ill-defined|irregular|lobulated|smooth|sharp] [margins|borders|contours]",
    ", [mainly|mostly|predominantly] in the [anterior|posterior|lateral|medial|basal|apical] [segment|segments|portion]",
    ", [associated with|accompanied by] [slight|minimal|mild] volume loss",
    ", [new|unchanged|slightly more evident] compared with [the prior study|previous imaging|the earlier examination]",
)
DETAIL_PROB = 0.8
OLD_AGE = 60
SWAPS = 1.5  # mean number of neighbouring statements a report swaps in its radiologist's order
MAX_SECOND_FOCUS = 4  # a lung finding gets a second focus only in reports with at most 4 lung findings
MAX_REPORT_WORDS = 380  # ~540 tokens of the demo BPE (infer max_new_tokens is 600)


def _loosely(w: ReportWriter, order: list[str]) -> list[str]:
    """The radiologist's order with a few neighbours swapped: nobody follows their template exactly."""
    order = list(order)
    for _ in range(int(w.rng.poisson(SWAPS))):
        k = int(w.rng.integers(len(order) - 1))
        order[k], order[k + 1] = order[k + 1], order[k]
    return order


def _mediastinal(w: ReportWriter, item: str, positive: set[str]) -> list[str]:
    """The sentences of one mediastinal statement: its finding when labelled, else its (optional) normal form."""
    p = WRITE_PROB
    if item == "heart":
        return [
            w.positive("Cardiomegaly")
            if "Cardiomegaly" in positive
            else w.require(w.statement("normal:heart"))
        ]
    if item == "pericardium":
        if "Pericardial effusion" in positive:
            return [w.positive("Pericardial effusion")]
        return [w.statement("negative:Pericardial effusion")] if w.optional(p["pericardium"]) else []
    if item == "coronary":
        if "Coronary artery wall calcification" in positive:
            return [w.positive("Coronary artery wall calcification")]
        return (
            [w.statement("negative:Coronary artery wall calcification")] if w.optional(p["coronary"]) else []
        )
    if item == "aorta":
        out = [w.statement("normal:aorta")] if w.optional(p["aorta"]) else []
        if "Arterial wall calcification" in positive:
            out.append(w.positive("Arterial wall calcification"))
        return out
    if item == "nodes":
        if "Lymphadenopathy" in positive:
            return [w.positive("Lymphadenopathy")]
        return [w.statement("negative:Lymphadenopathy")] if w.optional(p["nodes"]) else []
    if item == "esophagus":
        if "Hiatal hernia" in positive:
            return [w.positive("Hiatal hernia")]
        out = [w.statement("normal:esophagus")] if w.optional(p["esophagus"]) else []
        return out + ([w.statement("negative:Hiatal hernia")] if w.optional(p["hernia_denial"]) else [])
    # vessels, thyroid, hila, chest wall: normal statements only
    return [w.statement(f"normal:{item}")] if w.optional(p[item]) else []


def _denial_list(w: ReportWriter, absent: list[str]) -> str:
    """One sentence denying 1-3 absent lung findings ("No nodule, consolidation or bronchiectasis is seen ...")."""
    k = min(len(absent), 1 + int(w.rng.integers(3)))
    names = [pb.DENIAL_NAMES[absent[i]] for i in sorted(w.rng.choice(len(absent), size=k, replace=False))]
    listed = names[0] if k == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return expand(
        pb.DENIAL_LIST[int(w.rng.integers(len(pb.DENIAL_LIST)))],
        w.rng,
        {**draw_slots(w.rng), "names": listed},
    )


def _lungs(w: ReportWriter, positive: set[str]) -> list[str]:
    """Lung parenchyma: each labelled finding in a shuffled order, some denials; normal lungs otherwise."""
    found = [f for f in LUNG_FINDINGS if f in positive]
    out = []
    for k in w.rng.permutation(len(found)):
        second = len(found) <= MAX_SECOND_FOCUS and w.optional(WRITE_PROB["second_focus"])
        for focus in range(1 + int(second)):  # a second focus elsewhere
            sentence = w.positive(found[k], second=focus > 0)
            if sentence.endswith(".") and w.chance(QUALIFIER_PROB):
                sentence = sentence[:-1] + _qualifier(w) + "."
            if sentence.endswith(".") and w.optional(DETAIL_PROB):
                sentence = sentence[:-1] + w.free(DETAILS).lower() + "."
            out.append(w.require(sentence))
    if not found:
        out.append(w.require(w.statement("normal:lungs")))
        if w.optional(WRITE_PROB["lungs_second"]):
            out.append(w.statement("normal:lungs_mass"))
    elif w.optional(WRITE_PROB["lungs_mass"]):
        out.append(w.statement("normal:lungs_mass"))
    absent = [f for f in LUNG_FINDINGS if f not in positive]
    if absent and w.optional(WRITE_PROB["lung_denial_list"]):
        out.append(_denial_list(w, absent))
    for finding in absent:
        if w.optional(WRITE_PROB["lung_denial"]):
            out.append(w.statement(f"negative:{finding}"))
    if out and w.optional(WRITE_PROB["lung_window"]):
        lead = w.statement("normal:lung_window").rstrip(".")
        first = f"{lead}, {out[0][0].lower()}{out[0][1:]}"
        out[0] = w.require(first) if out[0] in w.required else first
    return out


def _qualifier(w: ReportWriter) -> str:
    """A distribution clause for a lung finding (it names no other finding, so labels stay consistent)."""
    return QUALIFIERS[int(w.rng.integers(len(QUALIFIERS)))]


def _abdomen_and_bones(w: ReportWriter, age: int) -> list[str]:
    """Upper abdomen (organ statements in the radiologist's order, sometimes an incidental finding), bones."""
    picked = [a for a in _loosely(w, w.order("abdomen", ABDOMEN)) if w.optional(WRITE_PROB["abdomen_organ"])]
    out = [w.statement(f"normal:{a}") for a in picked or [ABDOMEN[int(w.rng.integers(len(ABDOMEN)))]]]
    if w.optional(WRITE_PROB["abdomen_incidental"]):
        out.insert(int(w.rng.integers(len(out) + 1)), w.free(pb.ABDOMEN_INCIDENTAL))
    if age >= OLD_AGE and w.optional(WRITE_PROB["degenerative"]):
        out.append(w.free(pb.BONES_OLD))
    else:
        out.append(w.statement("normal:bones"))
    if w.optional(WRITE_PROB["bones_second"]):
        out.append(w.statement("normal:vertebrae"))
    return out


def _impression_templates(w: ReportWriter, finding: str) -> tuple[str, ...]:
    """A finding's impression phrases; for medical material the one naming the device the findings described."""
    if finding == "Medical material":
        return (pb.IMPRESSION[finding][w.finding_template[finding]],)
    return pb.IMPRESSION[finding]


def _phrase_sentences(w: ReportWriter, phrases: list[str]) -> list[str]:
    """Impression phrases joined 1-3 to a sentence ("A, B and C."); a questioning phrase ends its sentence."""
    sentences: list[str] = []
    group: list[str] = []
    size = 1 + int(w.rng.integers(3))
    for k, phrase in enumerate(phrases):
        group.append(phrase[0].lower() + phrase[1:])
        if len(group) == size or phrase.endswith("?") or k == len(phrases) - 1:
            text = group[0] if len(group) == 1 else ", ".join(group[:-1]) + " and " + group[-1]
            sentences.append(text[0].upper() + text[1:] + ("" if text.endswith("?") else "."))
            group, size = [], 1 + int(w.rng.integers(3))
    return sentences


def _impression(w: ReportWriter, positive: set[str]) -> list[str]:
    """The findings named again in sentences of 1-3 phrases, sometimes a recommendation; a normal line otherwise.

    Mediastinal and lung findings go to separate sentences, as radiologists group them (and the rule labeler
    reads "pericardial effusion and ground-glass opacities" as a non-lung density).
    """
    if not positive:
        return [w.statement("normal:impression_normal")]
    sentences: list[str] = []
    for part in (MEDIASTINAL_FINDINGS, CHEST_FINDINGS):
        phrases = [w.free(_impression_templates(w, f), finding=f) for f in part if f in positive]
        sentences.extend(_phrase_sentences(w, phrases))
    if w.optional(WRITE_PROB["recommendation"]):
        sentences.append(w.free(pb.RECOMMENDATION))
    return sentences


def write_report(
    labels: np.ndarray, age: int, rng: np.random.Generator, style: ReportStyle
) -> tuple[str, str]:
    """Write (findings, impression) for one patient's 18 labels; the same labels give varied text per call."""
    positive = {f for f, y in zip(FINDINGS, labels, strict=True) if y}
    w = ReportWriter(rng, style)
    sentences = [w.statement("normal:airway")] if w.optional(WRITE_PROB["airway"]) else []
    if w.optional(WRITE_PROB["noncontrast"]):
        sentences.append(w.statement("normal:noncontrast"))
    for item in _loosely(w, w.order("mediastinum", MEDIASTINUM)):
        sentences.extend(_mediastinal(w, item, positive))
    if "Medical material" in positive:
        sentences.append(w.positive("Medical material"))
    sentences.extend(_lungs(w, positive))
    if "Pleural effusion" in positive:
        sentences.append(w.positive("Pleural effusion"))
    elif w.optional(WRITE_PROB["pleura"]):
        sentences.append(w.statement("negative:Pleural effusion"))
    sentences.extend(_abdomen_and_bones(w, age))
    sentences = list(dict.fromkeys(sentences))  # a duplicate draw (e.g. two bone sentences) is written once
    impression = _impression(w, positive)
    return " ".join(_fit(w, sentences, sum(len(s.split()) for s in impression))), " ".join(impression)


def _fit(w: ReportWriter, sentences: list[str], impression_words: int) -> list[str]:
    """Drop random optional statements until the report has at most MAX_REPORT_WORDS words.

    The longest reports (a verbose radiologist, many findings) would otherwise cost the demo model most of its
    sequence budget: report + prompt + up to 4 context spans must fit ``datamodule.max_length``, and a generated
    report ``generation.max_new_tokens`` (600).
    """
    words = impression_words + sum(len(s.split()) for s in sentences)
    if words <= MAX_REPORT_WORDS:
        return sentences
    optional = [k for k, s in enumerate(sentences) if s not in w.required]
    dropped: set[int] = set()
    for k in w.rng.permutation(optional).tolist():
        if words <= MAX_REPORT_WORDS:
            break
        dropped.add(k)
        words -= len(sentences[k].split())
    return [s for k, s in enumerate(sentences) if k not in dropped]
