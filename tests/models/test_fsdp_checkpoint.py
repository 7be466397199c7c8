"""strategy=fsdp checkpoints (issue 16): the trainable state is gathered from every rank's shard, rank 0 writes it.

Two CPU processes (gloo) shard a tiny stage model with torch's FSDP the way Lightning's ``FSDPStrategy`` does
(``use_orig_params=True``, one unit per decoder layer), run ``TrainableCheckpoint`` on both, and the checkpoint
rank 0 writes must equal the one written from the same model unsharded, tensor for tensor.

What cannot run here: Lightning's gather offloads to the CPU (``FullStateDictConfig(offload_to_cpu=True)``),
which crashes (SIGSEGV, torch 2.13) when the shards already live on the CPU, so the test strategy gathers with
``offload_to_cpu=False`` and is otherwise Lightning's; the offload, NCCL and a whole ``Trainer.fit`` under
``strategy=fsdp`` need GPUs.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.models.conftest import model_cfg, perturb_trainable, phase_cfg, phase_schedule

WORLD = 2


def _stage_model(tokenizer_dir: Path):
    """The same tiny phase=rag model (frozen projector, LoRA + new-token rows trained) in every process."""
    from adaragct.models.builders import load_tokenizer
    from adaragct.models.loading import build_phase_model

    torch.manual_seed(0)
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_phase_model(model_cfg(tokenizer_dir), phase_cfg("rag"), tokenizer)
    perturb_trainable(model, 4)
    return model, tokenizer


def _cpu_fsdp_strategy():
    """Lightning's FSDPStrategy with its gather's CPU offload off (see the module docstring)."""
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    class CpuFSDPStrategy(FSDPStrategy):
        def lightning_module_state_dict(self):
            config = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, config):
                return self.model.state_dict()

    return CpuFSDPStrategy()


def _worker(rank: int, store: str, tokenizer_dir: Path, out: Path) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from adaragct.models.module import ReportGenerationModule
    from adaragct.train.callbacks import TrainableCheckpoint

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    model, tokenizer = _stage_model(tokenizer_dir)
    module = ReportGenerationModule(
        model_cfg(tokenizer_dir),
        phase_cfg("rag"),
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW),
        scheduler=phase_schedule(),
    )
    module.model = model
    strategy = _cpu_fsdp_strategy()
    wrap = ModuleWrapPolicy({LlamaDecoderLayer})
    strategy.model = FSDP(module, auto_wrap_policy=wrap, use_orig_params=True, device_id=torch.device("cpu"))
    shard = {n: p.numel() for n, p in module.model.named_parameters() if "lora_A" in n}
    assert 0 in shard.values() or len(set(shard.values())) > 1, "the LoRA weights must be sharded"
    trainer = SimpleNamespace(strategy=strategy, global_step=7, is_global_zero=rank == 0)
    TrainableCheckpoint(out, tokenizer, yaml.safe_dump({"rank": rank})).on_train_end(trainer, module)
    dist.destroy_process_group()


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    return {
        f"{name}:{k}": v
        for name in ("adapter_model.safetensors", "projector.safetensors")
        for k, v in load_file(str(directory / name)).items()
    }


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without gloo")
def test_fsdp_checkpoint_holds_the_full_trainable_state(tmp_path, tokenizer_dir) -> None:
    from adaragct.models.checkpoint import save_checkpoint

    model, tokenizer = _stage_model(tokenizer_dir)
    expected = save_checkpoint(tmp_path / "unsharded", "step-000007", model, tokenizer, "{}\n")
    torch.multiprocessing.spawn(
        _worker, args=(str(tmp_path / "store"), tokenizer_dir, tmp_path / "fsdp"), nprocs=WORLD
    )
    written = tmp_path / "fsdp" / "step-000007"
    assert yaml.safe_load((written / "config.yaml").read_text()) == {"rank": 0}, "rank 0 writes"
    got, want = _tensors(written), _tensors(expected)
    assert sorted(got) == sorted(want), sorted(got)
    assert any("lora_B" in k for k in got) and any("projector" in k for k in got)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
    assert not os.path.exists(tmp_path / "fsdp" / ".tmp-step-000007")
