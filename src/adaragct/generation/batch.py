"""The rows of an adaptive batch over one shared KV cache: admission, feeding, rollback, repacking (docs/method.md#adaptive-generation).

Every active row feeds its pending tokens in each forward (one token, or a chunk: an injected context, a draft),
right-aligned so each row's last token is the chunk's last column; shorter rows get masked holes. A rollback
masks columns instead of re-running anything, and position ids count only a row's unmasked tokens, so attention
and RoPE see exactly what a fresh forward over the row's visible tokens would see. Finished rows leave the batch,
newcomers' prefixes run as one forward on a cache of their own that is stacked under the batch's (continuous
batching), and cache columns no active row attends to are dropped.

How a chunk reaches the model is a :class:`ChunkFeeder` (the benchmark swaps in a re-prefill baseline), and the
cache comes from a factory (the benchmark swaps in transformers' ``DynamicCache``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from adaragct.generation import cache as kv
from adaragct.generation.penalty import SeenTokens
from adaragct.generation.policy import RowPolicy

Forward = Callable[
    ..., torch.Tensor
]  # (keep, **model inputs) -> logits (B, keep, V), counted by the generator


@dataclass
class Row:
    """One row's place in the batch: its policy, its cache bookkeeping and what it feeds next."""

    volume_id: str
    policy: RowPolicy
    count: int  # unmasked tokens of this row in the cache: the next position id
    pending: tuple[int, ...] = ()
    pending_probe: bool = False  # the pending tokens belong to a probe
    draft: tuple[int, ...] = ()  # the last tokens of ``pending`` (after the feed: of the cache) are a draft
    probe_cols: list[int] = field(default_factory=list)
    draft_cols: list[int] = field(default_factory=list)


class ChunkFeeder:
    """Runs prefills and chunks through the model on the batch cache (KV-cache injection).

    Args:
        split_injections: when some rows feed a chunk and the others one token, run the chunk rows alone first
            (no compute on padding: best where per-token compute dominates, e.g. CPU), then the usual one-token
            step; False runs one forward with every row padded to the chunk (one call fewer: a GPU may prefer it).
    """

    def __init__(self, split_injections: bool = True) -> None:
        self.split_injections = split_injections
        self.split_forwards = 0

    def prefill(self, forward: Forward, embeds, mask, positions, cache) -> torch.Tensor:
        return forward(1, inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache)

    def select(self, index: torch.Tensor) -> None:
        """Rows ``index`` stay in the batch (for feeders that keep per-row state)."""

    def feed(
        self, forward: Forward, ids, mask, chunk_mask, positions, cache, keep: int, config
    ) -> torch.Tensor:
        """Logits (B, keep, V) at the chunk's last ``keep`` columns; ``mask`` is the cache's mask before it."""
        single = chunk_mask[:, :-1].sum(dim=1) == 0  # rows that feed exactly one token
        mixed = ids.shape[1] > 1 and bool(single.any()) and not bool(single.all())
        if mixed and self.split_injections and kv.supported(cache):
            return self._split(forward, ids, mask, chunk_mask, positions, single, cache, keep, config)
        full = torch.cat([mask, chunk_mask], dim=1)
        return forward(keep, input_ids=ids, attention_mask=full, position_ids=positions, cache=cache)

    def _split(self, forward, ids, mask, chunk_mask, positions, single, cache, keep, config) -> torch.Tensor:
        """Chunk rows run over a copy of their own cache rows; then the whole batch runs its one-token step (chunk
        rows feed a masked placeholder), and that step's column is widened into the chunk. The layout is the one
        a padded forward leaves: right-aligned, masked holes."""
        self.split_forwards += 1
        width, chunk = ids.shape[1], (~single).nonzero().flatten()
        sub = kv.sub_cache(cache, chunk, config)
        chunk_logits = forward(
            keep,
            input_ids=ids[chunk],
            attention_mask=torch.cat([mask[chunk], chunk_mask[chunk]], dim=1),
            position_ids=positions[chunk],
            cache=sub,
        )
        step = ids[:, -1:].masked_fill(~single[:, None], 0)
        step_logits = forward(
            1,
            input_ids=step,
            attention_mask=torch.cat([mask, single[:, None].long()], dim=1),
            position_ids=positions[:, -1:],
            cache=cache,
        )
        kv.widen_last_column(cache, chunk, sub, width)
        logits = step_logits.new_zeros((ids.shape[0], keep, step_logits.shape[-1]))
        logits[:, -1:] = step_logits
        logits[chunk] = chunk_logits
        return logits


class DecodeBatch:
    """The active rows, their shared cache and mask, and the tokens each has seen (repetition penalty).

    Args:
        forward: the generator's counted forward ``(keep, **inputs) -> logits (B, keep, V)``.
        config: the model config (cache layout).
        feeder: how chunks reach the model.
        cache_factory: ``config -> cache`` for newly admitted rows.
        pad_id: the id fed in holes.
    """

    def __init__(self, forward: Forward, config, feeder: ChunkFeeder, cache_factory, pad_id: int) -> None:
        self.forward, self.config, self.feeder = forward, config, feeder
        self.cache_factory, self.pad_id = cache_factory, pad_id
        self.rows: list[Row] = []
        self.index_of: list[int] = []  # the input index of each row
        self.cache = self.mask = self.seen = self.logits = None

    def admits_more(self) -> bool:
        """Whether rows can join while others run (the cache must support stacking)."""
        return not self.rows or kv.supported(self.cache)

    # ----------------------------------------------------------------- admission
    def admit(self, fresh: list[tuple[int, tuple[torch.Tensor, torch.Tensor, str]]], policy) -> None:
        """Prefill ``fresh`` ``(index, (embeds (P, H), mask (P,), volume_id))`` items and append them as rows;
        ``policy()`` makes each row's :class:`RowPolicy`."""
        width = max(int(item[1].shape[0]) for _, item in fresh)
        first = fresh[0][1][0]
        embeds = first.new_zeros((len(fresh), width, first.shape[-1]))
        new_mask = torch.zeros((len(fresh), width), dtype=torch.long, device=first.device)
        for j, (_, (emb, m, _)) in enumerate(fresh):  # right-aligned: each prefix ends at the last column
            embeds[j, width - emb.shape[0] :] = emb
            new_mask[j, width - emb.shape[0] :] = m.long()
        cache = self.cache_factory(self.config)
        positions = (new_mask.cumsum(-1) - 1).masked_fill(new_mask == 0, 1)
        logits = self.feeder.prefill(self.forward, embeds, new_mask, positions, cache)
        counts = new_mask.sum(-1).tolist()
        self.rows += [
            Row(item[2], policy(), count=int(n)) for (_, item), n in zip(fresh, counts, strict=True)
        ]
        self.index_of += [i for i, _ in fresh]
        if self.cache is None:
            self.cache, self.mask, self.logits = cache, new_mask, logits
            self.seen = SeenTokens(len(fresh), logits.shape[-1], logits.device)
            return
        shift = kv.stack_rows(self.cache, cache)
        for row in self.rows[: len(self.rows) - len(fresh)]:  # the old rows' columns moved right by the shift
            row.probe_cols = [c + shift for c in row.probe_cols]
            row.draft_cols = [c + shift for c in row.draft_cols]
        total = max(self.mask.shape[1], width)
        self.mask = torch.cat([kv.pad_left(self.mask, total, 1), kv.pad_left(new_mask, total, 1)])
        self.seen.extend(len(fresh))
        keep = self.logits.shape[1]  # the batch's windows may be wider than the newcomers' one position
        self.logits = torch.cat([self.logits, kv.pad_left(logits, keep, 1)])

    def drop_done(self) -> list[tuple[int, Row]]:
        """Remove finished rows; returns them with their input index."""
        done = [(self.index_of[j], row) for j, row in enumerate(self.rows) if row.policy.done]
        if not done:
            return []
        keep = [j for j, row in enumerate(self.rows) if not row.policy.done]
        self.rows, self.index_of = [self.rows[j] for j in keep], [self.index_of[j] for j in keep]
        if not self.rows:
            self.cache = self.mask = self.seen = self.logits = None
            return done
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.logits = self.mask[index], self.logits[index]
        self.seen.select(index)
        self.feeder.select(index)
        return done

    # ------------------------------------------------------------------- feeding
    def feed(self) -> list[tuple[str, tuple[int, ...]]]:
        """Feed every row's pending tokens; sets ``logits`` (B, keep, V), keep = 1 + the longest draft. Returns
        what each row fed (volume id, tokens)."""
        width = max(len(r.pending) for r in self.rows)
        keep = 1 + max(len(r.draft) for r in self.rows)
        fed = [(row.volume_id, row.pending) for row in self.rows]
        ids, chunk_mask, positions = self._chunk(width)
        self.logits = self.feeder.feed(
            self.forward, ids, self.mask, chunk_mask, positions, self.cache, keep, self.config
        )
        self.mask = torch.cat([self.mask, chunk_mask], dim=1)
        return fed

    def _chunk(self, width: int) -> tuple[torch.Tensor, ...]:
        """Input ids, chunk mask and position ids of the next forward; advances each row's count."""
        device, base = self.mask.device, self.mask.shape[1]
        counts = torch.tensor([r.count for r in self.rows], device=device)
        if width == 1:  # the common decoding step: no Python loop over tensors
            ids = torch.tensor([r.pending for r in self.rows], device=device)
            for row in self.rows:
                self._place(row, base, 1)
            return ids, torch.ones_like(ids), counts[:, None]
        ids = torch.full((len(self.rows), width), self.pad_id, dtype=torch.long, device=device)
        chunk_mask = torch.zeros((len(self.rows), width), dtype=torch.long, device=device)
        positions = counts[:, None].repeat(1, width)
        for j, row in enumerate(self.rows):
            k = len(row.pending)
            ids[j, width - k :] = torch.tensor(row.pending, device=device)
            chunk_mask[j, width - k :] = 1
            positions[j, width - k :] += torch.arange(k, device=device)
            self._place(row, base + width - k, k)
        return ids, chunk_mask, positions

    @staticmethod
    def _place(row: Row, start: int, k: int) -> None:
        """Row ``row``'s ``k`` pending tokens go to columns ``start..start+k-1``."""
        columns = range(start, start + k)
        if row.pending_probe:
            row.probe_cols.extend(columns)
        row.draft_cols = list(columns[k - len(row.draft) :]) if row.draft else []
        row.count += k
        row.pending, row.pending_probe = (), False

    # ------------------------------------------------------------ cache surgery
    def roll_back(self, j: int, columns: list[int]) -> None:
        """Columns ``columns`` leave row ``j``'s attention (a probe, a rejected draft); nothing is re-run."""
        if columns:
            self.mask[j, columns] = 0
            self.rows[j].count -= len(columns)

    def compact(self) -> int:
        """Repack when a quarter of the cache is holes in every row: attention runs over every column, so holes
        cost like live tokens, while a repack is one gather of the cache. (Measured on the demo, 64 reports at
        batch 16 on CPU: repacking at 1/4 holes took 7-8% less time than at 1/2; 0.35 and 0.15 did no better.)
        Returns the number of columns dropped."""
        # a row's live (unmasked) columns are its count: no device sync to read them from the mask
        if 4 * max(r.count for r in self.rows) > 3 * self.mask.shape[1] or not kv.supported(self.cache):
            return 0
        new_mask, old_to_new = kv.repack(self.cache, self.mask)
        dropped = self.mask.shape[1] - new_mask.shape[1]
        for j, row in enumerate(self.rows):
            row.probe_cols = [int(old_to_new[j, c]) for c in row.probe_cols]
            row.draft_cols = [int(old_to_new[j, c]) for c in row.draft_cols]
        self.mask = new_mask
        return dropped

    def windows(self) -> list[tuple[int, torch.Tensor] | None]:
        """Per row: ``None`` when it fed no draft, else its draft window ``(j, logits (n+1, V))``."""
        keep = self.logits.shape[1]
        return [
            (j, self.logits[j, keep - len(row.draft) - 1 :]) if row.draft else None
            for j, row in enumerate(self.rows)
        ]
