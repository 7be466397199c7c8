"""Seed-compatible command aliases for inference (``python -m adaragct.inference.inference_rag``)."""
