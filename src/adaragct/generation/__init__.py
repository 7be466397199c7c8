"""Adaptive generation (docs/method.md#adaptive-generation): batched greedy decoding that retrieves mid-generation when the model asks."""

from adaragct.generation.adaptive import AdaptiveGenerator, GenerationSettings, RowOutput

__all__ = ["AdaptiveGenerator", "GenerationSettings", "RowOutput"]
