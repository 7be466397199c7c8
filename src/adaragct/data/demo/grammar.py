"""A report grammar of our own for the demo cohort (SPEC 2.3): CT-RATE-like reports written organ by organ.

Every finding has several abnormal phrasings with slots (lobe, side, size, degree) and several negated ones
(including CT-RATE's post-negations, "X was not observed"); normal organs have their own phrasings. The text is
consistent with the labels by construction: a finding is described in an abnormal sentence if and only if its
label is 1. :data:`FINDING_PATTERNS` is the contract the checks and tests use to verify that.

Sizes and slot values are coarse on purpose: the cohort should have a few thousand unique sentences (cheap to
encode for the sentence bank) yet enough combinations that a tiny model cannot memorise whole reports.
"""

from __future__ import annotations

import re

import numpy as np

from adaragct.constants import FINDINGS

LOBES = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
    "lingula",
    "right lower lobe posterobasal segment",
    "left lower lobe superior segment",
    "right upper lobe apical segment",
    "left upper lobe apicoposterior segment",
    "right middle lobe medial segment",
)
SIDES = ("right", "left", "bilateral")
DEGREES = ("minimal", "mild", "moderate", "marked")
STATIONS = ("subcarinal", "right paratracheal", "prevascular", "right hilar", "left hilar", "aortopulmonary")

# fmt: off
# Abnormal phrasings per finding; {lobe} {side} {deg} {mm} {station} are slots.
POSITIVE: dict[str, tuple[str, ...]] = {
    "Medical material": (
        "A central venous catheter is observed with its tip in the superior vena cava.",
        "Sternotomy wires are observed.", "A port catheter extending to the right atrium is observed.",
        "A nasogastric tube is present in the esophagus.", "A pacemaker with leads in the right heart is seen."),
    "Arterial wall calcification": (
        "Atherosclerotic calcifications are seen in the thoracic aorta.",
        "Calcific atheroma plaques are observed in the aortic arch.",
        "{Deg} calcified plaques are present in the wall of the descending aorta.",
        "Aortic wall calcifications are noted."),
    "Cardiomegaly": (
        "{Deg} cardiomegaly is observed.", "The heart is enlarged ({deg} cardiomegaly).",
        "Heart size is increased in favor of cardiomegaly."),
    "Pericardial effusion": (
        "Pericardial effusion measuring {mm} mm is observed.", "{Deg} pericardial effusion is present.",
        "Pericardial fluid reaching {mm} mm in thickness is seen."),
    "Coronary artery wall calcification": (
        "Calcified atherosclerotic plaques are observed in the coronary arteries.",
        "Coronary artery wall calcifications are present.", "{Deg} coronary artery calcification is noted."),
    "Hiatal hernia": (
        "A {deg} hiatal hernia is observed.", "Hiatal hernia is present.",
        "A sliding hiatal hernia is seen at the esophagogastric junction."),
    "Lymphadenopathy": (
        "Enlarged lymph nodes measuring up to {mm} mm are observed in the {station} region.",
        "Lymphadenopathy with a short axis of {mm} mm is seen in the {station} station.",
        "A pathologically enlarged {station} lymph node of {mm} mm is noted."),
    "Emphysema": (
        "Centrilobular emphysema is observed in {lobes_pl}.", "Paraseptal emphysema is seen in both lungs.",
        "{Deg} emphysematous changes are present in both lungs.", "Emphysema is seen, most prominent in {lobes_pl}."),
    "Atelectasis": (
        "Subsegmental atelectasis is observed in the {lobe}.", "Linear atelectasis is seen in the {lobe}.",
        "Atelectatic changes are present in the {lobe}.", "{Deg} atelectasis is noted in the {lobe}."),
    "Lung nodule": (
        "A {mm} mm nodule is observed in the {lobe}.", "A few nonspecific nodules are seen, the largest {mm} mm in the {lobe}.",
        "A solid nodule measuring {mm} mm is present in the {lobe}.", "A {mm} mm subpleural nodule is noted in the {lobe}."),
    "Lung opacity": (
        "Ground-glass opacities are observed in the {lobe}.", "Patchy ground-glass densities are seen in both lungs.",
        "{Deg} opacity is present in the {lobe}.", "Ground-glass areas are noted in the {lobe}."),
    "Pulmonary fibrotic sequela": (
        "Fibrotic sequelae are observed in the {lobe}.", "Linear fibrotic bands are seen in the {lobe}.",
        "Sequela fibrotic densities are present in both lung apices.", "{Deg} fibrotic changes are noted in the {lobe}."),
    "Pleural effusion": (
        "{Side_cap} pleural effusion measuring {mm} mm is observed.", "{Deg} {side} pleural effusion is present.",
        "Pleural effusion reaching {mm} mm in thickness is seen on the {side_lr} side."),
    "Mosaic attenuation pattern": (
        "A mosaic attenuation pattern is observed in both lungs.", "Mosaic attenuation is seen, suggesting small airway disease.",
        "Areas of mosaic attenuation are present in {lobes_pl}."),
    "Peribronchial thickening": (
        "Peribronchial thickening is observed in {lobes_pl}.", "{Deg} peribronchial wall thickening is present.",
        "Peribronchial thickening is seen bilaterally."),
    "Consolidation": (
        "Consolidation is observed in the {lobe}.", "A consolidation area with air bronchograms is seen in the {lobe}.",
        "Patchy consolidation is present in the {lobe}.", "{Deg} consolidation is noted in the {lobe}, infection?"),
    "Bronchiectasis": (
        "Cylindrical bronchiectasis is observed in the {lobe}.", "Bronchiectatic changes are seen in {lobes_pl}.",
        "{Deg} bronchiectasis is present in both lower lobes."),
    "Interlobular septal thickening": (
        "Interlobular septal thickening is observed in both lungs.", "Smooth interlobular septal thickenings are seen in {lobes_pl}.",
        "Septal thickening is present in the {lobe}."),
}

# Negated phrasings (pre- and post-negation); used when the label is 0, each with a probability per report.
NEGATIVE: dict[str, tuple[str, ...]] = {
    "Pericardial effusion": ("Pericardial effusion-thickening was not observed.", "No pericardial effusion is seen.",
                             "Pericardial effusion was not detected."),
    "Coronary artery wall calcification": ("No coronary artery calcification is seen.",
                                           "Coronary artery calcification was not observed."),
    "Cardiomegaly": ("Heart size is normal.", "The heart contour and size are normal.", "Heart dimensions are within normal limits."),
    "Arterial wall calcification": ("Thoracic aorta diameter is normal.", "The calibre of the thoracic aorta is natural.",
                                    "The thoracic aorta is of normal calibre."),
    "Lymphadenopathy": ("No enlarged lymph nodes were detected in the mediastinum or hila.",
                        "No lymph nodes of pathological size were detected in prevascular, paratracheal or subcarinal regions.",
                        "No mediastinal or hilar lymphadenopathy is seen."),
    "Hiatal hernia": ("Thoracic esophagus calibration is normal.", "The esophagus is of normal calibre and no wall thickening was detected.",
                      "No hiatal hernia is observed."),
    "Emphysema": ("No emphysema is seen.", "Emphysematous changes were not observed."),
    "Atelectasis": ("No atelectasis is seen.", "Atelectasis was not detected."),
    "Pulmonary fibrotic sequela": ("No fibrotic sequelae are observed.",),
    "Mosaic attenuation pattern": ("No mosaic attenuation pattern was observed.",),
    "Peribronchial thickening": ("No peribronchial thickening is seen.", "Bronchial walls are of normal thickness."),
    "Interlobular septal thickening": ("Interlobular septal thickening was not detected.",),
    "Lung nodule": ("No nodule was detected in either lung.", "Lung nodule was not observed."),
    "Consolidation": ("No consolidation was detected.", "No consolidation or infiltration is observed."),
    "Lung opacity": ("No ground-glass opacity was detected.", "Ground-glass opacity was not observed."),
    "Pleural effusion": ("Pleural effusion-thickening was not observed.", "No pleural effusion was detected.",
                         "There is no pleural effusion or pneumothorax."),
    "Bronchiectasis": ("Bronchiectasis was not observed.", "No bronchiectasis is seen."),
}

MEDIASTINUM_NORMAL = ("Mediastinal main vascular structures are normal.",
                      "Calibration of thoracic main vascular structures is natural.",
                      "Mediastinal structures are evaluated as natural.")
AIRWAY_NORMAL = ("Trachea and both main bronchi are open.", "The trachea and main bronchi are patent.",
                 "Trachea, both main bronchi are open and no obstructive lesion was observed.")
LUNG_NORMAL = ("Aeration of both lungs is normal and no nodular or infiltrative lesion was detected.",
               "No mass or infiltrative lesion was detected in both lungs.", "Both lungs are clear.")
BONES_YOUNG = ("Bone structures in the study area are natural.", "Vertebral corpus heights are preserved.",
               "No lytic-destructive lesion was detected in bone structures.")
BONES_OLD = ("Degenerative changes are observed in the thoracic vertebrae.", "Osteophytes are present at the vertebral corners.",
             "Vertebral corpus heights are preserved.")
ABDOMEN = ("Upper abdominal organs included in the sections are normal.", "No space-occupying lesion was detected in the liver.",
           "Bilateral adrenal glands are normal.", "The spleen is of normal size.",
           "Bilateral adrenal glands were normal and no space-occupying lesion was detected.",
           "The liver and spleen are of normal size and density in the sections.")
ABDOMEN_INCIDENTAL = ("Hepatosteatosis is observed.", "A simple cortical cyst is seen in the left kidney.",
                      "A calcified gallstone is noted.")
IMPRESSION_NORMAL = ("Thoracic CT examination within normal limits.", "No significant pathology was detected.",
                     "Normal chest CT.")
IMPRESSION: dict[str, tuple[str, ...]] = {
    "Medical material": ("medical material in place", "central catheter in place"),
    "Arterial wall calcification": ("aortic atherosclerosis", "aortic wall calcification"),
    "Cardiomegaly": ("cardiomegaly",),
    "Pericardial effusion": ("pericardial effusion",),
    "Coronary artery wall calcification": ("coronary artery calcification", "coronary atherosclerosis"),
    "Hiatal hernia": ("hiatal hernia",),
    "Lymphadenopathy": ("mediastinal lymphadenopathy",),
    "Emphysema": ("emphysema", "emphysematous changes"),
    "Atelectasis": ("atelectasis", "subsegmental atelectasis"),
    "Lung nodule": ("lung nodule", "nonspecific lung nodules"),
    "Lung opacity": ("ground-glass opacities",),
    "Pulmonary fibrotic sequela": ("fibrotic sequelae",),
    "Pleural effusion": ("pleural effusion",),
    "Mosaic attenuation pattern": ("mosaic attenuation",),
    "Peribronchial thickening": ("peribronchial thickening",),
    "Consolidation": ("consolidation", "pneumonic consolidation"),
    "Bronchiectasis": ("bronchiectasis",),
    "Interlobular septal thickening": ("interlobular septal thickening",),
}

# A finding is asserted by a sentence when every regex of its entry matches and tag_sentence calls it abnormal.
FINDING_PATTERNS: dict[str, tuple[str, ...]] = {
    "Medical material": (r"catheter|sternotomy|pacemaker|tube\b|material",),
    "Arterial wall calcification": (r"aort", r"calcif|atherom|atheroscl|plaque"),
    "Cardiomegaly": (r"cardiomegaly",),
    "Pericardial effusion": (r"pericardial (?:effusion|fluid)",),
    "Coronary artery wall calcification": (r"coronary",),
    "Hiatal hernia": (r"hernia",),
    "Lymphadenopathy": (r"lymph",),
    "Emphysema": (r"emphysem",),
    "Atelectasis": (r"atelecta",),
    "Lung nodule": (r"nodul",),
    "Lung opacity": (r"opacit|ground-glass",),
    "Pulmonary fibrotic sequela": (r"fibrotic|sequela",),
    "Pleural effusion": (r"pleural effusion",),
    "Mosaic attenuation pattern": (r"mosaic",),
    "Peribronchial thickening": (r"peribronchial",),
    "Consolidation": (r"consolidation",),
    "Bronchiectasis": (r"bronchiecta",),
    "Interlobular septal thickening": (r"\bseptal",),
}
# fmt: on

# Section order: mediastinum/heart/aorta, esophagus, airways, lungs, pleura, devices, bones, abdomen.
SECTIONS: tuple[tuple[str, ...], ...] = (
    (
        "Cardiomegaly",
        "Pericardial effusion",
        "Coronary artery wall calcification",
        "Arterial wall calcification",
        "Lymphadenopathy",
    ),
    ("Hiatal hernia",),
    ("Peribronchial thickening", "Bronchiectasis"),
    (
        "Emphysema",
        "Lung nodule",
        "Lung opacity",
        "Consolidation",
        "Atelectasis",
        "Pulmonary fibrotic sequela",
        "Mosaic attenuation pattern",
        "Interlobular septal thickening",
    ),
    ("Pleural effusion",),
    ("Medical material",),
)
NEGATIVE_PROB = 0.65
# Optional distribution clause for lung findings (mentions no other finding, so labels stay consistent).
QUALIFIERS = (
    ", more prominent on the right",
    ", more prominent on the left",
    " in the peripheral zones",
    " in a peribronchovascular distribution",
    " in the subpleural area",
    ", stable in appearance",
)
QUALIFIER_PROB = 0.35
LUNG_SECTION = 3  # chance that an absent finding with negated phrasings is written out
_PATTERN_RES = {f: tuple(re.compile(p, re.IGNORECASE) for p in pats) for f, pats in FINDING_PATTERNS.items()}


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(template: str, rng: np.random.Generator) -> str:
    deg = _choice(rng, DEGREES)
    side = _choice(rng, SIDES)
    slots = {
        "deg": deg,
        "Deg": deg.capitalize(),
        "side": side,
        "Side_cap": side.capitalize(),
        "side_lr": _choice(rng, ("right", "left")),
        "lobe": _choice(rng, LOBES),
        "lobes_pl": _choice(rng, ("both upper lobes", "both lower lobes", "the upper lobes", "both lungs")),
        "mm": str(_choice(rng, ("4", "5", "6", "8", "10", "12", "15", "18", "22"))),
        "station": _choice(rng, STATIONS),
    }
    return template.format(**slots)


def _section(
    findings: tuple[str, ...], positive: set[str], rng: np.random.Generator, qualify: bool
) -> list[str]:
    out: list[str] = []
    for finding in findings:
        if finding in positive:
            sentence = _fill(_choice(rng, POSITIVE[finding]), rng)
            if qualify and sentence.endswith(".") and rng.random() < QUALIFIER_PROB:
                sentence = sentence[:-1] + _choice(rng, QUALIFIERS) + "."
            out.append(sentence)
        elif finding in NEGATIVE and rng.random() < NEGATIVE_PROB:
            out.append(_choice(rng, NEGATIVE[finding]))
    return out


def _impression(positive: list[str], rng: np.random.Generator) -> list[str]:
    if not positive:
        return [_choice(rng, IMPRESSION_NORMAL)]
    phrases = [_choice(rng, IMPRESSION[f]) for f in positive]
    sentences = []
    for i in range(0, len(phrases), 2):  # two findings per impression sentence
        text = " and ".join(phrases[i : i + 2])
        sentences.append(text[0].upper() + text[1:] + ".")
    return sentences


def write_report(labels: np.ndarray, age: int, rng: np.random.Generator) -> tuple[str, str]:
    """Write (findings, impression) for one patient's 18 labels; the same labels give varied text per call."""
    positive = {f for f, y in zip(FINDINGS, labels, strict=True) if y}
    sentences: list[str] = []
    for i, findings in enumerate(SECTIONS):
        part = _section(findings, positive, rng, qualify=i == LUNG_SECTION)
        if i == 0 and not {"Cardiomegaly"} & positive and not any("heart" in s.lower() for s in part):
            part.insert(0, _choice(rng, NEGATIVE["Cardiomegaly"]))
        if i == 0 and rng.random() < 0.6:
            part.insert(0, _choice(rng, MEDIASTINUM_NORMAL))
        if i == 2 and rng.random() < 0.8:
            part.insert(0, _choice(rng, AIRWAY_NORMAL))
        if i == LUNG_SECTION and not positive & set(findings):
            part.insert(0, _choice(rng, LUNG_NORMAL))
        sentences.extend(part)
    bones = BONES_OLD if age >= 60 else BONES_YOUNG
    sentences.extend(_choice(rng, bones) for _ in range(1 + int(rng.random() < 0.4)))
    sentences.extend(_choice(rng, ABDOMEN) for _ in range(1 + int(rng.random() < 0.5)))
    if rng.random() < 0.15:
        sentences.append(_choice(rng, ABDOMEN_INCIDENTAL))
    sentences = list(dict.fromkeys(sentences))  # a duplicate draw (e.g. two bone sentences) is written once
    ordered_positive = [f for section in SECTIONS for f in section if f in positive]
    return " ".join(sentences), " ".join(_impression(ordered_positive, rng))


def asserted_findings(sentence: str, normal: bool) -> set[str]:
    """Findings a sentence asserts: it is abnormal (``normal`` False) and matches the finding's patterns."""
    if normal:
        return set()
    return {f for f, regexes in _PATTERN_RES.items() if all(r.search(sentence) for r in regexes)}
