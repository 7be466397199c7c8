"""Embedding-bottleneck analysis: how much of an embedding's variance, and of its finding signal, is usable."""
