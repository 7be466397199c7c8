"""KV-cache surgery the generation loop needs and transformers does not offer: dropping arbitrary columns.

``Cache.crop`` only cuts the end and ``batch_select_indices`` only selects rows; after a rollback the dead
columns sit in the middle. We index each layer's key/value tensors directly, and only for the dynamic layer type
whose layout we know (``[batch, heads, seq, head_dim]``); any other cache is left alone (correct, just larger).
"""

from __future__ import annotations

import torch


def drop_cache_columns(cache, keep: torch.Tensor) -> bool:
    """Keep only sequence positions ``keep`` in every layer; returns False (and changes nothing) if unsupported."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return False
    for layer in layers:
        if layer.keys is None or layer.keys.numel() == 0:
            continue
        layer.keys = layer.keys.index_select(-2, keep)
        layer.values = layer.values.index_select(-2, keep)
    return True
