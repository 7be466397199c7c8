"""Turn the ``strategy=`` config group into a Lightning strategy, failing at start when it cannot run here.

Lightning's FSDP and DeepSpeed strategies are GPU-only: on a CPU machine they fail deep inside ``Trainer.fit``
with an accelerator error. We check first and say which strategy and what to do instead.
"""

from __future__ import annotations

from typing import Any

GPU_ONLY = ("fsdp", "deepspeed")


def resolve_strategy(
    name: str = "auto", *, accelerator: str = "auto", cuda_available: bool | None = None, **options: Any
) -> Any:
    """Return a Lightning strategy (or the string ``"auto"``) for ``strategy=<name>``.

    Args:
        name: auto | ddp | fsdp | deepspeed.
        accelerator: the trainer's accelerator (``cpu`` forces the check even on a GPU machine).
        cuda_available: override for the GPU check (tests); ``None`` asks torch.
        **options: the strategy's options from ``conf/strategy/<name>.yaml``.
    """
    if name == "auto":
        return "auto"
    if name in GPU_ONLY:
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if accelerator == "cpu" or not cuda_available:
            raise RuntimeError(
                f"strategy={name} needs CUDA GPUs (Lightning supports it on GPUs only) but this run is on the CPU; "
                "use strategy=ddp (or strategy=auto) on CPU, or run on a GPU machine"
            )
    from lightning.pytorch import strategies

    if name == "ddp":
        return strategies.DDPStrategy(**options)
    if name == "fsdp":
        checkpointing = options.pop("activation_checkpointing", False)
        if checkpointing:
            from transformers.models.llama.modeling_llama import LlamaDecoderLayer

            options["activation_checkpointing_policy"] = {LlamaDecoderLayer}
            options["auto_wrap_policy"] = {LlamaDecoderLayer}
        return strategies.FSDPStrategy(**options)
    if name == "deepspeed":
        return strategies.DeepSpeedStrategy(**options)
    raise ValueError(f"conf/strategy: unknown strategy {name!r} (expected auto, ddp, fsdp or deepspeed)")
