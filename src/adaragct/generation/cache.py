"""KV-cache surgery the generation loop needs and transformers does not offer.

The loop keeps one dense ``[batch, heads, seq, head_dim]`` cache per layer (transformers' ``DynamicLayer``).
Rows diverge (probes rolled back, contexts injected into some rows only), so we need to

* run a forward for a *subset* of rows (an injection must not cost compute in rows that only decode a token),
* widen the column a batch step just wrote into a span that some rows fill and others leave as masked holes,
* stack newly prefilled rows under a running batch (continuous batching),
* repack each row's live columns to the right so holes do not pile up (keys are stored already rotated by
  their position ids and every mask is explicit, so moving a column changes nothing a query sees).

Only the dynamic layer type is handled; anything else reports ``False`` and the caller falls back to the
always-correct path (full-batch chunks, no repacking).
"""

from __future__ import annotations

import torch


def supported(cache) -> bool:
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer and layer.keys is not None for layer in layers)


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
    the last column and gets ``width - 1`` masked holes before it. One copy of the cache per layer.
    """
    for layer, filled in zip(cache.layers, sub.layers, strict=True):
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
