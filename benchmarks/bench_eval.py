"""Benchmark of the evaluation suite on 3,039 synthetic report pairs (the CT-RATE validation size).

Run: python benchmarks/bench_eval.py   (wired to `make bench-eval`)

Prints, measured in this one run: our text-metric pass (BLEU-1..4, ROUGE-L, CIDEr-D) vs pycocoevalcap's
Bleu(4) + Rouge + Cider on the same pairs (time ratio, and a check that the numbers agree), and the time of a
1000-resample bootstrap (BLEU-1/4, ROUGE-L, clinical P/R/F1) relative to one metric pass (goal <= 3x).
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np

N_PAIRS = 3039
SENTENCES = [
    "trachea and both main bronchi are open",
    "mediastinal main vascular structures heart contour size are normal",
    "pericardial effusion-thickening was not observed",
    "no enlarged lymph nodes in pathological dimensions",
    "thoracic esophagus calibration was normal",
    "pleural effusion-thickening was not detected",
    "a {n} mm nodule is observed in the {side} lung {lobe} lobe",
    "ground glass densities in the {side} lung",
    "calcified atheroma plaques in the thoracic aorta and coronary arteries",
    "emphysematous changes in both lungs",
    "subsegmental atelectasis in the {side} lung {lobe} lobe",
    "bone structures in the study area are natural",
    "upper abdominal organs included in the sections are normal",
    "sliding type hiatal hernia is observed",
    "linear fibrotic sequelae changes in the {side} lung",
    "consolidation areas with air bronchograms",
    "minimal pericardial effusion is observed",
    "interlobular septal thickening in both lungs",
]


def synthetic_reports(n: int, seed: int) -> list[str]:
    """CT-like reports of ~38 phrases (~270 words, as CT-RATE) drawn from a phrase pool with random sizes and locations."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picks = rng.choice(len(SENTENCES), size=rng.integers(30, 46))
        sents = [
            SENTENCES[i].format(
                n=rng.integers(2, 30),
                side=rng.choice(["right", "left"]),
                lobe=rng.choice(["upper", "middle", "lower"]),
            )
            for i in picks
        ]
        out.append(". ".join(sents) + ".")
    return out


def main() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from adaragct.eval.bootstrap import bootstrap_intervals
    from adaragct.eval.clinical import Confusion
    from adaragct.eval.labelers.rules import RuleLabeler
    from adaragct.eval.text_metrics import (
        bleu_stats,
        cider_d_scores,
        corpus_bleu,
        normalize_text,
        rouge_l_scores,
    )

    refs = [normalize_text(t) for t in synthetic_reports(N_PAIRS, 0)]
    preds = [normalize_text(t) for t in synthetic_reports(N_PAIRS, 1)]

    t0 = time.perf_counter()
    stats = bleu_stats(preds, refs)
    bleu = corpus_bleu(stats)
    rouge = rouge_l_scores(preds, refs)
    cider = cider_d_scores(preds, refs)
    ours = time.perf_counter() - t0

    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_bleu, _ = Bleu(4).compute_score(gts, res)
    coco_rouge, _ = Rouge().compute_score(gts, res)
    coco_cider, _ = Cider().compute_score(gts, res)
    coco = time.perf_counter() - t0
    max_diff = max(
        max(abs(a - b) for a, b in zip(bleu, coco_bleu, strict=True)),
        abs(rouge.mean() - coco_rouge),
        abs(cider.mean() - coco_cider),
    )

    labeler = RuleLabeler()
    conf = Confusion.from_labels(labeler.labels(preds), labeler.labels(refs))
    t0 = time.perf_counter()
    bootstrap_intervals(stats, rouge, conf, num_resamples=1000, seed=42)
    boot = time.perf_counter() - t0

    print(
        f"evaluation benchmark: {N_PAIRS} synthetic report pairs, "
        f"{np.mean([len(r.split()) for r in refs]):.0f} words per reference"
    )
    print(f"{'step':60s} {'seconds':>8s} {'ratio':>8s}")
    print(f"{'pycocoevalcap Bleu(4)+Rouge+Cider':60s} {coco:8.2f} {1.0:8.2f}")
    print(f"{'ours BLEU-1..4 + ROUGE-L + CIDEr-D (same numbers)':60s} {ours:8.2f} {ours / coco:8.2f}")
    print(
        f"{'bootstrap, 1000 resamples (BLEU-1/4, ROUGE-L, clin P/R/F1)':60s} {boot:8.2f} {boot / ours:8.2f}"
        f"  <- x one metric pass (goal <= 3)"
    )
    print(f"speed-up over pycocoevalcap: {coco / ours:.1f}x; max |ours - pycocoevalcap| = {max_diff:.2e}")


if __name__ == "__main__":
    main()
