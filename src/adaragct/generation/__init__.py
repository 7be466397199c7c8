"""Adaptive generation (SPEC 5): batched greedy decoding that retrieves mid-generation when the model asks."""

from adaragct.generation.adaptive import AdaptiveGenerator, GenerationSettings, RowOutput

__all__ = ["AdaptiveGenerator", "GenerationSettings", "RowOutput"]
