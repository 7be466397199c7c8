"""The finding classifier: which of the 18 findings a volume's embeddings show, handed to the LM as words.

The demo's departure from the paper (``conf/prompt/findings.yaml``; docs/visual_dependence.md says why): on the
demo's CPU budget a tiny LM does not learn to read five projected vectors (its validation loss is the same with
another patient's embeddings), while it does learn to follow findings written as words in its prompt. So the
embeddings are read by the simplest reader that works on a few hundred volumes, a logistic regression per finding
over the standardised embeddings of ``model.visual_slots``, and its findings go into the prompt
(``prompt.findings_sentence``); the projected slots stay in the prompt as in the paper.

The classifier is fitted by the first training stage that has none to inherit (phase align, or phase base without
an aligned projector), on that stage's training volumes and their labels CSV, and travels with the projector
through every later checkpoint (``findings.safetensors``). scikit-learn fits it (its lbfgs logistic regression is
the standard, well-tested one); the fitted coefficients live in a ``torch`` module so that they are saved, moved
and applied like the rest of the model.

    classifier = FindingClassifier.fit(visual, labels, slots=["whole_ct", "lung", "heart", "esophagus", "aorta"])
    classifier.findings(batch_visual)       # [["Emphysema", "Lung nodule"], [], ...]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adaragct.constants import FINDINGS

log = logging.getLogger(__name__)
FINDINGS_FILE = "findings.safetensors"


class FindingClassifier(nn.Module):
    """Per-finding logistic regression over the concatenated, standardised embeddings of ``slots``.

    Args:
        dims: input dimension per slot (``conf/model: visual_dims``).
        slots: the slots it reads, in this order (``conf/model: visual_slots``).
        threshold: a finding is named when its probability reaches this.
    """

    def __init__(self, dims: Mapping[str, int], slots: Sequence[str], threshold: float = 0.5) -> None:
        super().__init__()
        self.slots = list(slots)
        total = sum(int(dims[s]) for s in self.slots)
        self.register_buffer("mean", torch.zeros(total))
        self.register_buffer("scale", torch.ones(total))
        self.register_buffer("weight", torch.zeros(len(FINDINGS), total))
        self.register_buffer("bias", torch.zeros(len(FINDINGS)))
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    @classmethod
    def fit(
        cls,
        visual: Mapping[str, np.ndarray],
        labels: np.ndarray,
        *,
        slots: Sequence[str],
        C: float = 0.1,
        threshold: float | str = "cv",
        folds: int = 5,
        seed: int = 0,
    ) -> FindingClassifier:
        """Fit on ``visual`` (``{slot: (n, d)}``) and ``labels`` ((n, 18) 0/1 in :data:`FINDINGS` order).

        Args:
            C: scikit-learn's inverse L2 strength (smaller: simpler).
            threshold: the probability at which a finding is named, or ``"cv"``: the one that maximises the
                support-weighted F1 (the paper's headline clinical metric) of out-of-fold predictions in
                ``folds``-fold cross-validation on these volumes. A logistic regression's 0.5 names fewer findings
                than the volumes have (weighted F1 rewards recall on common findings), and choosing on the
                training volumes keeps any validation split out of it.
            seed: the folds' shuffle.

        A finding that is always (or never) present in the training labels gets a constant at its training
        rate, with a logged note.
        """
        x = np.concatenate([np.asarray(visual[s], dtype=np.float64) for s in slots], axis=1)
        y = np.asarray(labels).astype(int)
        if y.shape != (len(x), len(FINDINGS)):
            raise ValueError(f"labels of shape {y.shape} for {len(x)} volumes (expected ({len(x)}, 18))")
        if threshold == "cv":
            threshold = _cv_threshold(x, y, C=C, folds=folds, seed=seed)
            log.info("finding classifier: threshold %.2f (%d-fold cross-validation)", threshold, folds)
        mean, scale, weight, bias = _fit_logistic(x, y, C)
        out = cls({s: np.asarray(visual[s]).shape[1] for s in slots}, slots, float(threshold))
        with torch.no_grad():
            buffers = (out.mean, out.scale, out.weight, out.bias)
            for buffer, value in zip(buffers, (mean, scale, weight, bias), strict=True):
                buffer.copy_(torch.from_numpy(value))
        return out

    def forward(self, visual: Mapping[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """(B, 18) probabilities."""
        x = torch.cat([visual[s].to(self.mean.dtype) for s in self.slots], dim=1)
        return torch.sigmoid(((x - self.mean) / self.scale) @ self.weight.T + self.bias)

    @torch.no_grad()
    def findings(self, visual: Mapping[str, torch.Tensor]) -> list[list[str]]:
        """The names of the findings each volume shows (probability >= threshold), in :data:`FINDINGS` order."""
        present = (self(visual) >= self.threshold).cpu().numpy()
        return [[f for f, hit in zip(FINDINGS, row, strict=True) if hit] for row in present]


def _fit_logistic(x: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, ...]:
    """Standardisation and per-finding logistic regression: (mean, scale, weight (18, d), bias (18,))."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    weight, bias = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
    for j, finding in enumerate(FINDINGS):
        if y[:, j].min() == y[:, j].max():
            rate = float(np.clip(y[:, j].mean(), 1e-3, 1 - 1e-3))
            bias[j] = np.log(rate / (1 - rate))
            log.info("finding classifier: %s is constant in the training labels", finding)
            continue
        model = LogisticRegression(C=C, max_iter=5000).fit(xs, y[:, j])
        weight[j], bias[j] = model.coef_[0], model.intercept_[0]
    return scaler.mean_, scaler.scale_, weight, bias


THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _cv_threshold(x: np.ndarray, y: np.ndarray, *, C: float, folds: int, seed: int) -> float:
    """The threshold of :data:`THRESHOLDS` with the best support-weighted F1 of out-of-fold probabilities."""
    from sklearn.model_selection import KFold

    from adaragct.eval.clinical import prf_from_counts

    probs = np.zeros(y.shape)
    for train, held in KFold(folds, shuffle=True, random_state=seed).split(x):
        mean, scale, weight, bias = _fit_logistic(x[train], y[train], C)
        probs[held] = 1 / (1 + np.exp(-(((x[held] - mean) / scale) @ weight.T + bias)))
    scores = []
    for t in THRESHOLDS:
        hit = probs >= t
        tp, fp, fn = (hit & (y == 1)).sum(0), (hit & (y == 0)).sum(0), (~hit & (y == 1)).sum(0)
        scores.append(float(prf_from_counts(tp, fp, fn)["weighted_f1"]))
    return float(THRESHOLDS[int(np.argmax(scores))])


def save_findings(classifier: FindingClassifier, directory: str | Path) -> None:
    """``directory/findings.safetensors``: the tensors, with the slots in the metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    save_file(tensors, str(Path(directory) / FINDINGS_FILE), metadata={"slots": ",".join(classifier.slots)})


def read_findings(directory: str | Path) -> FindingClassifier | None:
    """The classifier saved in a checkpoint directory, or ``None`` when it has none."""
    from safetensors import safe_open

    path = Path(directory) / FINDINGS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        slots = handle.metadata()["slots"].split(",")
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    dims = {slot: 0 for slot in slots}
    classifier = FindingClassifier(dims, slots)
    for name, value in tensors.items():  # buffers take the saved shapes (dims are not stored separately)
        setattr(classifier, name, value)
    return classifier
