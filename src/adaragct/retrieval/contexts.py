"""Context precompute for phase=rag training: oracle and retrieved contexts in the release layout (docs/formats.md#release-bundle, docs/method.md#retrieval).

* **oracle**: for each sentence of a volume's report, the ``top_k`` most similar (cosine) sentences about the
  same organ(s) from the reports of that volume's image neighbours for that organ. The neighbours already exclude
  the volume's own patient, so the sentence itself and its copies in sibling reconstructions can never come back.
  Upper-bound context: it shows the model what *good* retrieved sentences look like.
* **retrieved**: what the adaptive retriever returns with that sentence as the probe and the report before it as
  the text so far -- the context the model will actually see at inference.

Both files are ONE JSON object ``{sample_id: [{query_sentence:{text}, retrieved:[{text, sentence_id, score}]}]}``
(the release names it ``.jsonl``; read and written by :mod:`adaragct.formats.contexts`); a sentence for which nothing is found gets no entry. Volumes, sentences and
ties are processed in a fixed order, so two runs write byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaragct.formats.contexts import Contexts, context_key
from adaragct.ids import patient_id
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.encoders import TextEncoder
from adaragct.retrieval.retrievers import RetrievalQuery, Retriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuerySentence:
    """One report sentence to precompute context for."""

    text: str
    organs: tuple[str, ...]


def _entry(text: str, rows: Sequence[int], scores: Sequence[float], bank: SentenceBank) -> dict[str, Any]:
    return {
        "query_sentence": {"text": text},
        "retrieved": [
            {"text": bank.texts[r], "sentence_id": bank.records[r].sentence_id, "score": round(float(s), 5)}
            for r, s in zip(rows, scores, strict=True)
        ],
    }


def oracle_contexts(
    queries: Mapping[str, Sequence[QuerySentence]],
    encoder: TextEncoder,
    bank: SentenceBank,
    neighbours: Mapping[str, Mapping[str, Sequence[str]]],
    top_k: int,
    n_neighbours: int = 20,
    progress: bool = True,
) -> Contexts:
    """Oracle contexts for every sentence of every volume in ``queries`` (see the module docstring).

    Args:
        queries: ``{volume_id: [QuerySentence, ...]}`` in report order.
        encoder: embeds the query sentences (pass a ``CachedEncoder``: they are usually cached already).
        bank: the training sentence bank.
        neighbours: ``{volume_id: {organ: [image_id, ...]}}``.
        top_k: sentences per context; candidates with the same text are counted once.
        n_neighbours: image neighbours used per organ.
        progress: show a progress bar over volumes.
    """
    from tqdm.auto import tqdm

    texts = sorted({q.text for sentences in queries.values() for q in sentences})
    emb = encoder.encode(texts)
    row_of = {t: i for i, t in enumerate(texts)}
    out: Contexts = {}
    for vid in tqdm(sorted(queries), desc="oracle contexts", unit="volume", disable=not progress):
        own = patient_id(vid)
        per_organ = neighbours.get(vid, {})
        entries = []
        pools: dict[tuple[str, ...], np.ndarray] = {}  # candidate rows per organ set, shared within a volume
        for q in queries[vid]:
            if q.organs not in pools:
                rows = np.unique(
                    np.concatenate(
                        [np.zeros(0, np.int64)]
                        + [bank.volume_rows(per_organ.get(o, [])[:n_neighbours], o) for o in q.organs]
                    )
                )
                pools[q.organs] = np.array(
                    [r for r in rows if patient_id(bank.records[r].volume_id) != own], dtype=np.int64
                )
            rows = pools[q.organs]
            if len(rows) == 0:
                continue
            sims = bank.embeddings[rows] @ emb[row_of[q.text]]
            chosen, seen = [], set()
            for i in np.lexsort((rows, -sims)):
                key = context_key(bank.texts[rows[i]])
                if key not in seen:
                    seen.add(key)
                    chosen.append(i)
                    if len(chosen) == top_k:
                        break
            entries.append(_entry(q.text, rows[chosen], sims[chosen], bank))
        if entries:
            out[vid] = entries
    return out


def retrieved_contexts(
    queries: Mapping[str, Sequence[QuerySentence]],
    retriever: Retriever,
    bank: SentenceBank,
    top_k: int,
    progress: bool = True,
) -> Contexts:
    """Contexts as ``retriever`` returns them with each sentence as the probe and the sentences before it as the
    text so far (the mid-generation situation, with the ground-truth sentence standing in for the probe)."""
    from tqdm.auto import tqdm

    out: Contexts = {}
    row_of = {r.sentence_id: i for i, r in enumerate(bank.records)}
    for vid in tqdm(sorted(queries), desc="retrieved contexts", unit="volume", disable=not progress):
        entries, so_far = [], []
        for q in queries[vid]:
            result = retriever.retrieve(RetrievalQuery(vid, " ".join(so_far), q.text, top_k))
            so_far.append(q.text)
            if len(result):
                rows = [row_of[s] for s in result.sentence_ids]
                entries.append(_entry(q.text, rows, result.scores, bank))
        if entries:
            out[vid] = entries
    return out
