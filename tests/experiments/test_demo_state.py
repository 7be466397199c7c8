"""The demo's ablation cells (its step ledger and code fingerprints: tests/test_ledger.py)."""

from __future__ import annotations

from pathlib import Path


def test_ablation_cells_make_their_one_change_and_keep_their_own_checkpoints() -> None:
    """make demo-ablations: each cell composes the demo's stages with its change, base rows only, and trains into
    a checkpoint folder of its own, which its inference reads (the demo's checkpoints are never overwritten)."""
    from adaragct.demo import _cell_run_name
    from tests.conftest import compose_config

    out = "paths.output_dir=/tmp/unused"  # nothing runs; the hydra node that would set it is not composed
    demo = compose_config("demo", [out])
    assert _cell_run_name(demo) == []
    for cell, check in {
        "whole_ct": lambda m: list(m.visual_slots) == ["whole_ct"] and m.name == "tiny",
        "tiny_large": lambda m: m.name == "tiny_large" and len(m.visual_slots) == 5,
    }.items():
        cfg = compose_config("demo", [f"demo_ablation={cell}", out])
        assert [dict(r) for r in cfg.runs] == [{"stage": "base", "retrieval": "none"}]
        assert list(cfg.baselines.rows) == [] and cfg.results_dir.endswith(f"demo_ablations/{cell}")
        stage = [*cfg.overrides, "stage=base", *_cell_run_name(cfg), out]
        train, infer = compose_config("train", stage), compose_config("infer", stage)
        assert check(train.model) and check(infer.model)
        assert Path(train.checkpoint_dir).name == f"demo_{train.model.name}_base_{cell}"
        assert infer.ckpt == f"{train.checkpoint_dir}/last"
        for step in ("align", "base"):  # trained like the demo's align and base
            assert list(cfg.train_overrides[step]) == list(demo.train_overrides[step])
