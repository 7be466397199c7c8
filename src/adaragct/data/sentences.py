"""Organ-indexed report sentences (docs/formats.md#organs-and-sentences): split reports offline, tag each sentence with organs and normality.

The sentence bank, the oracle contexts and the adaptive retriever all index report sentences by organ. A report is
split with pysbd (rule-based, no downloads; it keeps ``1.5 cm``, ``3x4 mm`` and ``Dr.`` intact), then every
sentence is tagged by keyword tables: the paper's organs (lung, heart, esophagus, aorta, other) and the optional
RadGenome-ChestCT regions. The normal/abnormal flag is rule-based with CT-RATE's post-negations
("Pleural effusion-thickening was not observed") as well as pre-negations ("No nodule ...").

Keywords are regexes matched on lower-cased text with word boundaries at the start. *Weak* lung keywords
(``nodule``, ``lobe``, ``opacity`` ...) also describe other organs ("a nodule in the left lobe of the thyroid"),
so they count only when no non-lung anatomical keyword is present.

Run over a CSV of reports to see the organ distribution::

    python -m adaragct.data.sentences --report CT-CLIP/text_classifier/data/train.csv
"""

from __future__ import annotations

import argparse
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from adaragct.constants import ORGANS, RADGENOME_ORGANS

INDEXED_ORGANS: tuple[str, ...] = tuple(o for o in ORGANS if o != "other")


class Keyword(NamedTuple):
    """One keyword: a regex fragment, the paper organ it votes for, its RadGenome region, and weakness."""

    pattern: str
    organ: str
    region: str
    weak: bool = False


# fmt: off
KEYWORDS: tuple[Keyword, ...] = (
    # lung parenchyma (strong: unambiguous lung words and lung findings)
    Keyword(r"lungs?\b", "lung", "lung"),
    Keyword(r"pulmonary(?!\s+(?:arter|trunk|vein|vascul))", "lung", "lung"),
    Keyword(r"emphysem", "lung", "lung"), Keyword(r"bullae?\b|bullous", "lung", "lung"),
    Keyword(r"atelecta", "lung", "lung"), Keyword(r"consolidat", "lung", "lung"),
    Keyword(r"ground[- ]glass", "lung", "lung"), Keyword(r"fibro(?:sis|tic)", "lung", "lung"),
    Keyword(r"mosaic", "lung", "lung"), Keyword(r"(?:interlobular\s+)?septal", "lung", "lung"),
    Keyword(r"pneumon", "lung", "lung"), Keyword(r"honeycomb", "lung", "lung"),
    Keyword(r"air[- ]trapping", "lung", "lung"), Keyword(r"aeration", "lung", "lung"),
    Keyword(r"(?:sub)?segment", "lung", "lung", weak=True),
    Keyword(r"nodul", "lung", "lung", weak=True), Keyword(r"lob(?:e|es|ar)\b", "lung", "lung", weak=True),
    Keyword(r"opacit", "lung", "lung", weak=True), Keyword(r"infiltrat", "lung", "lung", weak=True),
    Keyword(r"apex|apical|basal", "lung", "lung", weak=True), Keyword(r"granuloma", "lung", "lung", weak=True),
    # airways
    Keyword(r"trachea", "lung", "trachea and bronchi"), Keyword(r"(?:peri)?bronch", "lung", "trachea and bronchi"),
    Keyword(r"airways?", "lung", "trachea and bronchi"),
    # pleura
    Keyword(r"pleura", "lung", "pleura"), Keyword(r"(?:hydro|pneumo)thorax", "lung", "pleura"),
    Keyword(r"(?<!pericardial )(?<!pericardial-)effusion", "lung", "pleura"),
    # heart
    Keyword(r"heart|cardi(?:ac|omegaly|othoracic)|ctr\b", "heart", "heart"),
    Keyword(r"pericardi", "heart", "heart"), Keyword(r"coronary", "heart", "heart"),
    Keyword(r"atri(?:um|a|al)\b|ventric", "heart", "heart"),
    Keyword(r"(?:mitral|aortic|tricuspid)\s+valve", "heart", "heart"),
    # aorta and great vessels
    Keyword(r"aort(?:a|ic)(?!\s+valve)", "aorta", "mediastinum"),
    Keyword(r"(?<!coronary )arter(?:y|ies|ial)", "aorta", "mediastinum"),
    Keyword(r"atheroscl|atherom|vascular", "aorta", "mediastinum"),
    Keyword(r"vena\s+cava|aneurysm", "aorta", "mediastinum"),
    # esophagus
    Keyword(r"o?esophag", "esophagus", "esophagus"), Keyword(r"hiatal|hiatus", "esophagus", "esophagus"),
    # other: mediastinum and lymph nodes
    Keyword(r"mediastin", "other", "mediastinum"), Keyword(r"lymph|laps?\b", "other", "mediastinum"),
    Keyword(r"hilar|hilum|subcarinal|paratracheal|prevascular|thym", "other", "mediastinum"),
    # other: thyroid, breast, abdomen, bone, soft tissue, devices
    Keyword(r"thyroid", "other", "thyroid"),
    Keyword(r"breast|mammar|gynecomast", "other", "breast"),
    Keyword(r"liver|hepat|spleen|splen|kidney|renal|adrenal|gallbladder|gall\s+bladder|pancrea|bile|biliary"
            r"|abdom|stomach|gastric|bowel|colon|periportal|cholecyst", "other", "abdomen"),
    Keyword(r"bone|osseous|vertebra|ribs?\b|spin(?:e|al)|scoliosis|kyphosis|osteo|spondyl|stern(?:um|al)"
            r"|clavicle|scapula|lytic|sclerotic|fracture|thoracic\s+spine|intercostal", "other", "bone"),
    Keyword(r"subcutaneous|skin|soft\s+tissue|axilla|muscle", "other", "other"),
    Keyword(r"catheter|pacemaker|stent|sutures?\b|clips?\b|prosthe|port\b|tube\b|graft|sternotomy|wires?\b",
            "other", "other"),
)

# Negation cues. Pre-negations negate what follows them in the clause ("No nodule", "without effusion");
# post-negations negate the whole clause ("Pleural effusion-thickening was not observed").
PRE_NEGATIONS: tuple[str, ...] = (
    r"no", r"without", r"free\s+of", r"negative\s+for", r"absence\s+of", r"neither", r"nor", r"none\s+of",
)
POST_NEGATIONS: tuple[str, ...] = (
    r"not", r"n't", r"absent", r"ruled\s+out", r"excluded", r"none",
)
# "not exceeding 5 mm" and "did not reach pathological size" do not deny the finding they describe.
NEGATION_EXCEPTIONS: tuple[str, ...] = (r"not\s+exceed\w*", r"no\s+longer", r"not\s+only")

# Abnormality cues: findings, devices, change words, measurements. A clause with a non-negated cue is abnormal.
ABNORMAL_KEYWORDS: tuple[str, ...] = (
    r"nodul\w*", r"mass(?:es)?\b", r"lesions?\b", r"opacit\w*", r"ground[- ]glass", r"consolidat\w*",
    r"atelecta\w*", r"emphysem\w*", r"bullae?\b", r"bullous", r"bronchiecta\w*", r"fibro(?:sis|tic)",
    r"sequela\w*", r"scar\w*", r"reticula\w*", r"honeycomb\w*", r"thicken\w*", r"thickness\s+increase",
    r"effusion", r"fluid", r"(?:hydro|pneumo)thorax", r"infiltrat\w*", r"pneumon\w*", r"infect\w*",
    r"inflam\w*", r"o?edema\w*", r"calcif\w*", r"atherom\w*", r"atheroscl\w*", r"plaques?\b", r"hernia\w*",
    r"lymphadenopath\w*", r"pathological\s+(?:size|dimension)\w*", r"enlarge\w*", r"larger", r"elevat\w*",
    r"decrease\w*", r"dilat\w*", r"widen\w*", r"aneurysm\w*", r"ectasi\w*", r"ectatic", r"cardiomegaly",
    r"mosaic", r"air[- ]trapping", r"granuloma\w*", r"cysts?\b", r"cystic", r"hypodens\w*", r"hyperdens\w*",
    r"lytic", r"sclerotic", r"fractur\w*", r"degenerat\w*", r"osteophyt\w*", r"spondylo\w*", r"scoliosis",
    r"kyphosis", r"collapse\w*", r"catheter\w*", r"tubes?\b", r"stents?\b", r"pacemaker\w*", r"sutures?\b",
    r"clips?\b", r"prosthe\w*", r"sternotomy", r"operat\w*", r"resect\w*", r"metasta\w*", r"tumou?r\w*",
    r"malignan\w*", r"carcinoma", r"neoplas\w*", r"hepatomegaly", r"splenomegaly", r"stones?\b",
    r"steatosis", r"free\s+air", r"irregular\w*", r"lobulat\w*", r"deviat\w*", r"compatible\s+with",
    r"consistent\s+with", r"suspicious", r"in\s+favor\s+of", r"pathologic\w*", r"calcul\w*", r"increase\w*",
    r"cannula\w*", r"material", r"los[st]\b", r"prominen\w*", r"embol\w*", r"filling\s+defect\w*", r"stenos\w*",
    r"occlu\w*", r"wider", r"hypertroph\w*", r"\d+(?:[.,]\d+)?\s*(?:x\s*\d+(?:[.,]\d+)?\s*)?(?:mm|cm)",
)

# Cues that state normality; a sentence with no abnormal cue is normal whether or not one of these is present,
# they are listed so that readers (and tests) see the intended vocabulary.
NORMAL_KEYWORDS: tuple[str, ...] = (
    r"normal", r"within\s+normal\s+limits", r"unremarkable", r"natural", r"patent", r"open", r"preserved",
    r"intact", r"clear", r"usual",
)

HEADERS: tuple[str, ...] = ("findings", "impression", "impressions", "conclusion", "conclusions", "comparison",
                            "technique", "clinical information", "result", "results")
# fmt: on

# Paper organ -> its keyword regexes (for readers and for organ_of_text users).
ORGAN_KEYWORDS: dict[str, tuple[str, ...]] = {
    organ: tuple(k.pattern for k in KEYWORDS if k.organ == organ) for organ in ORGANS
}
# RadGenome region -> its keyword regexes.
RADGENOME_KEYWORDS: dict[str, tuple[str, ...]] = {
    region: tuple(k.pattern for k in KEYWORDS if k.region == region) for region in RADGENOME_ORGANS
}

_KEYWORD_RES = tuple(re.compile(r"\b(?:" + k.pattern + ")") for k in KEYWORDS)
_HEADER_RE = re.compile(r"^\s*(?:" + "|".join(HEADERS) + r")\s*:\s*", re.IGNORECASE)
_ENUM_RE = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[-*\u2022])\s+")
_CONTENT_RE = re.compile(r"[a-z]", re.IGNORECASE)
# Where a sentence ends while it is being written: ".?!" not after a digit ("1." may go on as "1.5 cm"), or any
# ".?!" before whitespace ("T12. The"). One rule for generation (where a look-ahead probe ends, when a row may ask
# again) and for the retrievers (which sentence is being written); whole reports go through pysbd instead.
SENTENCE_END = re.compile(r"(?<!\d)[.?!]|[.?!](?=\s)")


def first_sentence_end(text: str) -> int | None:
    """Offset just past the first sentence end of ``text`` (:data:`SENTENCE_END`), or None."""
    match = SENTENCE_END.search(text)
    return match.end() if match else None


def ends_sentence(before: str, after: str) -> bool:
    """Whether extending ``before`` to ``after`` (its continuation, e.g. one more token) ended a sentence."""
    return any(m.end() > len(before) for m in SENTENCE_END.finditer(after))


def last_sentence_end(text: str) -> int:
    """Offset just past the last sentence end of ``text`` (0 when it has none)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return ends[-1] if ends else 0


# hard boundaries: CT-RATE's bare quote between findings and impression, line breaks, inline section headers
_CHUNK_RE = re.compile(r'"|\n+|\b(?:' + "|".join(HEADERS) + r")\s*:", re.IGNORECASE)
# "and" starts a new clause only before a new subject or negation ("... normal and no lesion was detected");
# "in the supraclavicular fossa and both axillae" stays inside the negated clause.
_CLAUSE_RE = re.compile(
    r";|,\s*(?:and|but|while|whereas)\b|\b(?:but|while|whereas|however)\b"
    r"|\band\s+(?=(?:there|no|is|are|was|were|a|an)\b)"
)
_PRE_NEG_RE = re.compile(r"\b(?:" + "|".join(PRE_NEGATIONS) + r")\b")
_POST_NEG_RE = re.compile(
    "(?:" + "|".join(p if p.startswith("n'") else rf"\b{p}" for p in POST_NEGATIONS) + r")\b"
)
_NEG_EXCEPTION_RE = re.compile(r"\b(?:" + "|".join(NEGATION_EXCEPTIONS) + r")\b")
_ABNORMAL_RE = re.compile(r"\b(?:" + "|".join(ABNORMAL_KEYWORDS) + ")")


@functools.lru_cache(maxsize=1)
def _segmenter() -> Any:  # pysbd ships no type stubs
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def _clean_fragment(fragment: str) -> str:
    text = " ".join(fragment.split())
    while True:  # "Impression: 1. Emphysema." -> "Emphysema."
        stripped = _ENUM_RE.sub("", _HEADER_RE.sub("", text))
        if stripped == text:
            return text
        text = stripped


def split_sentences(text: str) -> list[str]:
    """Split a report into clean sentences, offline.

    CT-RATE separates findings from impression with a bare ``"``, so quotes and line breaks are hard boundaries;
    inside each chunk pysbd splits sentences (it keeps decimals, ``3x4 mm`` and abbreviations intact). Section
    headers ("Findings:", "Impression:") and list numbers are stripped; empty, punctuation-only and bare-header
    fragments are dropped.
    """
    sentences: list[str] = []
    for chunk in _CHUNK_RE.split(text or ""):
        if not _CONTENT_RE.search(chunk):
            continue
        for fragment in _segmenter().segment(chunk):
            cleaned = _clean_fragment(fragment)
            if _CONTENT_RE.search(cleaned) and cleaned.rstrip(":").strip().lower() not in HEADERS:
                sentences.append(cleaned)
    return sentences


@dataclass(frozen=True)
class SentenceTag:
    """Organs and normality of one sentence.

    Attributes:
        organs: paper organs (subset of ``ORGANS``, in that order); ``("other",)`` when none of the four.
        radgenome: RadGenome-ChestCT regions (subset of ``RADGENOME_ORGANS``); ``("other",)`` when none.
        normal: True when the sentence asserts no abnormality (negated, "normal", or descriptive only).
    """

    organs: tuple[str, ...]
    radgenome: tuple[str, ...]
    normal: bool


def _keyword_hits(text: str) -> list[Keyword]:
    """Every keyword occurrence in ``text`` (lower-cased), weak lung hits dropped beside non-lung anatomy."""
    lowered = text.lower()
    hits = [k for k, regex in zip(KEYWORDS, _KEYWORD_RES, strict=True) for _ in regex.finditer(lowered)]
    strong_lung = any(k.organ == "lung" and not k.weak for k in hits)
    other_anatomy = any(k.organ != "lung" and k.region != "other" for k in hits)
    if other_anatomy and not strong_lung:
        hits = [k for k in hits if not k.weak]
    return hits


def _ordered(found: Iterable[str], order: tuple[str, ...]) -> tuple[str, ...]:
    found = set(found)
    named = tuple(x for x in order if x in found and x != "other")
    return named or ("other",)


def _clause_is_abnormal(clause: str) -> bool:
    clause = _NEG_EXCEPTION_RE.sub(" ", clause)
    if _POST_NEG_RE.search(clause):
        return False
    pre = _PRE_NEG_RE.search(clause)
    head = clause[: pre.start()] if pre else clause
    return bool(_ABNORMAL_RE.search(head))


def is_normal_sentence(text: str) -> bool:
    """True when no clause of ``text`` asserts an abnormality.

    Clauses are split at ``;`` and conjunctions; within a clause a post-negation ("was not observed") negates
    everything, a pre-negation ("no", "without") negates what follows it. An abnormal cue left un-negated makes
    the sentence abnormal; otherwise ("Heart size is normal", "Trachea is patent") it is normal.
    """
    return not any(_clause_is_abnormal(c) for c in _CLAUSE_RE.split(text.lower()))


def tag_sentence(text: str) -> SentenceTag:
    """Tag one sentence with its paper organs, RadGenome regions and the normal flag."""
    hits = _keyword_hits(text)
    return SentenceTag(
        organs=_ordered((k.organ for k in hits), ORGANS),
        radgenome=_ordered((k.region for k in hits), RADGENOME_ORGANS),
        normal=is_normal_sentence(text),
    )


def tag_report(report: str) -> list[tuple[str, SentenceTag]]:
    """Split a report and tag every sentence, in report order."""
    return [(sentence, tag_sentence(sentence)) for sentence in split_sentences(report)]


Tagged = Mapping[str, list[tuple[str, SentenceTag]]]  # report -> its tagged sentences


def tag_unique_reports(reports: Iterable[str]) -> dict[str, list[tuple[str, SentenceTag]]]:
    """Tag each distinct report once (sentence splitting is the slow part; reconstructions share reports)."""
    return {report: tag_report(report) for report in dict.fromkeys(reports)}


def organ_of_text(text: str) -> str:
    """The single paper organ ``text`` is most about, by keyword counts; ties go to the earlier organ.

    The adaptive retriever calls this on "text so far + probe" to pick which organ's sentences to search. With
    no keyword at all the answer is ``"other"``.
    """
    counts = Counter(k.organ for k in _keyword_hits(text))
    best = max(ORGANS, key=lambda organ: (counts[organ], -ORGANS.index(organ)))
    return best if counts[best] > 0 else "other"


def organ_share_table(tagged_reports: Iterable[list[tuple[str, SentenceTag]]]) -> dict[str, float | int]:
    """Share of sentences per paper organ (multi-organ sentences count for each) and share tagged only other.

    Args:
        tagged_reports: :func:`tag_report` outputs, one per report (tagging is the slow part: pass them in so a
            caller that needs the tags too tags once).
    """
    counts: Counter[str] = Counter()
    n_sentences = n_reports = n_normal = 0
    for tagged in tagged_reports:
        n_reports += 1
        for _, tag in tagged:
            n_sentences += 1
            n_normal += tag.normal
            counts.update(tag.organs)
    total = max(n_sentences, 1)
    table: dict[str, float | int] = {"reports": n_reports, "sentences": n_sentences}
    table.update({organ: counts[organ] / total for organ in ORGANS})
    table["only_other"] = counts["other"] / total  # "other" is only ever tagged alone
    table["normal"] = n_normal / total
    return table


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    """Print the organ share table of the reports in a CSV (column ``report_text`` or CT-RATE Findings/Impressions)."""
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report", required=True, help="CSV with report_text, or Findings_EN + Impressions_EN"
    )
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.report, dtype=str, keep_default_na=False)
    if "report_text" in frame.columns:
        reports = frame["report_text"].tolist()
    else:
        reports = (frame["Findings_EN"] + " " + frame["Impressions_EN"]).tolist()
    table = organ_share_table(tag_report(report) for report in reports)
    print(f"{table['reports']} reports, {table['sentences']} sentences ({args.report})")
    print(f"{'organ':<12}{'share':>8}")
    for key in (*ORGANS, "only_other", "normal"):
        print(f"{key:<12}{table[key]:>8.3f}")
    return table


if __name__ == "__main__":
    main()
