"""Text metrics with exactly the numbers of pycocoevalcap (BLEU-1..4, ROUGE-L, CIDEr-D), plus sacreBLEU and METEOR
(``meteor.py``).

Why our own code for BLEU, ROUGE-L and CIDEr-D: the bootstrap (``bootstrap.py``) needs *per-sample sufficient
statistics* (clipped n-gram matches, candidate and reference lengths, per-sample ROUGE-L), which pycocoevalcap
does not expose, and pycocoevalcap's ROUGE-L runs a pure-Python O(n*m) dynamic programme per pair (seconds per
thousand CT reports). We compute the same quantities with the same formulas and the same order of floating-point
operations, so results are identical (tested to 1e-9 against pycocoevalcap on 800 real reports). ROUGE-L uses a
bit-parallel LCS (Hyyro 2004) that gives the same LCS length as the DP.

Text protocol (docs/evaluation.md): strip + lower-case only, empty -> " ". BLEU and CIDEr tokenise with ``str.split()``;
ROUGE-L with ``str.split(" ")``, exactly as pycocoevalcap does (so runs of spaces give empty tokens there too).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaragct.eval.meteor import METEOR_TIMEOUT_S, MeteorUnavailable, compute_meteor

log = logging.getLogger(__name__)

BLEU_N = 4
ROUGE_BETA = 1.2
CIDER_SIGMA = 6.0
_SMALL = 1e-9  # pycocoevalcap's guards against division by zero, kept so results match bit for bit
_TINY = 1e-15


def normalize_text(text: str | None) -> str:
    """The metric text protocol: strip + lower-case; empty (or missing) -> a single space."""
    text = (text or "").strip().lower()
    return text if text else " "


def _ngrams(words: Sequence[str], n: int) -> Counter:
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


@dataclass(frozen=True)
class BleuStats:
    """Per-sample BLEU sufficient statistics, summable over any subset of samples.

    Attributes:
        correct: (n, 4) clipped n-gram matches per order.
        guess: (n, 4) candidate n-gram counts per order.
        testlen: (n,) candidate lengths in tokens.
        reflen: (n,) reference lengths in tokens (one reference, so "closest" is that reference).
    """

    correct: np.ndarray
    guess: np.ndarray
    testlen: np.ndarray
    reflen: np.ndarray


def bleu_stats(predictions: Sequence[str], references: Sequence[str], n: int = BLEU_N) -> BleuStats:
    """Per-sample clipped n-gram statistics of pycocoevalcap's ``BleuScorer`` (one reference per sample)."""
    m = len(predictions)
    correct = np.zeros((m, n), dtype=np.int64)
    guess = np.zeros((m, n), dtype=np.int64)
    testlen = np.zeros(m, dtype=np.int64)
    reflen = np.zeros(m, dtype=np.int64)
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        test_words, ref_words = pred.split(), ref.split()
        ref_counts = _ngrams(ref_words, n)
        for gram, count in _ngrams(test_words, n).items():
            correct[i, len(gram) - 1] += min(ref_counts.get(gram, 0), count)
        testlen[i] = len(test_words)
        reflen[i] = len(ref_words)
        guess[i] = [max(0, len(test_words) - k + 1) for k in range(1, n + 1)]
    return BleuStats(correct, guess, testlen, reflen)


def bleu_from_totals(
    correct: Sequence[float], guess: Sequence[float], testlen: float, reflen: float
) -> list[float]:
    """Corpus BLEU-1..n from summed statistics, in pycocoevalcap's exact order of operations."""
    bleus = []
    bleu = 1.0
    for k in range(len(correct)):
        bleu *= float(correct[k] + _TINY) / (guess[k] + _SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


def corpus_bleu(stats: BleuStats) -> list[float]:
    """BLEU-1..4 over all samples (pycocoevalcap ``Bleu(4)``)."""
    return bleu_from_totals(
        stats.correct.sum(0).tolist(),
        stats.guess.sum(0).tolist(),
        int(stats.testlen.sum()),
        int(stats.reflen.sum()),
    )


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyro 2004): O(len(a) * len(b) / word)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = defaultdict(int)
    for i, token in enumerate(b):
        masks[token] |= 1 << i
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l_scores(
    predictions: Sequence[str], references: Sequence[str], beta: float = ROUGE_BETA
) -> np.ndarray:
    """Per-sample ROUGE-L F (pycocoevalcap ``Rouge``: LCS precision/recall, beta 1.2)."""
    out = np.zeros(len(predictions), dtype=np.float64)
    for i, (pred, ref) in enumerate(zip(predictions, references, strict=True)):
        token_c, token_r = pred.split(" "), ref.split(" ")
        lcs = lcs_length(token_r, token_c)
        prec = lcs / float(len(token_c))
        rec = lcs / float(len(token_r))
        if prec != 0 and rec != 0:
            out[i] = ((1 + beta**2) * prec * rec) / float(rec + beta**2 * prec)
    return out


def _cider_vector(
    counts: Counter, doc_freq: dict, ref_len: float, n: int
) -> tuple[list[dict], list[float], int]:
    vec: list[dict] = [{} for _ in range(n)]
    norm = [0.0] * n
    length = 0
    for gram, tf in counts.items():
        df = np.log(max(1.0, doc_freq.get(gram, 0.0)))
        order = len(gram) - 1
        vec[order][gram] = float(tf) * (ref_len - df)
        norm[order] += pow(vec[order][gram], 2)
        if order == 1:  # pycocoevalcap measures length in bigrams; kept for identical numbers
            length += tf
    return vec, [np.sqrt(x) for x in norm], length


def cider_d_scores(
    predictions: Sequence[str], references: Sequence[str], n: int = BLEU_N, sigma: float = CIDER_SIGMA
) -> np.ndarray:
    """Per-sample CIDEr-D of pycocoevalcap ``Cider`` (document frequencies from the references of this corpus)."""
    pred_counts = [_ngrams(p.split(), n) for p in predictions]
    ref_counts = [_ngrams(r.split(), n) for r in references]
    doc_freq: dict = defaultdict(float)
    for counts in ref_counts:
        for gram in counts:
            doc_freq[gram] += 1
    ref_len = np.log(float(len(ref_counts)))
    scores = np.zeros(len(predictions), dtype=np.float64)
    for i, (hyp, ref) in enumerate(zip(pred_counts, ref_counts, strict=True)):
        vec, norm, length = _cider_vector(hyp, doc_freq, ref_len, n)
        vec_ref, norm_ref, length_ref = _cider_vector(ref, doc_freq, ref_len, n)
        delta = float(length - length_ref)
        val = np.array([0.0] * n)
        for k in range(n):
            for gram in vec[k]:
                ref_w = vec_ref[k].get(gram, 0.0)
                val[k] += min(vec[k][gram], ref_w) * ref_w
            if norm[k] != 0 and norm_ref[k] != 0:
                val[k] /= norm[k] * norm_ref[k]
            val[k] *= np.e ** (-(delta**2) / (2 * sigma**2))
        score = np.mean(val)
        score /= 1  # one reference per sample
        scores[i] = score * 10.0
    return scores


def sacrebleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacreBLEU corpus BLEU (13a tokeniser) divided by 100, as the release reports it."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score) / 100.0


@dataclass
class TextMetrics:
    """All text metrics of one prediction set plus the per-sample statistics the bootstrap resamples."""

    bleu: list[float]
    rouge_l: float
    cider: float
    bleu_sacre: float
    meteor: float | None
    meteor_unavailable: str | None  # why ``meteor`` is None (None when it was computed)
    stats: BleuStats
    rouge_per_sample: np.ndarray
    cider_per_sample: np.ndarray


def compute_text_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    with_meteor: bool = True,
    meteor_timeout_s: float = METEOR_TIMEOUT_S,
    progress: bool = False,
) -> TextMetrics:
    """Compute every text metric on normalised text (strip + lower, empty -> " ").

    ``meteor_timeout_s`` is the longest wait for one answer of METEOR's Java scorer (``meteor.py``); ``progress``
    shows a bar over METEOR's pairs (the only slow metric: one Java round trip per report).
    """
    preds = [normalize_text(p) for p in predictions]
    refs = [normalize_text(r) for r in references]
    stats = bleu_stats(preds, refs)
    rouge = rouge_l_scores(preds, refs)
    cider = cider_d_scores(preds, refs)
    meteor, meteor_unavailable = None, "not requested (--no-meteor or meteor=false)"
    if with_meteor:
        try:
            meteor = compute_meteor(preds, refs, timeout_s=meteor_timeout_s, progress=progress)
            meteor_unavailable = None
        except MeteorUnavailable as err:  # reported as null with its reason: never a made-up value
            log.warning("METEOR unavailable, reported as null: %s", err)
            meteor_unavailable = str(err)
    return TextMetrics(
        bleu=corpus_bleu(stats),
        rouge_l=float(np.mean(rouge)),
        cider=float(np.mean(cider)),
        bleu_sacre=sacrebleu_score(preds, refs),
        meteor=meteor,
        meteor_unavailable=meteor_unavailable,
        stats=stats,
        rouge_per_sample=rouge,
        cider_per_sample=cider,
    )
