"""KV-cache surgery the generation loop needs and transformers does not offer.

The loop keeps one dense ``[batch, heads, seq, head_dim]`` cache per layer (transformers' ``DynamicLayer``).
Rows diverge (probes rolled back, contexts injected into some rows only), so we need to

* run a forward for a *subset* of rows (an injection must not cost compute in rows that only decode a token),
* widen the column a batch step just wrote into a span that some rows fill and others leave as masked holes,
* stack newly prefilled rows under a running batch (continuous batching),
* repack each row's live columns to the right so holes do not pile up (keys are stored already rotated by
  their position ids and every mask is explicit, so moving a column changes nothing a query sees).

The batch cache's layers are :class:`GrowingLayer`. Transformers' ``DynamicLayer`` concatenates the whole cache
onto itself at every step, a copy of every layer per token and O(length^2) traffic over a report. Ours keeps
spare columns and writes a step in place (``benchmarks/bench_generate.py --modes none,none-dynamic-cache``
compares the two: 1.06-1.26x for plain decoding of the demo model on 2 CPU cores). Only these two dense full-attention layer types are handled; anything else (sliding
windows, quantised or offloaded caches) reports ``False`` and the caller falls back to the always-correct path
(full-batch chunks, no repacking).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers with spare columns.

    ``update`` writes the new columns in place and grows the buffers by a quarter (at least 64 columns) when full,
    so a step costs O(new columns), not a copy of the cache. ``keys``/``values`` read as the live ``[:, :, :n]``
    views; assigning a tensor to them (row selection, repacking, stacking) adopts it as the new buffer, so all of
    ``DynamicLayer``'s own methods keep working. Columns past ``n`` are never read.
    """

    def __init__(self) -> None:
        self._keys = self._values = None
        self._length = {"keys": 0, "values": 0}  # each assigned on its own (``layer.keys = ...`` comes first)
        super().__init__()

    def _live(self, name: str):
        buffer = getattr(self, "_" + name)
        return None if buffer is None else buffer[:, :, : self._length[name]]

    def _adopt(self, name: str, tensor) -> None:
        setattr(self, "_" + name, tensor)
        self._length[name] = 0 if tensor is None or tensor.dim() < 3 else tensor.shape[2]

    keys = property(lambda self: self._live("keys"), lambda self, t: self._adopt("keys", t))
    values = property(lambda self: self._live("values"), lambda self, t: self._adopt("values", t))

    @property
    def length(self) -> int:
        return self._length["keys"]

    def _set_length(self, n: int) -> None:
        self._length["keys"] = self._length["values"] = n

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device, self.is_initialized = key_states.device, True
        self.keys = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
        self.values = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))

    def reserve(self, length: int) -> None:
        """Make room for ``length`` columns (keeps the live ones)."""
        if length <= min(self._keys.shape[2], self._values.shape[2]):
            return
        n = self.length
        capacity = max(length, n + max(64, n // 4))
        for name in ("_keys", "_values"):
            old = getattr(self, name)
            buffer = old.new_empty((old.shape[0], old.shape[1], capacity, old.shape[3]))
            buffer[:, :, :n] = old[:, :, :n]
            setattr(self, name, buffer)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, new = self.length, key_states.shape[2]
        self.reserve(n + new)
        self._keys[:, :, n : n + new] = key_states
        self._values[:, :, n : n + new] = value_states
        self._set_length(n + new)
        return self.keys, self.values


def new_cache(config):
    """An empty cache for ``config``: ``GrowingLayer`` wherever transformers would use a plain ``DynamicLayer``."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def supported(cache) -> bool:
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(
        type(layer) in (DynamicLayer, GrowingLayer) and layer.keys is not None for layer in layers
    )


def sub_cache(cache, rows: torch.Tensor, config):
    """A new cache holding copies of ``rows`` of every layer (for a forward over those rows only).

    The layers are filled directly: ``DynamicCache(ddp_cache_data=...)`` would concatenate each one onto an
    empty tensor, a second copy of every row.
    """
    from transformers import DynamicCache

    sub = DynamicCache(config=config)
    for layer, src in zip(sub.layers, cache.layers, strict=True):
        keys, values = src.keys[rows], src.values[rows]
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
    return sub


def widen_last_column(cache, rows: torch.Tensor, sub, width: int) -> None:
    """Turn the last column of every layer into ``width`` right-aligned columns and fill them for ``rows``.

    After a one-token forward over the whole batch (the last column), ``rows`` -- which fed a masked placeholder
    there -- take the ``width`` columns their own forward wrote into ``sub``; every other row keeps its token in
    the last column and gets ``width - 1`` masked holes before it. In place on a :class:`GrowingLayer`; one copy
    of the cache per layer on a plain ``DynamicLayer``.
    """
    for layer, filled in zip(cache.layers, sub.layers, strict=True):
        if isinstance(layer, GrowingLayer):  # in place: O(rows x width), not a copy of the cache
            length = layer.length
            layer.reserve(length - 1 + width)
            start, end = length - 1, length - 1 + width  # the step's column becomes columns [start, end)
            for buffer, src in ((layer._keys, filled.keys), (layer._values, filled.values)):
                buffer[:, :, end - 1] = buffer[:, :, start]  # every row's step token moves to the last column
                buffer[:, :, start : end - 1] = 0  # holes: masked, but must be finite
                buffer[rows, :, start:end] = src[:, :, -width:].to(buffer)  # the injecting rows' spans
            layer._set_length(end)
            continue
        for name in ("keys", "values"):
            old = getattr(layer, name)
            b, h, length, d = old.shape
            new = old.new_zeros((b, h, length - 1 + width, d))
            new[:, :, : length - 1] = old[:, :, : length - 1]
            new[:, :, -1] = old[:, :, -1]
            new[rows, :, length - 1 :] = getattr(filled, name)[:, :, -width:]
            setattr(layer, name, new)


def pad_left(x: torch.Tensor, total: int, dim: int) -> torch.Tensor:
    """``x`` with zero columns added before its own along ``dim`` up to ``total`` (right alignment)."""
    missing = total - x.shape[dim]
    if missing == 0:
        return x
    return torch.nn.functional.pad(x, (0, 0) * (x.dim() - dim - 1) + (missing, 0))


def stack_rows(cache, new) -> int:
    """Append the rows of ``new`` under those of ``cache`` (every layer), right-aligned to the longer of the two
    column counts; missing columns are zero holes (masked). Returns how far ``cache``'s own columns moved right."""
    shift = 0
    for layer, other in zip(cache.layers, new.layers, strict=True):
        total = max(layer.keys.shape[2], other.keys.shape[2])
        shift = total - layer.keys.shape[2]
        for name in ("keys", "values"):
            mine, theirs = getattr(layer, name), getattr(other, name)
            setattr(layer, name, torch.cat([pad_left(mine, total, 2), pad_left(theirs, total, 2)]))
    return shift


def repack(cache, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's live columns (mask 1) to the right end, in order; drop what is then dead in every row.

    Returns the new mask and ``old_to_new`` (B, L_old): each old column's new index, -1 if dropped.
    """
    length = mask.shape[1]
    keep = int(mask.sum(dim=1).max())
    sorted_mask, order = torch.sort(mask, dim=1, stable=True)  # zeros first; live columns keep their order
    order, new_mask = order[:, length - keep :], sorted_mask[:, length - keep :]
    for layer in cache.layers:
        index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
        layer.keys = layer.keys.gather(2, index)
        layer.values = layer.values.gather(2, index)
    old_to_new = torch.full_like(mask, -1)
    old_to_new.scatter_(1, order, torch.arange(keep, device=mask.device).expand(mask.shape[0], -1))
    return new_mask, old_to_new
