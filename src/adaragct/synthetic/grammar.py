"""A report grammar of our own for the demo cohort (docs/formats.md#demo-cohort): CT-RATE-like reports written organ by organ.

Calibrated against the hand-labelled CT-RATE reports (issue 14; ``python -m adaragct.analyze text.a=... text.b=demo``):
CT-RATE reports are long (~276 words, ~21 sentences), about half of their sentences recur verbatim in another
report (templated normal statements) and the rest are free descriptions, so two random reports share little
(BLEU-4 ~0.15). The grammar reproduces that with *radiologists*: each report is written by one of a few, who has a
stock wording of every normal statement and an order of the mediastinal and abdominal statements; a normal
statement is written in the stock wording with probability ``stock_phrasing`` and freely composed from the
template otherwise (see :mod:`adaragct.synthetic.phrasebook`); abnormal findings are always freely composed, with
slots (lobe, size, degree, side) and distribution qualifiers. Radiologists also differ in verbosity (how many
optional statements they write), which gives CT-RATE's spread of report lengths; the spread matters, since two
reports of unequal length share few n-grams. :mod:`adaragct.synthetic.report` assembles the sections.

The text is consistent with the labels by construction: a finding is described in an abnormal sentence if and
only if its label is 1. :data:`FINDING_PATTERNS` is the contract the checks and tests use to verify that.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass

import numpy as np

from adaragct.synthetic import phrasebook as pb

LOBES = (
    "right upper lobe",
    "right middle lobe",
    "right lower lobe",
    "left upper lobe",
    "left lower lobe",
    "lingula",
    "posterobasal segment of the right lower lobe",
    "superior segment of the left lower lobe",
    "apical segment of the right upper lobe",
    "apicoposterior segment of the left upper lobe",
    "medial segment of the right middle lobe",
    "lateral basal segment of the left lower lobe",
    "anterior segment of the right upper lobe",
)
LOBES_PL = (
    "both upper lobes",
    "both lower lobes",
    "the upper lobes",
    "both lungs",
    "the lower lobes",
    "the right lung",
)
SIDES = ("right", "left", "bilateral")
DEGREES = ("minimal", "mild", "moderate", "marked", "slight")
STATIONS = (
    "subcarinal",
    "right paratracheal",
    "left paratracheal",
    "prevascular",
    "right hilar",
    "left hilar",
    "aortopulmonary",
    "lower paratracheal",
)
AORTIC_PARTS = (
    "thoracic aorta",
    "aortic arch",
    "descending aorta",
    "ascending aorta",
    "aortic arch and descending aorta",
)
SIZES_MM = ("3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "14", "15", "17", "18", "21", "25")
NODE_SIZES_MM = ("11", "12", "13", "14", "15", "16", "18", "20", "22", "25")
SEEN = ("is seen", "is noted", "is present", "is observed", "is identified")
SEEN_PL = ("are seen", "are noted", "are present", "are observed", "are identified")

# fmt: off
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
_PATTERN_RES = {f: tuple(re.compile(p, re.IGNORECASE) for p in pats) for f, pats in FINDING_PATTERNS.items()}


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


@functools.cache
def _parse(template: str) -> tuple:
    """Parse ``[a|b]`` alternatives (nested) into a tree: a sequence of strings and tuples of sequences."""
    pos = 0

    def sequence() -> tuple:
        nonlocal pos
        items: list = []
        start = pos
        while pos < len(template) and template[pos] not in "|]":
            if template[pos] == "[":
                items.append(template[start:pos])
                pos += 1
                options = [sequence()]
                while template[pos] == "|":
                    pos += 1
                    options.append(sequence())
                pos += 1  # the closing "]"
                items.append(tuple(options))
                start = pos
            else:
                pos += 1
        items.append(template[start:pos])
        return tuple(i for i in items if i != "")

    tree = sequence()
    if pos != len(template):
        raise ValueError(f"unbalanced brackets at {pos} in template {template!r}")
    return tree


def _sample(tree: tuple, rng: np.random.Generator) -> str:
    return "".join(
        item if isinstance(item, str) else _sample(item[int(rng.integers(len(item)))], rng) for item in tree
    )


def draw_slots(rng: np.random.Generator) -> dict[str, str]:
    """One value for every ``{slot}`` a template may use (a sentence draws them all; most use a few)."""
    deg = _choice(rng, DEGREES)
    return {
        "deg": deg,
        "Deg": deg.capitalize(),
        "side": _choice(rng, SIDES),
        "side_lr": _choice(rng, ("right", "left")),
        "lobe": _choice(rng, LOBES),
        "lobes_pl": _choice(rng, LOBES_PL),
        "mm": _choice(rng, SIZES_MM),
        "node_mm": _choice(rng, NODE_SIZES_MM),
        "station": _choice(rng, STATIONS),
        "aortic_part": _choice(rng, AORTIC_PARTS),
        "seen": _choice(rng, SEEN),
        "seen_pl": _choice(rng, SEEN_PL),
    }


def expand(template: str, rng: np.random.Generator, slots: dict[str, str] | None = None) -> str:
    """One sentence from a template: pick every ``[a|b]`` alternative, fill ``{slot}``s, tidy, capitalise."""
    text = _sample(_parse(template), rng).format_map(slots if slots is not None else draw_slots(rng))
    text = re.sub(r"\s+", " ", text).replace(" ,", ",").strip()
    return text[:1].upper() + text[1:]


def _templates(key: str) -> tuple[str, ...]:
    kind, _, name = key.partition(":")
    return {"normal": pb.NORMAL, "negative": pb.NEGATIVE}[kind][name]


VERBOSITY = (0.25, 1.95)  # the tersest and the most verbose radiologist's factor on optional statements
REPORT_JITTER = 0.35  # log-normal spread of one report's verbosity around its radiologist's
LEAD_PROB = 0.15
TAIL_PROB = 0.2


def _statement(key: str, rng: np.random.Generator) -> str:
    """A statement composed from its templates, sometimes with a habitual lead-in or tail."""
    text = expand(_choice(rng, _templates(key)), rng)
    if key == "normal:lung_window" or not text.endswith("."):
        return text
    draw = rng.random()
    if draw < TAIL_PROB:
        tail = _sample(_parse(_choice(rng, pb.TAILS)), rng)
        return text if tail.strip() in text else text[:-1] + tail + "."
    if draw < TAIL_PROB + LEAD_PROB:
        lead = _sample(_parse(_choice(rng, pb.LEADS)), rng)
        return text if lead.lower() in text.lower() else f"{lead}, {text[0].lower()}{text[1:]}"
    return text


@functools.lru_cache(maxsize=4096)
def _stock(seed: int, radiologist: int, key: str) -> str:
    """A radiologist's stock wording of one statement: the same sentence in every report they write."""
    return _statement(key, np.random.default_rng([seed, radiologist, zlib.crc32(key.encode())]))


@dataclass(frozen=True)
class ReportStyle:
    """Who writes the reports: ``radiologists`` styles, each with stock wordings used ``stock_phrasing`` of the time.

    Built from the ``data.generator`` config; ``seed`` fixes every radiologist's stock wordings and section order.
    """

    seed: int
    radiologists: int
    stock_phrasing: float

    def verbosity(self, radiologist: int) -> float:
        """How much the radiologist writes beyond the essentials (CT-RATE's report lengths vary ~5-fold)."""
        levels = np.linspace(*VERBOSITY, self.radiologists)
        return float(
            levels[np.random.default_rng([self.seed, 0]).permutation(self.radiologists)[radiologist]]
        )

    def order(self, radiologist: int, group: str, items: tuple[str, ...]) -> list[str]:
        """The radiologist's fixed order of a group of statements."""
        rng = np.random.default_rng([self.seed, radiologist, zlib.crc32(group.encode())])
        return [items[i] for i in rng.permutation(len(items))]


class ReportWriter:
    """Writes the sentences of one report: one radiologist, one random stream, the slots of each finding."""

    def __init__(self, rng: np.random.Generator, style: ReportStyle) -> None:
        self.rng = rng
        self.style = style
        self.radiologist = int(rng.integers(style.radiologists))
        self.verbosity = style.verbosity(self.radiologist) * float(
            np.exp(REPORT_JITTER * rng.standard_normal())
        )
        self.finding_slots: dict[str, dict[str, str]] = {}
        self.finding_template: dict[str, int] = {}
        self.required: set[str] = set()  # sentences a length cap must keep (findings, heart, lungs)

    def chance(self, p: float) -> bool:
        """True with probability ``p`` (one draw of the report's stream)."""
        return bool(self.rng.random() < p)

    def optional(self, p: float) -> bool:
        """Whether to write an optional statement of base probability ``p``, scaled by this report's verbosity."""
        return self.chance(min(1.0, p * self.verbosity))

    def statement(self, key: str) -> str:
        """A normal or negated statement (``normal:heart``, ``negative:Emphysema``): stock or freely composed."""
        if self.chance(self.style.stock_phrasing):
            return _stock(self.style.seed, self.radiologist, key)
        return _statement(key, self.rng)

    def positive(self, finding: str, second: bool = False) -> str:
        """A freely composed abnormal sentence naming ``finding``; its slots are kept for the impression.

        ``second``: a second focus of the same finding, written with another template than the first.
        """
        templates = pb.POSITIVE[finding]
        k = int(self.rng.integers(len(templates)))
        if second and len(templates) > 1 and k == self.finding_template.get(finding):
            k = (k + 1 + int(self.rng.integers(len(templates) - 1))) % len(templates)
        slots = draw_slots(self.rng)
        self.finding_slots[finding], self.finding_template[finding] = slots, k
        return self.require(expand(templates[k], self.rng, slots))

    def require(self, sentence: str) -> str:
        """Mark ``sentence`` as one a length cap must not drop; returns it."""
        self.required.add(sentence)
        return sentence

    def free(self, templates: tuple[str, ...], finding: str | None = None) -> str:
        """A freely composed sentence from ``templates`` (with ``finding``'s slots when it has some)."""
        slots = self.finding_slots.get(finding) if finding else None
        return expand(_choice(self.rng, templates), self.rng, slots)

    def order(self, group: str, items: tuple[str, ...]) -> list[str]:
        """This report's radiologist's order of a group of statements."""
        return self.style.order(self.radiologist, group, items)


def asserted_findings(sentence: str, normal: bool) -> set[str]:
    """Findings a sentence asserts: it is abnormal (``normal`` False) and matches the finding's patterns."""
    if normal:
        return set()
    return {f for f, regexes in _PATTERN_RES.items() if all(r.search(sentence) for r in regexes)}
