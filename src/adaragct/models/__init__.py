"""Models (docs/method.md#model-and-training): LLM builders, the per-slot visual projector, the LightningModule and checkpoints."""
