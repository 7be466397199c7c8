"""Batched greedy decoding with ``[RAG]``-triggered retrieval and KV-cache injection (docs/method.md#adaptive-generation).

Three parts, each readable on its own:

* :mod:`adaragct.generation.policy`: what one row does with each token (normal / probe / hold / cooldown), as a
  state machine over token ids that returns actions (feed these tokens, end the probe, finish);
* :mod:`adaragct.generation.batch`: the rows of a batch over one shared KV cache (admission, feeding, rollback
  by masking, repacking), with the feeding strategy and the cache factory as arguments;
* this module: the loop. Each step turns the logits into a greedy choice per row (repetition penalty, the
  ``[RAG]`` bias or bar of the row's mode), lets the row's policy act on it, asks the retriever when a probe
  ends, and feeds the next chunk.

Speculative rewrite (``speculative``): after a retrieval, the probe rides along behind ``[RAG]`` +
``<|ret_start|>ctx<|ret_end|>`` in the same forward as a draft of the rewritten sentence. At each draft position
the loop makes the choice it would make decoding token by token there (the penalty counting the draft tokens kept
before it), keeps the agreeing prefix, rolls the rest out of the cache and goes on from the first token that
differs. Greedy verification is exact, so the text and trace are the token-by-token loop's (the trace adds
``draft_accepted`` per retrieval), in fewer forwards.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adaragct.constants import RAG_TOKEN, RET_END, RET_START
from adaragct.data.prompt import EOT, context_span
from adaragct.generation import cache as kv
from adaragct.generation.batch import ChunkFeeder, DecodeBatch, Row
from adaragct.generation.penalty import greedy_candidates
from adaragct.generation.policy import Action, EndProbe, Feed, RowPolicy, Tokens


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings (``conf/infer.yaml: generation``); written into every prediction."""

    max_new_tokens: int = 600
    repetition_penalty: float = 1.2
    max_retrievals: int = 8
    cooldown_tokens: int = 5
    probe_max_tokens: int = 60
    min_probe_chars: int = 5
    top_k: int = field(kw_only=True)  # sentences per retrieval: generation.top_k's, passed with each query
    rag_logit_bias: float = 0.0
    compact_cache: bool = True  # repack rows when a quarter of the cache is holes (rollbacks, injections)
    # an injection beside one-token rows: True runs the span over the injecting rows alone, then the usual batch
    # step (no compute on padding: best where per-token compute dominates, e.g. CPU); False runs one forward
    # with every row padded to the span (one call fewer: can win where a forward's fixed cost dominates, a GPU)
    split_injections: bool = True
    # a [RAG] the row may not act on (retrieval=none, max_retrievals reached, cooldown): "suppress" never emits
    # it (the model was never trained on [RAG] without a context); "feed" emits it into the cache and drops it
    # from the text (plain greedy decoding of the raw model)
    ignored_rag: str = "suppress"
    # where the look-ahead probe is decoded: "after_rag" (docs/method.md#adaptive-generation, the paper's loop: [RAG] fed first, although
    # training never teaches what follows [RAG] alone, its label being the masked <|ret_start|>) or "draft" (as
    # plain decoding would go on: the model's own draft of the sentence); see adaragct.generation.policy
    probe: str = "after_rag"
    # verify the probe as a draft of the rewrite in the injection's forward (same text, fewer forwards)
    speculative: bool = True

    def __post_init__(self) -> None:
        if self.ignored_rag not in ("suppress", "feed"):
            raise ValueError(f"generation.ignored_rag must be 'suppress' or 'feed', got {self.ignored_rag!r}")
        if self.probe not in ("after_rag", "draft"):
            raise ValueError(f"generation.probe must be 'after_rag' or 'draft', got {self.probe!r}")


@dataclass
class RowOutput:
    """One generated report and its retrieval trace."""

    volume_id: str
    token_ids: list[int]
    text: str
    retrieval_count: int
    retrieval_log: list[dict[str, Any]]
    stopped_on_end_token: bool


class AdaptiveGenerator:
    """Generate reports for a batch of prefix embeddings, retrieving when the model emits ``[RAG]``.

    Args:
        lm: a Hugging Face causal LM (optionally PEFT-wrapped) that accepts ``inputs_embeds``, ``cache``,
            ``position_ids`` and ``logits_to_keep``.
        tokenizer: its tokenizer (with ``[RAG]``, ``<|ret_start|>``, ``<|ret_end|>`` and the end token).
        retriever: anything with ``retrieve(RetrievalQuery) -> RetrievalResult``; ``None`` or a retriever named
            ``"none"`` gives plain decoding.
        settings: decoding settings.
        on_forward: ``(fed, logits)`` after every batch step, with ``fed`` = [(volume_id, tokens)] per row and
            ``logits`` (B, V) after each row's tokens (a draft's tokens excluded: the logits after the injected
            context); lets tests and profilers look without changing the loop.
        feeder: how chunks reach the model (default :class:`ChunkFeeder` with ``settings.split_injections``).
        cache_factory: ``config -> cache`` (default: :func:`adaragct.generation.cache.new_cache`).
    """

    def __init__(
        self,
        lm,
        tokenizer,
        retriever,
        settings: GenerationSettings,
        on_forward: Callable | None = None,
        feeder: ChunkFeeder | None = None,
        cache_factory: Callable | None = None,
    ) -> None:
        self.lm, self.tokenizer, self.settings = lm, tokenizer, settings
        self.on_forward = on_forward
        self.feeder = feeder or ChunkFeeder(self.settings.split_injections)
        self.cache_factory = cache_factory or kv.new_cache
        self.retriever = None if retriever is None or getattr(retriever, "name", "") == "none" else retriever
        ids = tokenizer.convert_tokens_to_ids([RAG_TOKEN, RET_START, RET_END, EOT])
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise ValueError(
                f"tokenizer lacks one of {RAG_TOKEN}, {RET_START}, {RET_END}, {EOT}; build the model "
                "with adaragct's special tokens"
            )
        space = tokenizer.encode(" ", add_special_tokens=False)[-1]
        self.tokens = Tokens(rag=ids[0], end=ids[3], space=space)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.tokens.end
        self.stats = dict.fromkeys(
            (
                "forward_passes",  # model calls (prefills, steps, split chunks)
                "row_steps",  # rows x batch steps: how many times some row advanced
                "generated_tokens",  # report tokens
                "probe_tokens",  # decoded in probes (rolled back; with speculative some come back as a draft)
                "draft_tokens",  # probe tokens fed as drafts
                "draft_accepted",  # of which kept
                "dropped_columns",
                "split_forwards",
                "admissions",  # prefill forwards: rows joining the batch
            ),
            0,
        ) | {"seconds": 0.0}

    # ---------------------------------------------------------------- public
    @torch.no_grad()
    def generate(
        self, prefix_embeds: torch.Tensor, prefix_mask: torch.Tensor, volume_ids: Sequence[str]
    ) -> list[RowOutput]:
        """Decode every row to its end token or ``max_new_tokens``; returns outputs in input order."""
        items = [(prefix_embeds[i], prefix_mask[i], vid) for i, vid in enumerate(volume_ids)]
        outputs: dict[int, RowOutput] = dict(self.generate_stream(items, max(1, len(items))))
        return [outputs[i] for i in range(len(items))]

    @torch.no_grad()
    def generate_stream(
        self,
        items: Iterable[tuple[torch.Tensor, torch.Tensor, str]],
        batch_size: int,
        refill: bool = True,
    ) -> Iterator[tuple[int, RowOutput]]:
        """Continuous batching: decode ``(prefix_embeds (P, H), prefix_mask (P,), volume_id)`` items with up to
        ``batch_size`` rows at a time, yielding ``(item index, output)`` as each row finishes.

        With ``refill`` a finished row's slot is given to the next item at once: the newcomers' prefixes run
        as one forward on a cache of their own, which is then stacked under the batch's (right-aligned, holes
        masked), so a batch never waits for its slowest row. Without it the next items start only once the
        whole batch has finished (fixed batches). A row's output never depends on its neighbours.
        """
        start = time.perf_counter()
        source, exhausted = iter(enumerate(items)), False
        batch = DecodeBatch(self._forward, self.lm.config, self.feeder, self.cache_factory, self.pad_id)
        try:
            while True:
                free = batch_size - len(batch.rows)
                if free > 0 and not exhausted and (not batch.rows or (refill and batch.admits_more())):
                    fresh = list(itertools.islice(source, free))
                    exhausted = len(fresh) < free
                    if fresh:
                        self.stats["admissions"] += 1
                        self.stats["row_steps"] += len(fresh)
                        batch.admit(fresh, self._policy)
                if not batch.rows:
                    break
                self._step(batch)
                for index, row in batch.drop_done():
                    self.stats["generated_tokens"] += len(row.policy.output)
                    yield index, self._finish(row)
                if batch.rows:
                    self._feed(batch)
        finally:
            self.stats["seconds"] += time.perf_counter() - start
            self.stats["split_forwards"] = self.feeder.split_forwards

    def _policy(self) -> RowPolicy:
        return RowPolicy(self.settings, self.tokens, self._decode, can_retrieve=self.retriever is not None)

    def _feed(self, batch: DecodeBatch) -> None:
        self.stats["row_steps"] += len(batch.rows)
        fed = batch.feed()
        if self.on_forward is not None:
            windows = batch.windows()
            self.on_forward(
                [
                    (vid, tokens[: len(tokens) - len(row.draft)])
                    for (vid, tokens), row in zip(fed, batch.rows, strict=True)
                ],
                torch.stack([w[1][0] if w else batch.logits[j, -1] for j, w in enumerate(windows)]),
            )
        if self.settings.compact_cache:
            self.stats["dropped_columns"] += batch.compact()

    def _forward(self, keep: int, **inputs: Any) -> torch.Tensor:
        self.stats["forward_passes"] += 1
        out = self.lm(use_cache=True, logits_to_keep=keep, **inputs)
        return out.logits[:, -keep:].float()

    # --------------------------------------------------------------- decoding
    def _step(self, batch: DecodeBatch) -> None:
        """Every row acts on its logits: one greedy choice, or the verification of the draft it fed."""
        penalty, windows = self.settings.repetition_penalty, batch.windows()
        scores = batch.seen.apply(batch.logits[:, -1], penalty)
        choices = greedy_candidates(scores, self.tokens.rag, self.settings.rag_logit_bias)
        for j, (row, window, (best, biased, plain)) in enumerate(
            zip(batch.rows, windows, choices, strict=True)
        ):
            if window is not None:
                self._verify(batch, j, row, window[1])
                continue
            token = row.policy.choose(best, biased, plain)
            self._apply(batch, j, row, row.policy.on_token(token, best))

    def _verify(self, batch: DecodeBatch, j: int, row: Row, window: torch.Tensor) -> None:
        """Keep the longest prefix of the row's draft that token-by-token greedy decoding would have written,
        roll the rest back and act on the first choice that differs (or the one after the whole draft)."""
        draft, policy = row.draft, row.policy
        scores = batch.seen.apply_draft(j, window, draft, self.settings.repetition_penalty)
        choices = greedy_candidates(scores, self.tokens.rag, self.settings.rag_logit_bias)
        for kept, (best, biased, plain) in enumerate(choices):
            token = policy.choose(best, biased, plain)
            action = policy.on_token(token, best)
            if kept == len(draft) or token != draft[kept] or action != Feed((token,), decoded=token):
                break
            batch.seen.add(j, token)  # written, and already in the cache
        policy.accepted(kept)
        self.stats["draft_tokens"] += len(draft)
        self.stats["draft_accepted"] += kept
        batch.roll_back(j, row.draft_cols[kept:])
        row.draft, row.draft_cols = (), []
        self._apply(batch, j, row, action)

    def _apply(self, batch: DecodeBatch, j: int, row: Row, action: Action) -> None:
        """Carry out a policy's action: queue tokens to feed, or end a probe (roll back, retrieve, act again)."""
        if isinstance(action, Feed):
            row.pending, row.pending_probe, row.draft = action.tokens, action.probe, action.draft
            if action.decoded is not None:
                batch.seen.add(j, action.decoded)
            return
        if isinstance(action, EndProbe):
            self.stats["probe_tokens"] += len(row.policy.probe)
            batch.roll_back(j, row.probe_cols)  # the probe (and its [RAG]) leave the row's attention
            row.probe_cols = []
            batch.seen.reset_row(j, row.policy.output)
            self._apply(batch, j, row, self._retrieve(row, action))

    def _retrieve(self, row: Row, end: EndProbe) -> Action:
        """Ask the retriever with the probe (when it is long enough); the policy decides what follows."""
        if not end.ask:
            return row.policy.after_probe(end.probe_text, None)
        from adaragct.retrieval.retrievers import RetrievalQuery

        asked = sum(entry["action"] != "cancelled" for entry in row.policy.log)  # earlier queries of this row
        query = RetrievalQuery(
            row.volume_id,
            self._text(row.policy.output),
            end.probe_text,
            top_k=self.settings.top_k,
            retrieval_index=asked,
        )
        result = self.retriever.retrieve(query)
        if len(result) == 0:
            return row.policy.after_probe(end.probe_text, result)
        span = context_span(result.texts)
        ids = tuple(self.tokenizer.encode(span, add_special_tokens=False))
        return row.policy.after_probe(end.probe_text, result, ids, span[len(RET_START) :][:160])

    # ----------------------------------------------------------------- output
    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _text(self, token_ids: list[int]) -> str:
        return self._decode([t for t in token_ids if t != self.tokens.rag]).strip()

    def _finish(self, row: Row) -> RowOutput:
        policy = row.policy
        return RowOutput(
            row.volume_id,
            list(policy.output),
            self._text(policy.output),
            policy.retrievals,
            policy.log,
            policy.hit_end,
        )
