"""Models (SPEC 4): LLM builders, the per-slot visual projector, the LightningModule and checkpoints."""
