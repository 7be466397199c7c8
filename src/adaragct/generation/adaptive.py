"""Batched greedy decoding with ``[RAG]``-triggered retrieval and KV-cache injection (SPEC 5).

Every row of a batch runs its own small state machine over one shared KV cache:

* **normal**: pick the next token greedily (repetition penalty, optional ``[RAG]`` logit bias). If it is
  ``[RAG]`` and the row may retrieve, switch to probe mode. A ``[RAG]`` the row may not act on is suppressed
  (default) or, with ``ignored_rag="feed"``, kept in the cache and dropped from the text.
* **probe**: decode a look-ahead sentence (up to ``probe_max_tokens``, until ``.?!`` or the end token), then roll
  the row back to before ``[RAG]``. A probe under ``min_probe_chars`` cancels: a space is written instead and
  ``[RAG]`` is barred for ``cooldown_tokens``. Otherwise the retriever gets the probe, and ``[RAG]`` +
  ``<|ret_start|>ctx<|ret_end|>`` is fed into the cache (not the output); the model then rewrites the sentence.
  A retriever that finds nothing (e.g. no oracle context for the sentence) leaves the sentence to the model
  alone: the row takes the token it would have taken without ``[RAG]``, and ``[RAG]`` is barred until the
  sentence ends (the model would otherwise ask again a few tokens later, for the same sentence).

Rows advance together: each forward feeds every active row its pending tokens (one token, or a whole injection
span), right-aligned in a chunk; shorter rows get masked holes. A rollback masks the row's probe columns instead
of re-running anything, and position ids count only a row's unmasked tokens, so attention and RoPE see exactly
what a fresh forward over ``prefix + [RAG] + context`` would see. Finished rows leave the batch (with
:meth:`AdaptiveGenerator.generate_stream`, their slots go to the next reports), and cache columns that no active
row attends to are dropped.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adaragct.constants import RAG_TOKEN, RET_END, RET_START
from adaragct.data.prompt import EOT, context_span
from adaragct.generation import cache as kv
from adaragct.generation.penalty import SeenTokens

_SENTENCE_END = re.compile(r"(?<!\d)[.?!]")  # "1.5 cm" does not end a probe; "12 mm." does


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

    def __post_init__(self) -> None:
        if self.ignored_rag not in ("suppress", "feed"):
            raise ValueError(f"generation.ignored_rag must be 'suppress' or 'feed', got {self.ignored_rag!r}")


@dataclass
class RowOutput:
    """One generated report and its retrieval trace."""

    volume_id: str
    token_ids: list[int]
    text: str
    retrieval_count: int
    retrieval_log: list[dict[str, Any]]
    stopped_on_end_token: bool


@dataclass
class _Row:
    volume_id: str
    count: int  # unmasked tokens of this row in the cache: the next position id
    output: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    probing: bool = False
    probe: list[int] = field(default_factory=list)
    probe_cols: list[int] = field(default_factory=list)
    count_before_probe: int = 0
    cooldown: int = 0
    hold: bool = False  # [RAG] barred until the sentence ends (its retrieval found nothing)
    # the scores at the step that chose [RAG], with [RAG] masked: the token the row takes if nothing is found
    fallback: torch.Tensor | None = None
    retrievals: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    hit_end: bool = False


class AdaptiveGenerator:
    """Generate reports for a batch of prefix embeddings, retrieving when the model emits ``[RAG]``.

    Args:
        lm: a Hugging Face causal LM (optionally PEFT-wrapped) that accepts ``inputs_embeds``, ``cache``,
            ``position_ids`` and ``logits_to_keep``.
        tokenizer: its tokenizer (with ``[RAG]``, ``<|ret_start|>``, ``<|ret_end|>`` and the end token).
        retriever: anything with ``retrieve(RetrievalQuery) -> RetrievalResult``; ``None`` or a retriever named
            ``"none"`` gives plain decoding.
        settings: decoding settings.
    """

    def __init__(self, lm, tokenizer, retriever, settings: GenerationSettings, on_forward=None) -> None:
        self.lm, self.tokenizer, self.settings = lm, tokenizer, settings
        # on_forward(fed, logits): called after every chunk with [(volume_id, tokens fed)] per active row; lets
        # tests and profilers see the logits right after an injection without changing the loop
        self.on_forward = on_forward
        self.retriever = None if retriever is None or getattr(retriever, "name", "") == "none" else retriever
        ids = tokenizer.convert_tokens_to_ids([RAG_TOKEN, RET_START, RET_END, EOT])
        if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
            raise ValueError(
                f"tokenizer lacks one of {RAG_TOKEN}, {RET_START}, {RET_END}, {EOT}; build the model "
                "with adaragct's special tokens"
            )
        self.rag_id, self.end_id = ids[0], ids[3]
        self.space_id = tokenizer.encode(" ", add_special_tokens=False)[-1]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_id
        self.stats = {
            "forward_passes": 0,
            "seconds": 0.0,
            "generated_tokens": 0,
            "dropped_columns": 0,
            "split_forwards": 0,
            "probe_tokens": 0,  # decoded after [RAG], then rolled back (the cost of asking)
            "admissions": 0,  # prefill forwards: rows joining the batch
        }

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
        source = iter(enumerate(items))
        exhausted = False
        rows: list[_Row] = []
        index_of: list[int] = []
        cache = mask = seen = logits = None
        try:
            while True:
                free = batch_size - len(rows)
                if free > 0 and not exhausted and (not rows or (refill and kv.supported(cache))):
                    fresh = list(itertools.islice(source, free))
                    exhausted = len(fresh) < free
                    if fresh:
                        cache, mask, seen, logits = self._admit(
                            fresh, rows, index_of, cache, mask, seen, logits
                        )
                if not rows:
                    break
                self._decide(logits, rows, seen, mask)
                if any(r.done for r in rows):  # finished rows leave the batch
                    keep = [j for j, r in enumerate(rows) if not r.done]
                    for j, row in enumerate(rows):
                        if row.done:
                            self.stats["generated_tokens"] += len(row.output)
                            yield index_of[j], self._finish(row)
                    rows, index_of = [rows[j] for j in keep], [index_of[j] for j in keep]
                    if not rows:
                        cache = mask = seen = logits = None
                        continue
                    index = torch.tensor(keep, device=mask.device)
                    self._select_rows(cache, index)
                    mask = mask[index]
                    seen.select(index)
                mask, logits = self._feed(rows, mask, cache)
                if self.settings.compact_cache:
                    mask = self._compact(mask, cache, rows)
        finally:
            self.stats["seconds"] += time.perf_counter() - start

    def _admit(self, fresh, rows: list[_Row], index_of: list[int], cache, mask, seen, logits):
        """Prefill ``fresh`` (index, (embeds, mask, volume_id)) items and append them to the batch."""
        self.stats["admissions"] += 1
        width = max(int(item[1].shape[0]) for _, item in fresh)
        first = fresh[0][1][0]
        embeds = first.new_zeros((len(fresh), width, first.shape[-1]))
        new_mask = torch.zeros((len(fresh), width), dtype=torch.long, device=first.device)
        for j, (_, (emb, m, _)) in enumerate(fresh):  # right-aligned: each prefix ends at the last column
            embeds[j, width - emb.shape[0] :] = emb
            new_mask[j, width - emb.shape[0] :] = m.long()
        new_cache = self._new_cache()
        positions = (new_mask.cumsum(-1) - 1).masked_fill(new_mask == 0, 1)
        new_logits = self._forward(
            inputs_embeds=embeds, attention_mask=new_mask, position_ids=positions, cache=new_cache
        )
        counts = new_mask.sum(-1).tolist()
        rows += [_Row(item[2], count=int(n)) for (_, item), n in zip(fresh, counts, strict=True)]
        index_of += [i for i, _ in fresh]
        if cache is None:
            return (
                new_cache,
                new_mask,
                SeenTokens(len(fresh), new_logits.shape[-1], new_logits.device),
                new_logits,
            )
        shift = kv.stack_rows(cache, new_cache)
        for row in rows[: len(rows) - len(fresh)]:  # the old rows' columns moved right by the shift
            row.probe_cols = [c + shift for c in row.probe_cols]
        total = max(mask.shape[1], width)
        mask = torch.cat([kv.pad_left(mask, total, 1), kv.pad_left(new_mask, total, 1)])
        seen.extend(len(fresh))
        return cache, mask, seen, torch.cat([logits, new_logits])

    def _new_cache(self):
        return kv.new_cache(self.lm.config)

    # --------------------------------------------------------------- decoding
    def _forward(self, **inputs: Any) -> torch.Tensor:
        self.stats["forward_passes"] += 1
        out = self.lm(use_cache=True, logits_to_keep=1, **inputs)
        return out.logits[:, -1].float()

    def _may_retrieve(self, row: _Row) -> bool:
        return (
            self.retriever is not None
            and row.retrievals < self.settings.max_retrievals
            and row.cooldown == 0
            and not row.hold
        )

    def _decide(self, logits: torch.Tensor, rows: list[_Row], seen: SeenTokens, mask: torch.Tensor) -> None:
        """Choose each active row's pending tokens from its logits (B_active, V)."""
        scores = seen.apply(logits, self.settings.repetition_penalty).clone()
        bias = torch.tensor(
            [self.settings.rag_logit_bias if self._may_retrieve(r) and not r.probing else 0.0 for r in rows],
            device=scores.device,
        )
        scores[:, self.rag_id] += bias
        barred = [
            r.probing or (self.settings.ignored_rag == "suppress" and not self._may_retrieve(r)) for r in rows
        ]
        barred = torch.tensor(barred, device=scores.device)
        scores[:, self.rag_id] = scores[:, self.rag_id].masked_fill(barred, float("-inf"))
        for j, (row, token) in enumerate(zip(rows, scores.argmax(-1).tolist(), strict=True)):
            if row.probing:
                self._probe_step(row, j, token, seen, mask)
                continue
            if token == self.rag_id and self._may_retrieve(row):
                row.fallback = scores[j].clone()
                row.fallback[self.rag_id] = float("-inf")
            self._normal_step(row, j, token, seen)

    def _normal_step(self, row: _Row, j: int, token: int, seen: SeenTokens) -> None:
        if token == self.end_id:
            row.done = row.hit_end = True
            return
        if token == self.rag_id and self._may_retrieve(row):
            row.probing, row.probe, row.probe_cols = True, [], []
            row.count_before_probe, row.pending = row.count, [self.rag_id]
            return
        self._emit(row, j, token, seen)
        row.cooldown = max(0, row.cooldown - 1)
        if row.hold and self._ends_sentence(row.output):
            row.hold = False

    def _ends_sentence(self, output: list[int]) -> bool:
        """Whether the last token ends a sentence (decoded with the one before, so "1.5" is not an end)."""
        before = self.tokenizer.decode(output[-2:-1], skip_special_tokens=True)
        text = self.tokenizer.decode(output[-2:], skip_special_tokens=True)
        return any(m.end() > len(before) for m in _SENTENCE_END.finditer(text))

    def _emit(self, row: _Row, j: int, token: int, seen: SeenTokens) -> None:
        row.output.append(token)
        seen.add(j, token)
        row.pending = [token]
        if len(row.output) >= self.settings.max_new_tokens:
            row.done = True

    def _probe_step(self, row: _Row, j: int, token: int, seen: SeenTokens, mask: torch.Tensor) -> None:
        ended = token == self.end_id
        if not ended:
            row.probe.append(token)
            seen.add(j, token)
            self.stats["probe_tokens"] += 1
        text = self.tokenizer.decode(row.probe, skip_special_tokens=True)
        match = _SENTENCE_END.search(text)
        if not (ended or match or len(row.probe) >= self.settings.probe_max_tokens):
            row.pending = [token]
            return
        probe_text = (text[: match.end()] if match else text).strip()
        # roll back: the probe and its [RAG] leave the row's attention; nothing is re-run
        mask[j, row.probe_cols] = 0
        row.count, row.probing = row.count_before_probe, False
        seen.reset_row(j, row.output)
        self._retrieve_or_cancel(row, j, probe_text, seen)

    def _retrieve_or_cancel(self, row: _Row, j: int, probe_text: str, seen: SeenTokens) -> None:
        entry: dict[str, Any] = {"step": len(row.output), "probe_text": probe_text}
        result = None
        if len(probe_text) >= self.settings.min_probe_chars:
            from adaragct.retrieval.retrievers import RetrievalQuery

            text_so_far = self._text(row.output)
            result = self.retriever.retrieve(
                RetrievalQuery(row.volume_id, text_so_far, probe_text, top_k=self.settings.top_k)
            )
        fallback, row.fallback = row.fallback, None
        if result is None:
            entry["action"] = "cancelled"
            row.log.append(entry)
            self._emit(row, j, self.space_id, seen)
            row.cooldown = self.settings.cooldown_tokens
            return
        if len(result) == 0:
            entry.update(action="empty", organ=result.organ, note=result.note)
            row.log.append(entry)
            row.hold = True
            self._normal_step(row, j, int(fallback.argmax()), seen)
            return
        span = context_span(result.texts)
        row.pending = [self.rag_id, *self.tokenizer.encode(span, add_special_tokens=False)]
        row.retrievals += 1
        entry.update(
            action="retrieved",
            organ=result.organ,
            sentence_ids=list(result.sentence_ids),
            scores=[round(float(s), 6) for s in result.scores],
            context=list(result.texts),
            ctx_preview=span[len(RET_START) :][:160],
        )
        row.log.append(entry)

    # ------------------------------------------------------------------ cache
    def _select_rows(self, cache, index: torch.Tensor) -> None:
        cache.batch_select_indices(index)

    def _feed(self, rows: list[_Row], mask: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed every row's pending tokens, right-aligned in a chunk so each row's last token is last.

        When some rows inject a context span and others feed one token, the injecting rows run their span alone
        (``split_injections``, see :meth:`_split_forward`); the columns are merged with masked holes.
        """
        width = max(len(r.pending) for r in rows)
        fed = [(row.volume_id, tuple(row.pending)) for row in rows]
        ids, chunk_mask, positions = self._chunk(rows, width, mask)
        full_mask = torch.cat([mask, chunk_mask], dim=1)
        single = chunk_mask[:, :-1].sum(dim=1) == 0  # rows that feed exactly one token
        one_forward = width == 1 or bool(single.all()) or not bool(single.any())
        if one_forward or not self.settings.split_injections or not kv.supported(cache):
            logits = self._forward(
                input_ids=ids, attention_mask=full_mask, position_ids=positions, cache=cache
            )
        else:
            logits = self._split_forward(ids, mask, chunk_mask, positions, single, cache)
        if self.on_forward is not None:
            self.on_forward(fed, logits)
        return full_mask, logits

    def _chunk(self, rows: list[_Row], width: int, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Input ids, chunk mask and position ids of the next forward; advances each row's count."""
        device, base = mask.device, mask.shape[1]
        counts = torch.tensor([r.count for r in rows], device=device)
        if width == 1:  # the common decoding step: no Python loop over tensors
            ids = torch.tensor([r.pending for r in rows], device=device)
            for row in rows:
                if row.probing:
                    row.probe_cols.append(base)
                row.count += 1
                row.pending = []
            return ids, torch.ones_like(ids), counts[:, None]
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long, device=device)
        chunk_mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        positions = counts[:, None].repeat(1, width)
        for j, row in enumerate(rows):
            k = len(row.pending)
            ids[j, width - k :] = torch.tensor(row.pending, device=device)
            chunk_mask[j, width - k :] = 1
            positions[j, width - k :] += torch.arange(k, device=device)
            if row.probing:
                row.probe_cols.extend(range(base + width - k, base + width))
            row.count += k
            row.pending = []
        return ids, chunk_mask, positions

    def _split_forward(self, ids, mask, chunk_mask, positions, single, cache) -> torch.Tensor:
        """Injecting rows run their span over a copy of their own cache rows; then the whole batch runs its usual
        one-token step (injecting rows feed a masked placeholder), and that step's column is widened into the
        span. The chunk's layout is the same as one padded forward would leave: right-aligned, masked holes."""
        width = ids.shape[1]
        self.stats["split_forwards"] += 1
        inject = (~single).nonzero().flatten()
        sub = kv.sub_cache(cache, inject, self.lm.config)
        inject_logits = self._forward(
            input_ids=ids[inject],
            attention_mask=torch.cat([mask[inject], chunk_mask[inject]], dim=1),
            position_ids=positions[inject],
            cache=sub,
        )
        step = ids[:, -1:].masked_fill(~single[:, None], self.pad_id)
        logits = self._forward(
            input_ids=step,
            attention_mask=torch.cat([mask, single[:, None].long()], dim=1),
            position_ids=positions[:, -1:],
            cache=cache,
        )
        kv.widen_last_column(cache, inject, sub, width)
        logits[inject] = inject_logits
        return logits

    def _compact(self, mask: torch.Tensor, cache, rows: list[_Row]) -> torch.Tensor:
        """Repack when a quarter of the cache is holes in every row: attention runs over every column, so holes
        cost like live tokens, while a repack is one gather of the cache. (Measured on the demo, 64 reports at
        batch 16 on CPU: repacking at 1/4 holes took 7-8% less time than at 1/2; 0.35 and 0.15 did no better.)"""
        # a row's live (unmasked) columns are its count: no device sync to read them from the mask
        if 4 * max(r.count for r in rows) > 3 * mask.shape[1] or not kv.supported(cache):
            return mask
        new_mask, old_to_new = kv.repack(cache, mask)
        self.stats["dropped_columns"] += mask.shape[1] - new_mask.shape[1]
        for j, row in enumerate(rows):
            row.probe_cols = [int(old_to_new[j, c]) for c in row.probe_cols]
        return new_mask

    # ----------------------------------------------------------------- output
    def _text(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(
            [t for t in token_ids if t != self.rag_id], skip_special_tokens=True
        ).strip()

    def _finish(self, row: _Row) -> RowOutput:
        return RowOutput(
            row.volume_id, list(row.output), self._text(row.output), row.retrievals, row.log, row.hit_end
        )
