"""Retrievers: one small protocol that the generation loop and the context precompute call (docs/method.md#retrieval, docs/method.md#adaptive-generation).

``retrieval=none|oracle|adaptive|text2text|corrupt`` picks one through Hydra (``conf/retrieval/*.yaml`` names the class
in ``_target_`` plus its numbers); runtime objects -- the bank, the encoder, the neighbours, the contexts -- are
never built from YAML: each class declares the ones it needs in ``needs`` (a subset of :data:`RUNTIME_OBJECTS`), and
:func:`build_retriever` passes exactly those (:func:`adaragct.retrieval.runtime.load_retriever` builds them from
what the index stage wrote). A new retriever is a class with ``name``, ``needs`` and ``retrieve``, and a YAML::

    retriever = build_retriever(cfg.retrieval, bank=bank, encoder=encoder, neighbours=neighbours)
    result = retriever.retrieve(RetrievalQuery("valid_1_a_1", text_so_far, "The heart is enlarged.", top_k=3))

How many sentences a query returns is the caller's setting, passed with every query (``generation.top_k`` at
inference, ``contexts.top_k`` in the index stage): a retriever holds no count of its own.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from adaragct.data.sentences import last_sentence_end
from adaragct.errors import DataError, UsageError
from adaragct.formats.contexts import context_key
from adaragct.ids import normalize_volume_id
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.encoders import MemoEncoder, TextEncoder
from adaragct.retrieval.mmr import BLEU2, MmrBleu, bleu2, mmr_select

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalQuery:
    """One retrieval request.

    Attributes:
        volume_id: the volume being reported (selects its image neighbours / oracle contexts).
        text_so_far: report text generated before the ``[RAG]`` token.
        probe: the look-ahead sentence decoded after ``[RAG]`` (or, in the precompute, a ground-truth sentence).
        top_k: how many sentences to return (the caller's setting: ``generation.top_k``, ``contexts.top_k``).
        retrieval_index: how many times this report asked before (0 at its first ``[RAG]``): lets a random
            retriever draw the same sentences for a volume whatever else shares its batch.
    """

    volume_id: str
    text_so_far: str
    probe: str
    top_k: int
    retrieval_index: int = 0


@dataclass(frozen=True)
class RetrievalResult:
    """What a retriever returns; ``organ`` / ``note`` are for the retrieval trace."""

    texts: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    sentence_ids: tuple[str, ...] = ()
    organ: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


#: keys of a conf/retrieval node that build_retriever reads itself (``name`` labels runs), not constructor arguments
CONFIG_ONLY_KEYS = ("name",)
#: the runtime objects a retriever may declare in ``needs`` (built by adaragct.retrieval.runtime): the sentence
#: bank, the probe encoder, the per-organ image neighbours, the oracle contexts
RUNTIME_OBJECTS = ("bank", "encoder", "neighbours", "contexts")


@runtime_checkable
class Retriever(Protocol):
    """Anything with ``retrieve(query) -> result``, a ``name`` for traces and the runtime objects it ``needs`` (its
    constructor's arguments of those names, of :data:`RUNTIME_OBJECTS`)."""

    name: str
    needs: tuple[str, ...]

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult: ...


def current_sentence(text_so_far: str, probe: str) -> str:
    """The sentence being written: the unfinished tail of ``text_so_far`` (after its last sentence end, the rule of
    :data:`adaragct.data.sentences.SENTENCE_END`) + ``probe``.

    Organ detection counts keywords over this rather than the whole report so far, which would always vote
    "lung" (the longest section of every chest-CT report).
    """
    tail = text_so_far[last_sentence_end(text_so_far) :]
    return f"{tail.strip()} {probe.strip()}".strip()


class NoRetriever:
    """``retrieval=none``: never returns context (plain generation; the model's [RAG] tokens are dropped)."""

    name = "none"
    needs: tuple[str, ...] = ()

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        return RetrievalResult(note="retrieval disabled")


class OracleRetriever:
    """``retrieval=oracle``: the precomputed context of the sentence being written, looked up by ``context_key``.

    A generated probe rarely equals a reference sentence character for character, so when the exact key is absent
    the entry whose key has the highest BLEU-2 with the probe is used, if it reaches ``min_bleu`` (null: exact
    matches only).

    Args:
        contexts: ``{volume_id: {context_key: [texts]}}`` from :func:`adaragct.formats.contexts.read_contexts`.
        min_bleu: fuzzy-match threshold, or None.
    """

    name = "oracle"
    needs: tuple[str, ...] = ("contexts",)

    def __init__(
        self,
        contexts: Mapping[str, Mapping[str, Sequence[str]]],
        min_bleu: float | None = 0.5,
    ) -> None:
        self.contexts = contexts
        self.min_bleu = min_bleu

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        table = self.contexts.get(normalize_volume_id(query.volume_id))
        if not table:
            return RetrievalResult(note="no oracle contexts for this volume")
        key = context_key(current_sentence(query.text_so_far, query.probe))
        match, score = key, 1.0
        if key not in table:
            if self.min_bleu is None:
                return RetrievalResult(note="no oracle context for this sentence")
            score, match = max(((bleu2(key, k), k) for k in table), key=lambda t: (t[0], t[1]))
            if score < self.min_bleu:
                return RetrievalResult(note=f"no oracle context (best BLEU-2 {score:.2f} < {self.min_bleu})")
        texts = tuple(table[match][: query.top_k])
        return RetrievalResult(
            texts=texts,
            scores=(score,) * len(texts),
            sentence_ids=("",) * len(texts),
            note=f"oracle key {match!r}",
        )


def _memo(encoder: TextEncoder, size: int) -> TextEncoder:
    """The probe encoder behind an in-memory memo of ``size`` texts (0: none; see :class:`MemoEncoder`)."""
    return MemoEncoder(encoder, size) if size > 0 else encoder


def _unique_by_text(texts: Sequence[str], order: np.ndarray) -> np.ndarray:
    """Positions of ``order`` keeping the first occurrence of each (case/edge-punctuation-insensitive) text."""
    seen: set[str] = set()
    keep = []
    for i in order:
        key = context_key(texts[i])
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


class AdaptiveRetriever:
    """``retrieval=adaptive`` (the paper's): organ-aware, image-conditioned, diverse.

    1. organ = ``organ_of_text`` over the sentence being written (:func:`current_sentence`);
    2. candidates = that organ's sentences of the volume's top-``n_neighbours`` image neighbours for that organ;
    3. cosine(probe, candidate), duplicates of one text collapsed, top ``n_candidates``;
    4. MMR (``mmr_lambda``, BLEU-2 redundancy of the ``mmr_bleu`` variant: ``release``, the paper's, or
       ``smoothed``; see :mod:`adaragct.retrieval.mmr`) down to the query's ``top_k``.

    A volume absent from the neighbours file is an error (``missing_neighbours="error"``, the default: it means
    the index stage did not cover this split) or falls back to the organ's whole bank partition (``"bank"``).
    """

    name = "adaptive"
    needs: tuple[str, ...] = ("bank", "encoder", "neighbours")

    def __init__(
        self,
        bank: SentenceBank,
        encoder: TextEncoder,
        neighbours: Mapping[str, Mapping[str, Sequence[str]]],
        n_neighbours: int = 20,
        n_candidates: int = 50,
        mmr_lambda: float = 0.7,
        missing_neighbours: Literal["error", "bank"] = "error",
        probe_memo: int = 65536,
        mmr_bleu: MmrBleu = "release",
    ) -> None:
        if encoder.encoder_id != bank.encoder_id:
            raise ValueError(
                f"adaptive retriever: bank built with {bank.encoder_id!r}, encoder is {encoder.encoder_id!r}"
            )
        if mmr_bleu not in BLEU2:
            raise UsageError(
                f"retrieval.mmr_bleu={mmr_bleu}", "not a BLEU-2 variant", f"use one of {sorted(BLEU2)}"
            )
        self.mmr_bleu = mmr_bleu
        self.bank, self.encoder, self.neighbours = bank, _memo(encoder, probe_memo), neighbours
        self.n_neighbours, self.n_candidates = n_neighbours, n_candidates
        self.mmr_lambda, self.missing_neighbours = mmr_lambda, missing_neighbours

    def detect_organ(self, query: RetrievalQuery) -> str:
        from adaragct.data.sentences import organ_of_text

        return organ_of_text(current_sentence(query.text_so_far, query.probe))

    def candidates(self, volume_id: str, organ: str) -> np.ndarray | None:
        """Bank rows of ``organ`` sentences from the volume's image neighbours (None: use the whole partition)."""
        per_organ = self.neighbours.get(normalize_volume_id(volume_id))
        if per_organ is None:
            if self.missing_neighbours == "bank":
                return None
            raise DataError(
                "image neighbours",
                volume_id,
                "volume has no image neighbours",
                "run `python -m adaragct.index` over this split, or set "
                "retrieval.missing_neighbours=bank to search the organ's whole bank partition",
            )
        return self.bank.volume_rows(per_organ.get(organ, [])[: self.n_neighbours], organ)

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        organ = self.detect_organ(query)
        if self.bank.count(organ) == 0:
            return RetrievalResult(organ=organ, note=f"no sentences for organ '{organ}' in the bank")
        rows = self.candidates(query.volume_id, organ)
        probe = self.encoder.encode([query.probe])[0]
        if rows is None:
            scores, found = self.bank.search(probe[None], self.n_candidates * 2, organs=[organ])
            keep = found[0] >= 0
            rows, sims = found[0][keep], scores[0][keep]
        else:
            sims = self.bank.embeddings[rows] @ probe
        if len(rows) == 0:
            return RetrievalResult(organ=organ, note=f"no '{organ}' sentences among the image neighbours")
        order = np.lexsort((rows, -sims))
        order = _unique_by_text([self.bank.texts[r] for r in rows], order)[: self.n_candidates]
        rows, sims = rows[order], sims[order]
        picked = mmr_select(
            [self.bank.texts[r] for r in rows], sims, query.top_k, self.mmr_lambda, self.mmr_bleu
        )
        return RetrievalResult(
            texts=tuple(self.bank.texts[rows[i]] for i in picked),
            scores=tuple(float(sims[i]) for i in picked),
            sentence_ids=tuple(self.bank.records[rows[i]].sentence_id for i in picked),
            organ=organ,
            note=f"{len(rows)} candidates",
        )


class Text2TextRetriever:
    """``retrieval=text2text`` (the release's ``--text2text``, its one-stage retrieval): the probe's nearest
    ``n_candidates`` sentences of the whole bank, no organ or image filter, then MMR down to ``top_k`` as the
    release does (``mmr_lambda``, ``mmr_bleu``; ``mmr_lambda=1`` is plain nearest-first).

    The baseline that shows what the organ index and the image neighbours add. Same-patient sentences are
    excluded (a training volume must not retrieve its own report).
    """

    name = "text2text"
    needs: tuple[str, ...] = ("bank", "encoder")

    def __init__(
        self,
        bank: SentenceBank,
        encoder: TextEncoder,
        n_candidates: int = 50,
        probe_memo: int = 65536,
        mmr_lambda: float = 0.7,
        mmr_bleu: MmrBleu = "release",
    ) -> None:
        if encoder.encoder_id != bank.encoder_id:
            raise ValueError(
                f"text2text retriever: bank built with {bank.encoder_id!r}, encoder is {encoder.encoder_id!r}"
            )
        if mmr_bleu not in BLEU2:
            raise UsageError(
                f"retrieval.mmr_bleu={mmr_bleu}", "not a BLEU-2 variant", f"use one of {sorted(BLEU2)}"
            )
        self.bank, self.encoder = bank, _memo(encoder, probe_memo)
        self.n_candidates, self.mmr_lambda, self.mmr_bleu = n_candidates, mmr_lambda, mmr_bleu

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        from adaragct.ids import patient_id

        probe = self.encoder.encode([query.probe])
        scores, rows = self.bank.search(probe, self.n_candidates)
        own = patient_id(query.volume_id)
        keep = [
            i for i, r in enumerate(rows[0]) if r >= 0 and patient_id(self.bank.records[r].volume_id) != own
        ]
        order = _unique_by_text([self.bank.texts[rows[0][i]] for i in keep], np.arange(len(keep)))
        kept = [keep[i] for i in order]
        chosen = mmr_select(
            [self.bank.texts[rows[0][i]] for i in kept],
            np.array([scores[0][i] for i in kept]),
            query.top_k,
            self.mmr_lambda,
            self.mmr_bleu,
        )
        picked = [kept[j] for j in chosen]
        return RetrievalResult(
            texts=tuple(self.bank.texts[rows[0][i]] for i in picked),
            scores=tuple(float(scores[0][i]) for i in picked),
            sentence_ids=tuple(self.bank.records[rows[0][i]].sentence_id for i in picked),
            organ=None,
            note="whole bank",
        )


class CorruptRetriever:
    """``retrieval=corrupt`` (the release's ``--corrupt-rag`` ablation): ``top_k`` sentences drawn uniformly, without
    replacement, from the whole sentence bank, the probe ignored.

    What does the model make of wrong context? The release drew with Python's unseeded ``random``; here the draw of
    the n-th retrieval of a volume is seeded by ``(seed, volume id, n)``, so a rerun, another batch size or another
    process count gives the same sentences.
    """

    name = "corrupt"
    needs: tuple[str, ...] = ("bank",)

    def __init__(self, bank: SentenceBank, seed: int = 0) -> None:
        self.bank, self.seed = bank, seed

    def draw(self, volume_id: str, retrieval_index: int, k: int) -> np.ndarray:
        """Bank rows of one draw: distinct, uniform, a function of (seed, volume, retrieval index) alone."""
        volume = int.from_bytes(
            hashlib.sha256(normalize_volume_id(volume_id).encode()).digest()[:8], "little"
        )
        rng = np.random.default_rng([self.seed, volume, retrieval_index])
        return rng.choice(len(self.bank.texts), size=min(k, len(self.bank.texts)), replace=False)

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        rows = self.draw(query.volume_id, query.retrieval_index, query.top_k)
        return RetrievalResult(
            texts=tuple(self.bank.texts[r] for r in rows),
            sentence_ids=tuple(self.bank.records[r].sentence_id for r in rows),
            note="random sentences of the bank (probe ignored)",
        )


def build_retriever(cfg: Mapping[str, Any], **runtime: Any) -> Retriever:
    """Instantiate ``cfg._target_`` with the config's numbers plus the runtime objects its class ``needs``.

    Args:
        cfg: a ``conf/retrieval/*.yaml`` node (``_target_`` + constructor arguments).
        **runtime: objects built at the call site (``bank``, ``encoder``, ``neighbours``, ``contexts``); the class's
            ``needs`` are passed, the others ignored, so one call site serves every retriever.

    Hydra's ``instantiate`` would do the call, but not the checks: a misspelt key or a runtime object the class
    needs and the caller did not build is an error naming them here, before anything is constructed.
    """
    from hydra.utils import get_class

    params = {k: v for k, v in dict(cfg).items() if k != "_target_" and k not in CONFIG_ONLY_KEYS}
    target = get_class(cfg["_target_"])
    needs = retriever_needs(target)
    accepted = inspect.signature(target).parameters
    unknown = sorted(set(params) - (set(accepted) - set(needs)))
    if unknown:
        raise ValueError(
            f"retrieval config {cfg['_target_']}: unknown keys {unknown} (accepted: {sorted(set(accepted) - set(needs))})"
        )
    missing = [n for n in needs if runtime.get(n) is None]
    if missing:
        raise ValueError(
            f"retrieval {cfg['_target_']} needs runtime objects {missing}: pass them to build_retriever"
        )
    log.info("retriever <%s>", cfg["_target_"])
    return target(**params, **{n: runtime[n] for n in needs})


def retriever_needs(target: type) -> tuple[str, ...]:
    """The runtime objects a retriever class declares in ``needs``, checked against :data:`RUNTIME_OBJECTS` and its
    constructor (a required constructor argument that is neither a config key nor declared is an error too)."""
    needs = tuple(getattr(target, "needs", ()))
    name = f"{target.__module__}.{target.__qualname__}"
    accepted = inspect.signature(target).parameters
    wrong = [n for n in needs if n not in RUNTIME_OBJECTS or n not in accepted]
    if wrong:
        raise TypeError(
            f"{name}.needs: {wrong} are not runtime objects its constructor takes (fix: needs lists constructor "
            f"arguments among {list(RUNTIME_OBJECTS)})"
        )
    undeclared = [
        n
        for n in RUNTIME_OBJECTS
        if n in accepted and n not in needs and accepted[n].default is inspect.Parameter.empty
    ]
    if undeclared:
        raise TypeError(
            f"{name}: its constructor takes {undeclared} (fix: declare needs = {(*needs, *undeclared)!r})"
        )
    return needs
