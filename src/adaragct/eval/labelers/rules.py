"""Offline rule-based labeler for the 18 CT-RATE findings.

Why rules: the CT-RATE RadBERT classifier needs a user's checkpoint, but every test, the demo and a quick look at
a run must score clinical F1 with nothing downloaded. The rules follow *phrasings* of chest-CT reports (synonyms,
spellings, pre- and post-negation as in "Pleural effusion-thickening was not observed", uncertainty), never
individual reports, and were developed on the 800 hand-labelled CT-RATE reports only.

Pipeline per report: normalise text -> split into sentences -> split sentences into clauses at contrast words
("but", "however", ";") -> for each clause and finding, find a mention that is not inside an exclusion phrase ->
the mention counts unless a negation cue governs it. Uncertain mentions ("suspicious for", "cannot be excluded",
"?") count as positive, as CT-RATE's annotators labelled them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaragct.constants import FINDINGS


@dataclass(frozen=True)
class FindingRule:
    """How one finding is phrased.

    Attributes:
        finding: the CT-RATE finding name.
        mentions: regexes of phrases that name the finding.
        exclusions: regexes of phrases that contain a mention but mean something else (e.g. "subcutaneous
            emphysema" is not pulmonary emphysema); mentions inside them are ignored.
        context: regexes of which one must also occur in the clause (e.g. a vessel name for a plaque), so a
            generic mention ("calcified plaques") is assigned to the structure it is about.
    """

    finding: str
    mentions: tuple[str, ...]
    exclusions: tuple[str, ...] = ()
    context: tuple[str, ...] = ()


_EFFUSION = r"(?:effusions?|fluids?)"
# Structures outside the lung parenchyma whose densities are not lung opacities.
_NON_LUNG = (
    r"bones?|osseous|liver|hepat\w*|fat\w*|adipose|breasts?|soft tissue|thyroid|spleen|splenic|pancrea\w*|renal|"
    r"kidneys?|adrenal|subcutaneous|cutaneous|perirenal|perinephric|perigastric|paraduodenal|vertebra\w*|skin|"
    r"mesenter\w*|trachea|sternum|ribs?\b|mediastin\w*|thym\w*|gallbladder|muscle|metal\w*|chest wall|"
    r"stent|pericard\w*|esophag\w*|abdom\w*|inguinal|axilla\w*"
)
_CALCIFIED_NODE = (
    r"calcif\w* (?:\w+ )?(?:lymph|nodul|granulom)\w*",
    r"(?:lymph|nodul|granulom)[^.;]{0,60}calcif\w*",
)
_PLAQUE = (
    r"calcif\w*",
    r"atheroscler\w*",
    r"atherom\w*",
    r"(?<!non)(?<!non-)calcified plaques?",
    r"\bplaques?",
)

RULES: tuple[FindingRule, ...] = (
    FindingRule(
        "Medical material",
        (
            r"catheters?",
            r"\bports?\b",
            r"pacemakers?",
            r"pace ?maker",
            r"\bicd\b",
            r"defibrillator",
            r"\bstents?\b",
            r"\bstented",
            r"prosthes[ie]s",
            r"prosthetic",
            r"\bvalve replacement",
            r"metallic",
            r"\bmetal\b",
            r"\bclips?\b",
            r"sternotomy",
            r"sternal wires?",
            r"\bwires?\b",
            r"sutures?",
            r"surgical (?:material|clips?|staples?)",
            r"staples?",
            r"drains?\b",
            r"drainage",
            r"\btubes?\b",
            r"cannula",
            r"tracheostomy",
            r"gastrostomy",
            r"endotracheal",
            r"nasogastric",
            r"\bimplants?\b",
            r"fixators?",
            r"fixation",
            r"\bscrews?\b",
            r"\bgrafts?\b",
            r"\bcoils?\b",
            r"embolization material",
            r"foreign bod(?:y|ies)",
            r"\bcabg\b",
            r"bypass",
            r"expander",
            r"electrodes?",
            r"\bleads?\b",
            r"\bfilters?\b",
            r"\bshunt\b",
        ),
        (
            r"contrast (?:material|agent|medium)",
            r"material was not given",
            r"non-?contrast",
            r"eustachian tube",
            r"\bdrain(?:s|ing)? into",
            r"venous drainage",
            r"lymphatic drainage",
            r"\bport(?:al|ion)",
            r"(?:peritoneal|omental|metasta\w*)[^.;]{0,30}implants?",
            r"(?:in favou?r of|belong to|compatible with) (?:the )?(?:omental )?implants?",
            r"\bmetal(?:lic)? density artifacts? of (?:the )?teeth",
        ),
    ),
    # Calcified plaques count for the arterial wall only on a non-coronary thoracic vessel named in the same
    # clause; plaques of the abdominal aorta or the aortic valve are not what CT-RATE labels.
    FindingRule(
        "Arterial wall calcification",
        _PLAQUE,
        exclusions=_CALCIFIED_NODE,
        context=(
            r"(?<! abdominal )(?<! coronary )aort(?!ic valve|i?c?o?-?pulmonary)\w*",
            r"(?<! coronary )(?<! descending )arter(?:y|ies|ial)",
            r"(?<! coronary )vascular",
            r"(?<! coronary )vessels?",
            r"\barch\b",
            r"carotid",
            r"subclavian",
            r"brachiocephalic",
            r"supra-?aortic",
            r"thoracoabdominal",
        ),
    ),
    FindingRule(
        "Cardiomegaly",
        (
            r"cardiomegal\w*",
            r"(?:heart|cardiac)(?: contour and)? (?:size|dimensions?|volume|silhouette)s?[^.;]{0,25}"
            r"(?:increas\w*|enlarg\w*|large|larger|widened)",
            r"(?:heart|cardiac) (?:is |was )?(?:enlarged|larger)",
            r"enlarge(?:d|ment of the) (?:heart|cardiac)",
            r"increase\w* (?:in |of )?(?:the )?(?:heart|cardiac) (?:size|dimension)",
            r"(?:\bctr\b|cardiothoracic (?:index|ratio))[^.;]{0,30}(?:increas\w*|>)",
            r"increase\w* (?:in |of )?(?:the )?(?:\bctr\b|cardiothoracic)",
        ),
    ),
    FindingRule(
        "Pericardial effusion",
        (
            r"pericard\w*[^.;]{0,60}(?:effusion|fluid)",
            r"(?:effusion|fluid)[^.;]{0,60}pericard\w*",
            r"hydropericard\w*",
        ),
    ),
    FindingRule(
        "Coronary artery wall calcification",
        _PLAQUE,
        exclusions=_CALCIFIED_NODE,
        context=(
            r"coronar\w*",
            r"\b(?:lad|lcx|rca|cx)\b",
            r"(?:left )?anterior descending",
            r"circumflex",
        ),
    ),
    FindingRule(
        "Hiatal hernia",
        (
            r"hiatal? hern\w*",
            r"hiatus hern\w*",
            r"hernia\w*[^.;]{0,40}hiatus",
            r"paraesophageal hern\w*",
            r"sliding[- ]type hern\w*",
            r"siliding",
            r"stomach[^.;]{0,40}(?:herniat\w*|into the thorax)",
            r"herniation of the stomach",
        ),
    ),
    # CT-RATE's annotators marked any reported lymph node, millimetric ones included, as present.
    FindingRule(
        "Lymphadenopathy",
        (
            r"lymphadenopath\w*",
            r"\blaps?\b",
            r"lymph ?nodes?",
            r"lymph ?nodules?",
            r"\bnodes? in the (?:mediastin|hil|axill)\w*",
            r"adenopath\w*",
        ),
        (
            # nodes outside the chest or inside the lung parenchyma are not mediastinal/hilar lymphadenopathy
            r"(?:intrapulmonary|subpleural|perifissural|fissural|intra-?abdominal|abdominal|retroperitoneal|"
            r"mesenteric|inguinal|paraaortic|para-aortic|interaortocaval|paracaval|periportal|splenic|celiac)"
            r"[^.;]{0,40}(?:lymph ?nodes?|lap|lymphadenopath\w*)",
            r"(?:lymph ?nodes?|lap)[^.;]{0,25}(?:intra-?abdominal|abdomen|retroperitone\w*|inguinal|mesenter\w*)",
            r"fissur\w*[^.;]{0,60}lymph ?node",
            r"\(lymph ?nodes?",
        ),
    ),
    FindingRule(
        "Emphysema",
        (
            r"emphysem\w*",
            r"bullae",
            r"\bbullous",
            r"\bbulla\b",
            r"blebs?\b",
        ),
        (
            r"subcutaneous (?:\w+ ){0,2}emphysem\w*",
            r"emphysem\w* (?:\w+ ){0,4}(?:under|in) the skin",
            r"(?:soft tissue|mediastinal|subcutan\w*|interstitial) emphysem\w*",
        ),
    ),
    FindingRule(
        "Atelectasis",
        (
            r"atelecta\w*",
            r"collapsed? (?:of the )?(?:lung|lobe)",
            r"(?:lung|lobe)[^.;]{0,20}collapse",
        ),
        (
            # fibroatelectasis is a scar: CT-RATE counts it as a fibrotic sequela, not as atelectasis
            r"fibro[- ]?atelecta\w*",
            r"atelecta\w* (?:\w+ )?sequel\w*",
            r"sequel\w* (?:of |\w+ )?atelecta\w*",
        ),
    ),
    # "Nodular" as an adjective (nodular consolidation, nodular ground glass) describes another finding.
    FindingRule(
        "Lung nodule",
        (
            r"\b(?:micro)?nodules?\b",
            r"nodular (?:lesions?|formations?|appearances?|opacit\w*)",
        ),
        (
            r"(?:thyroid|adrenal|liver|hepatic|breasts?|kidneys?|renal|spleen|splenic|pancrea\w*|schmorl|"
            r"mesenter\w*|subcutaneous|skin|axilla\w*)[^.;]{0,50}(?:nodul\w*)",
            r"nodul\w*[^.;]{0,60}(?:thyroid|adrenal|liver|spleen|splenic|breasts?|kidneys?|renal|axilla\w*)",
            r"nodular goiter",
            r"hypodense (?:\w+ )?nodul\w*",
            r"(?<!sub)pleural nodul\w*",
            r"nodul\w*[^.;]{0,30}(?:in|of) the (?:pleura|mediastinum|adipose|fatty)",
            r"ground[- ]?glass nodular",
        ),
    ),
    # "Density increase" is an opacity only when nothing else explains it: sequelae, fibrosis, atelectasis and
    # consolidation densities carry their own labels, and densities of other organs are not lung findings.
    FindingRule(
        "Lung opacity",
        (
            r"ground[- ]?glass",
            r"frosted glass",
            r"opacit\w*",
            r"infiltrat\w*",
            r"crazy[- ]paving",
            r"(?:density|densities) increases?",
            r"increased? (?:in )?(?:density|densities)",
            r"increases? (?:in|of) (?:\w+ )?(?:density|densities)",
            r"hyperdens\w* areas?",
            r"dependent densit\w*",
        ),
        (
            r"ground[- ]?glass (?:density )?nodul\w*",
            r"(?:broncho)?pneumonic infiltrat\w*",
            r"nodular infiltrat\w*",
            r"pleuro-?parenchymal (?:\w+ )?(?:densit\w*|increases? in densit\w*)",
            r"(?:in terms of|evaluated for|for) infiltrat\w*",
            r"bud\w*[^.;]{0,40}infiltrat\w*",
            r"(?:micro)?nodular opacit\w*",
            r"acinar opacit\w*",
            r"(?:leukemic|bone|fat\w*|lymphomatous|tumou?r(?:al)?|malignant|soft tissue)[^.;]{0,30}infiltrat\w*",
            r"infiltrat\w*[^.;]{0,40}(?:fat\w*|bone|muscle|soft tissue|wall|mediastin\w*)",
            r"(?:sequel\w*|fibro\w*|linear|band|scar\w*|atelecta\w*|consolidat\w*|emphysem\w*)[- ](?:[\w-]+ ){0,2}"
            r"(?:densit\w*|opacit\w*|increases? in densit\w*)",
            r"(?:densit\w*|opacit\w*)[^.;]{0,40}(?:consistent with|compatible with|in favou?r of|secondary to|due to|"
            r"evaluated as)[^.;]{0,30}(?:sequel\w*|fibro\w*|atelecta\w*|consolidat\w*)",
            rf"(?:{_NON_LUNG})[^.;]{{0,50}}(?:densit\w*|opacit\w*|infiltrat\w*)",
            rf"(?:densit\w*|opacit\w*|infiltrat\w*)[^.;]{{0,50}}(?:{_NON_LUNG})",
        ),
    ),
    FindingRule(
        "Pulmonary fibrotic sequela",
        (
            r"fibro\w*",
            r"sequel\w*",
            r"\bscar\w*",
            r"(?:subpleural|linear|parenchymal|fibrous|fibrotic)[^.;]{0,20}bands?\b",
            r"honeycomb\w*",
        ),
        (
            r"fibroadenoma",
            r"fibroid",
            r"fibrous dysplasia",
            r"fibroma",
            r"(?:ribs?|humer\w*|bones?|fractur\w*|kidneys?|renal|perirenal|spleen|splenic|liver|hepatic|lymph|"
            r"mediastin\w*|breasts?|pyelonephrit\w*|vertebra\w*|clavicle|sternum|elevation)[^.;]{0,60}"
            r"(?:sequel\w*|fibro\w*|scar\w*)",
            r"(?:sequel\w*|fibro\w*|scar\w*)[^.;]{0,40}(?:ribs?\b|humer\w*|kidneys?|renal|spleen|liver|lymph|"
            r"mediastin\w*|breasts?)",
        ),
    ),
    FindingRule(
        "Pleural effusion",
        (
            rf"pleural {_EFFUSION}",
            r"pleural effusion-thickening",
            r"pleural thickening-effusion",
            r"hydrothorax",
            r"hemothorax",
            rf"{_EFFUSION} (?:\w+ ){{0,4}}(?:in|within|between) the (?:bilateral )?pleural",
            r"\beffusions?\b",
            r"fluid in (?:the )?(?:right|left|bilateral|both) (?:hemithora\w*|pleural)",
        ),
        (
            r"pericardi\w* (?:\w+ )?effusion",
            r"pericardi\w* (?:effusion-)?thickening-effusion",
            r"(?:joint|abdom\w*|peritone\w*|perirenal|perinephric|renal|kidneys?|spleen|liver|pericard\w*)"
            r"[^.;]{0,60}(?:effusion|fluid)",
            r"(?:effusion|fluid)[^.;]{0,60}(?:abdom\w*|peritone\w*|perirenal|perinephric|renal|kidneys?|spleen|"
            r"liver|pericard\w*)",
        ),
    ),
    FindingRule("Mosaic attenuation pattern", (r"mosaic",)),
    # "Bronchial wall thickness" without "peribronchial" was labelled inconsistently; only the explicit term counts.
    FindingRule(
        "Peribronchial thickening",
        (
            r"peribronchial[^.;]{0,40}thick\w*",
            r"thick\w*[^.;]{0,30}peribronchial",
            r"peribronchial cuffing",
        ),
    ),
    FindingRule(
        "Consolidation",
        (r"consolidat\w*",),
        (
            # ground-glass consolidations are labelled as opacities
            r"ground[- ]?glass consolidat\w*",
        ),
    ),
    FindingRule(
        "Bronchiectasis",
        (
            r"bronchiecta\w*",
            r"bronchiolecta\w*",
            r"bronch\w* ectasi\w*",
            r"(?<!atel)ectasi\w*[^.;]{0,30}bronch\w*",  # not the "ectasis" of atelectasis
            r"bronchial dilat\w*",
            r"dilated bronch\w*",
            r"dilatation of the bronch\w*",
        ),
    ),
    FindingRule(
        "Interlobular septal thickening",
        (
            r"(?:interlob(?:ular|ar)|intralobular|(?<!para)septal|\bsepta\b|septum)[^.;]{0,30}(?:thick\w*|prominen\w*|clarificat\w*)",
            r"(?:thick\w*|prominen\w*)[^.;]{0,30}interlob(?:ular|ar) sept\w*",
        ),
    ),
)

# Cues before a mention that deny it ("no X", "without X", "no A, B or X"). Checked only on the text between the
# cue and the mention within one clause, so "No effusion; atelectasis" does not negate the atelectasis.
_PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|absence of|absent|negative for|free of|neither|nor|rule[sd]? out|ruled out|"
    r"exclude[sd]?|no evidence of|no signs? of|resolved|disappeared|regressed completely)\b"
)
# Cues after a mention that deny it: CT-RATE's post-negations ("X was not observed", "X is not detected").
_POST_NEGATION = re.compile(
    r"^[^.;]{0,120}?\b(?:(?:was|were|is|are|has|have|had|could|can|did|does|do)(?: been)? not|cannot|can't|"
    r"(?:was|were|is|are) (?:no longer|absent)|(?:was|were|has been|have been) removed|not (?:observed|detected|seen|found|present|identified|"
    r"noted|visualized|monitored|evident|shown|considered)|wasn't|weren't|isn't|aren't|disappeared|"
    r"resolved|(?:has|have) regressed completely|(?:completely|totally) regressed|"
    r"(?:shows?|showed) (?:a )?(?:full|complete) regression|absent)\b"
)
# Phrases that look like negation but describe something present or uncertain.
_NEGATION_BREAKERS = re.compile(
    r"\b(?:not (?:be )?(?:excluded|ruled out)|cannot be (?:excluded|ruled out)|could not be (?:excluded|"
    r"ruled out|differentiated|distinguished)|no significant (?:change|difference|progression)|"
    r"not (?:significantly )?changed|no change|not significant(?:ly)? (?:change|differ)\w*|"
    r"did not (?:change|differ)|does not (?:change|differ)|no (?:\w+ )?difference|not differ\w*|"
    r"not (?:regressed|resolved)|did not regress|not (?:completely|fully)|not only|unchanged|stable|"
    r"not (?:well|clearly|optimally|evaluat\w*)|no contrast|"
    # size qualifiers deny pathology, not presence: "lymph nodes that did not reach pathological dimensions"
    r"(?:did|do|does|could) not reach\w*|not reaching|not (?:in )?(?:a )?pathologic\w*|"
    r"not (?:observed|detected) in pathologic\w*)\b"
)
# A pre-negation ends with its verb: in "no mass was detected in the lung, and sequelae are seen" the "no" does
# not reach "sequelae".
_SCOPE_END = re.compile(
    r"\b(?:is|are|was|were) (?:detected|observed|seen|noted|present|found|identified)\b[^.;]*,"
)
_CLAUSE_SPLIT = re.compile(
    r";|\bbut\b|\bhowever\b|\bwhereas\b|\balthough\b|\bwhile\b|\bexcept\b|\bother than\b|\bapart from\b|"
    r"\bin addition\b|\balso\b|, (?:and )?(?:there (?:is|are|was|were)|a |an |minimal|mild|slight|"
    r"significant|widespread|diffuse|bilateral|focal|patchy)"
)
_SENTENCE_SPLIT = re.compile(r"(?<!\d)\.(?!\d)|[!?\"“”•\n]|\.(?=\s)|:\s")


def normalise_text(text: str) -> str:
    """Lower-case and unify the punctuation and spellings the rules rely on."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\s+", " ", text)
    return text


def split_sentences(text: str) -> list[str]:
    """Split a normalised report into sentences (keeps decimals such as 3.3 cm whole)."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def split_clauses(sentence: str) -> list[str]:
    """Split a sentence at contrast words: negation never crosses "but", "however", ";" or a new clause."""
    return [c for c in _CLAUSE_SPLIT.split(sentence) if c.strip()]


class _CompiledRule:
    def __init__(self, rule: FindingRule) -> None:
        self.finding = rule.finding
        self.mention = re.compile("|".join(f"(?:{p})" for p in rule.mentions))
        self.exclusion = (
            re.compile("|".join(f"(?:{p})" for p in rule.exclusions)) if rule.exclusions else None
        )
        self.context = re.compile("|".join(f"(?:{p})" for p in rule.context)) if rule.context else None

    def positive_in(self, clause: str) -> bool:
        clause = f" {clause} "
        if self.context is not None and not self.context.search(clause):
            return False
        excluded = []
        if self.exclusion is not None:
            excluded = [m.span() for m in self.exclusion.finditer(clause)]
        for match in self.mention.finditer(clause):
            start, end = match.span()
            if any(start < b and a < end for a, b in excluded):
                continue
            if not _is_negated(clause, start, end):
                return True
        return False


def _is_negated(clause: str, start: int, end: int) -> bool:
    before = clause[:start]
    after = clause[end:]
    pre = list(_PRE_NEGATION.finditer(before))
    if pre:
        cue = pre[-1]
        tail = before[cue.start() :]
        if not _NEGATION_BREAKERS.search(tail) and not _SCOPE_END.search(tail) and len(tail.split()) <= 14:
            return True
    post = _POST_NEGATION.match(after)
    return bool(post) and not _NEGATION_BREAKERS.search(after[: post.end() + 30])


class RuleLabeler:
    """Offline rule labeler: ``labels(texts) -> (n, 18)`` int8 array in FINDINGS order.

    Example:
        >>> RuleLabeler().labels(["Pleural effusion-thickening was not observed. Minimal pericardial effusion."])
        ... # doctest: +SKIP
    """

    name = "rule"

    def __init__(self, rules: Sequence[FindingRule] = RULES) -> None:
        order = {f: i for i, f in enumerate(FINDINGS)}
        missing = set(FINDINGS) - {r.finding for r in rules}
        if missing:
            raise ValueError(f"rule labeler: no rule for {sorted(missing)}")
        self._rules = [(order[r.finding], _CompiledRule(r)) for r in rules]

    def label_one(self, text: str) -> np.ndarray:
        """Label one report."""
        out = np.zeros(len(FINDINGS), dtype=np.int8)
        for sentence in split_sentences(normalise_text(text or "")):
            for clause in split_clauses(sentence):
                for j, rule in self._rules:
                    if not out[j] and rule.positive_in(clause):
                        out[j] = 1
        return out

    def labels(self, texts: Sequence[str]) -> np.ndarray:
        """Label reports; rows follow ``texts``, columns follow ``FINDINGS``."""
        if not len(texts):
            return np.zeros((0, len(FINDINGS)), dtype=np.int8)
        return np.stack([self.label_one(t) for t in texts])
