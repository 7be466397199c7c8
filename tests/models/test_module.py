"""Loss masking, the [RAG] weight, the optimizer's parameters and the LR schedule in optimizer steps."""

from __future__ import annotations

import functools
import itertools
import math

import lightning as L
import pytest
import torch

from adaragct.constants import IGNORE_INDEX
from adaragct.models.loss import report_loss
from adaragct.models.module import ReportGenerationModule, warmup_cosine
from tests.models.conftest import model_cfg, phase_cfg, random_visual
from tests.models.conftest import phase_schedule as _schedule


def test_loss_ignores_masked_positions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, 3, IGNORE_INDEX, 4, 2]])
    loss, stats = report_loss(logits, labels, rag_token_id=6)
    expected = torch.nn.functional.cross_entropy(logits[0, [0, 2, 3]], torch.tensor([3, 4, 2]))
    torch.testing.assert_close(loss, expected)
    changed = logits.clone()
    changed[0, 1] += 100.0  # position 1 predicts label 2, which is masked
    assert torch.equal(report_loss(changed, labels, rag_token_id=6)[0], loss)
    assert int(stats["tokens"]) == 3


def test_rag_weight_changes_the_loss_and_the_accuracy_counts_rag_targets() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[IGNORE_INDEX, 6, 2, 3]])
    plain, _ = report_loss(logits, labels, rag_token_id=6, rag_weight=1.0)
    heavy, _ = report_loss(logits, labels, rag_token_id=6, rag_weight=5.0)
    ce = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, 1:], reduction="none")
    torch.testing.assert_close(heavy, (5 * ce[0] + ce[1] + ce[2]) / 7)
    assert not torch.isclose(plain, heavy)
    logits[0, 0, 6] = 50.0
    assert float(report_loss(logits, labels, rag_token_id=6)[1]["rag_token_acc"]) == 1.0


@pytest.mark.parametrize("phase", ["base", "rag"])
def test_optimizer_holds_only_trainable_parameters(tokenizer_dir, tokenizer, phase) -> None:
    module = ReportGenerationModule(
        model_cfg(tokenizer_dir),
        phase_cfg(phase),
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        scheduler=_schedule(),
    )
    module.configure_model()
    trainer = L.Trainer(max_steps=10, accelerator="cpu", logger=False, enable_checkpointing=False)
    module.trainer = trainer
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert in_opt == trainable and len(trainable) > 0
    rows = {id(p) for n, p in module.named_parameters() if "trainable_tokens_delta" in n}
    assert (
        rows
        and rows <= {id(p) for p in opt.param_groups[1]["params"]}
        and opt.param_groups[1]["weight_decay"] == 0.0
    )
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("trainable_tokens_delta" in n for n in names)
    assert any(n.startswith("model.projector.") for n in names) == (phase == "base")
    assert not any(n.endswith("embed_tokens.token_adapter.base_layer.weight") for n in names)


def test_schedule_values() -> None:
    values = [warmup_cosine(s, 4, 20, 0.01) for s in range(20)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[-1] == pytest.approx(0.01)
    assert values[4 + 15 // 2] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 7 / 15)))
    assert all(a >= b for a, b in itertools.pairwise(values[3:]))


class _LRRecorder(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])


def test_schedule_counts_optimizer_steps_with_accumulation(tokenizer_dir, tokenizer) -> None:
    """max_steps=6 with accumulate 2 is 12 batches: the cosine must end at 1% on the 6th optimizer step."""
    from torch.utils.data import DataLoader

    from adaragct.constants import SPECIAL_TOKENS

    ids = torch.tensor([tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS[:5]] + [20, 21, 22, 23])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": ids.clone(),
        "visual": {k: v[0] for k, v in random_visual(1).items()},
    }
    loader = DataLoader([batch] * 24, batch_size=2)
    module = ReportGenerationModule(
        model_cfg(tokenizer_dir),
        phase_cfg("base"),
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        scheduler=_schedule(2),
    )
    recorder = _LRRecorder()
    trainer = L.Trainer(
        max_steps=6,
        accumulate_grad_batches=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[recorder],
        limit_val_batches=0,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=loader)
    assert trainer.global_step == 6
    expected = [1e-3 * warmup_cosine(s, 2, 6, 0.01) for s in range(6)]
    assert recorder.lrs == pytest.approx(expected)
    assert recorder.lrs[1] == pytest.approx(1e-3) and recorder.lrs[-1] == pytest.approx(1e-5)


def test_hyperparameters_hold_no_modules(tokenizer_dir, tokenizer) -> None:
    module = ReportGenerationModule(
        model_cfg(tokenizer_dir),
        phase_cfg("base"),
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        scheduler=_schedule(),
    )
    assert set(module.hparams) == {"model", "phase", "init_from", "visual_gain"}
    flat = str(dict(module.hparams))
    assert "Tokenizer" not in flat and "Module" not in flat


def test_warmup_longer_than_the_run_is_shortened_with_a_warning(tokenizer_dir, tokenizer, caplog) -> None:
    module = ReportGenerationModule(
        model_cfg(tokenizer_dir),
        phase_cfg("base"),
        tokenizer,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        scheduler=_schedule(500),
    )
    module.configure_model()
    module.trainer = L.Trainer(max_steps=20, accelerator="cpu", logger=False, enable_checkpointing=False)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert "warmup_steps=500 >= 20" in caplog.text
    assert scheduler.lr_lambdas[0](0) == pytest.approx(0.5) and scheduler.lr_lambdas[0](1) == pytest.approx(
        1.0
    )


@pytest.mark.parametrize("phase", ["base", "rag"])
def test_the_phase_scheduler_node_gives_the_same_lr_sequence_as_before(phase: str) -> None:
    """conf/phase/*.yaml: scheduler is a ``_partial_`` node beside the optimizer; instantiated and completed with
    the optimizer and the run length, it yields bit for bit the LambdaLR(warmup_cosine) sequence it replaced."""
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    node = compose_config("train", [f"phase={phase}", "paths.output_dir=/tmp/unused"]).phase
    total, warmup = 1200, int(node.scheduler.warmup_steps)

    def lrs(make) -> list[float]:
        optimizer = instantiate(node.optimizer)([torch.nn.Parameter(torch.zeros(1))])
        scheduler, out = make(optimizer), []
        for _ in range(total):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    ours = lrs(lambda opt: instantiate(node.scheduler)(opt, total_steps=total))
    before = lrs(
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total, 0.01))
    )
    assert ours == before and ours[warmup - 1] == node.optimizer.lr
