"""Retrieval-quality figures on held-out volumes, printed by ``python -m adaragct.index`` (and asserted in tests).

Two questions, each answered against a baseline measured in the same run:

* **Image neighbours**: for a valid volume with a positive finding of organ o, how often does an o-neighbour share
  one of those findings, compared with a random training volume? (ratio > 1 means the organ embeddings carry the
  finding signal that retrieval relies on.)
* **Adaptive retrieval**: with a ground-truth sentence as the probe, what share of the top-3 returned sentences
  agree with it -- same normal/abnormal flag, and for abnormal probes at least one shared positive finding
  (rule labeler) -- compared with random sentences of the same organ?
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from adaragct.constants import FINDING_TO_ORGAN, FINDINGS, ORGANS
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.retrievers import RetrievalQuery, Retriever


@dataclass(frozen=True)
class NeighbourAgreement:
    """Share of neighbours sharing a positive finding of the query's organ, vs random training volumes."""

    pairs: int
    neighbour_share: float
    random_share: float
    per_organ: dict[str, tuple[int, float, float]]

    @property
    def ratio(self) -> float:
        return self.neighbour_share / self.random_share if self.random_share > 0 else float("nan")


def neighbour_finding_agreement(
    neighbours: Mapping[str, Mapping[str, Sequence[str]]],
    query_labels: pd.DataFrame,
    train_labels: pd.DataFrame,
) -> NeighbourAgreement:
    """Compare image neighbours with random training volumes on shared positive findings, per organ.

    The random baseline is exact (the expectation over all training volumes), so it has no sampling noise.
    Query volumes and organs without a positive finding are not counted.
    """
    train = train_labels.loc[:, list(FINDINGS)].astype(bool)
    pos_of = {vid: i for i, vid in enumerate(train.index)}
    matrix = train.to_numpy()
    neigh_sum = rand_sum = 0.0
    pairs = 0
    per_organ = {}
    for organ in ORGANS:
        cols = [j for j, f in enumerate(FINDINGS) if FINDING_TO_ORGAN[f] == organ]
        n = ns = rs = 0.0
        for vid, row in query_labels.loc[:, list(FINDINGS)].astype(bool).iterrows():
            positive = [j for j in cols if row.iloc[j]]
            ids = [v for v in neighbours.get(vid, {}).get(organ, []) if v in pos_of]
            if not positive or not ids:
                continue
            ns += matrix[[pos_of[v] for v in ids]][:, positive].any(axis=1).mean()
            rs += matrix[:, positive].any(axis=1).mean()
            n += 1
        if n:
            per_organ[organ] = (int(n), ns / n, rs / n)
        pairs += int(n)
        neigh_sum += ns
        rand_sum += rs
    return NeighbourAgreement(pairs, neigh_sum / max(pairs, 1), rand_sum / max(pairs, 1), per_organ)


@lru_cache(maxsize=100_000)
def _positive_findings(text: str) -> frozenset[int]:
    return frozenset(np.flatnonzero(_labeler().label_one(text)).tolist())


@lru_cache(maxsize=1)
def _labeler():
    from adaragct.eval.labelers.rules import RuleLabeler

    return RuleLabeler()


def _agrees(probe: str, probe_normal: bool, text: str, normal: bool) -> tuple[bool, bool]:
    flag = probe_normal == normal
    wanted = _positive_findings(probe)
    finding = flag and (probe_normal or not wanted or bool(wanted & _positive_findings(text)))
    return flag, finding


@dataclass(frozen=True)
class RetrievalPrecision:
    """Precision@k of retrieved sentences agreeing with the probe, and the same for random same-organ sentences."""

    probes: int
    flag_precision: float
    finding_precision: float
    random_flag_precision: float
    random_finding_precision: float
    empty: int


def adaptive_precision(
    queries: Mapping[str, Sequence[tuple[str, bool]]],
    retriever: Retriever,
    bank: SentenceBank,
    k: int,
    seed: int = 0,
) -> RetrievalPrecision:
    """Precision@k of ``retriever`` with each ground-truth sentence as the probe.

    Args:
        queries: ``{volume_id: [(sentence, normal flag), ...]}`` in report order (held-out volumes).
        retriever: usually the adaptive retriever.
        bank: the bank it searches (for flags and the random baseline).
        k: sentences per probe.
        seed: seed of the random same-organ baseline.
    """
    rng = np.random.default_rng(seed)
    hits = np.zeros(4)
    counted = np.zeros(2)
    probes = empty = 0
    row_of = {r.sentence_id: i for i, r in enumerate(bank.records)}
    for vid in sorted(queries):
        so_far: list[str] = []
        for text, normal in queries[vid]:
            result = retriever.retrieve(RetrievalQuery(vid, " ".join(so_far), text, k))
            so_far.append(text)
            probes += 1
            if not len(result):
                empty += 1
                continue
            for sid in result.sentence_ids:
                rec = bank.records[row_of[sid]]
                hits[:2] += _agrees(text, normal, rec.text, rec.normal)
            counted[0] += len(result)
            organ = result.organ or "other"
            pool = bank.partitions[organ]
            for row in rng.choice(pool, size=min(k, len(pool)), replace=False):
                rec = bank.records[int(row)]
                hits[2:] += _agrees(text, normal, rec.text, rec.normal)
            counted[1] += min(k, len(pool))
    c0, c1 = max(counted[0], 1), max(counted[1], 1)
    return RetrievalPrecision(probes, hits[0] / c0, hits[1] / c0, hits[2] / c1, hits[3] / c1, empty)
