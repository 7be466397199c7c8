"""KV-cache surgery the generation loop needs and transformers does not offer.

The loop keeps one dense ``[batch, heads, seq, head_dim]`` cache per layer (transformers' ``DynamicLayer``).
Rows diverge (probes rolled back, contexts injected into some rows only), so we need to

* run a forward for a *subset* of rows (an injection must not cost compute in rows that only decode a token),
* append columns that some rows fill and others leave as masked holes,
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
    """A new cache holding copies of ``rows`` of every layer (for a forward over those rows only)."""
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[(layer.keys[rows], layer.values[rows]) for layer in cache.layers], config=config
    )


def append_columns(cache, parts: list[tuple[torch.Tensor, object, int]], width: int) -> None:
    """Append ``width`` columns to every layer; ``parts`` = (rows, their sub-cache, columns they filled, right-
    aligned). Columns a row did not fill stay zero (they are masked)."""
    for i, layer in enumerate(cache.layers):
        b, h, _, d = layer.keys.shape
        new_k = layer.keys.new_zeros((b, h, width, d))
        new_v = layer.values.new_zeros((b, h, width, d))
        for rows, sub, filled in parts:
            new_k[rows, :, width - filled :] = sub.layers[i].keys[:, :, -filled:]
            new_v[rows, :, width - filled :] = sub.layers[i].values[:, :, -filled:]
        layer.keys = torch.cat([layer.keys, new_k], dim=2)
        layer.values = torch.cat([layer.values, new_v], dim=2)


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
