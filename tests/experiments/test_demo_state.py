"""The demo's ablation cells (its step ledger and code fingerprints: tests/test_ledger.py)."""

from __future__ import annotations

from pathlib import Path


def test_ablation_cells_make_their_one_change_and_keep_their_own_checkpoints() -> None:
    """make demo-ablations: each cell composes the demo's stages with its change, base rows only, and trains into
    a checkpoint folder of its own, which its inference reads (the demo's checkpoints are never overwritten)."""
    from adaragct.apps.demo import _cell_run_name
    from tests.conftest import compose_config

    out = "paths.output_dir=/tmp/unused"  # nothing runs; the hydra node that would set it is not composed
    demo = compose_config("demo", [out])
    assert _cell_run_name(demo) == []
    for cell, check in {
        "whole_ct": lambda m: list(m.visual_slots) == ["whole_ct"] and m.name == "tiny",
        "tiny_large": lambda m: m.name == "tiny_large" and len(m.visual_slots) == 5,
    }.items():
        cfg = compose_config("demo", [f"demo_ablation={cell}", out])
        assert [dict(r) for r in cfg.runs] == [{"phase": "base", "retrieval": "none"}]
        assert list(cfg.baselines.rows) == [] and cfg.results_dir.endswith(f"demo_ablations/{cell}")
        stage = [*cfg.overrides, "phase=base", *_cell_run_name(cfg), out]
        train, infer = compose_config("train", stage), compose_config("infer", stage)
        assert check(train.model) and check(infer.model)
        assert Path(train.checkpoint_dir).name == f"demo_{train.model.name}_base_{cell}"
        assert infer.ckpt == f"{train.checkpoint_dir}/last"
        for step in ("align", "base"):  # trained like the demo's align and base
            assert list(cfg.train_overrides[step]) == list(demo.train_overrides[step])


# the stages that build the demo's inputs, by their old paths and their apps' (adaragct.apps)
DEMO_INPUT_STAGES = tuple(f"adaragct.{p}{s}" for p in ("", "apps.") for s in ("prepare", "index", "train"))


def _makefile() -> dict[str, tuple[list[str], list[str]]]:
    """``{target: (prerequisites, recipe lines)}`` of the Makefile (continuation lines joined)."""
    import re

    from tests.conftest import PROJECT_ROOT

    text = (PROJECT_ROOT / "Makefile").read_text().replace("\\\n", " ")
    rules: dict[str, tuple[list[str], list[str]]] = {}
    target = None
    for line in text.splitlines():
        if line.startswith("\t") and target:
            rules[target][1].append(line.strip())
        elif line[:1].isalpha() and ":" in line and not re.match(r"(export\s+)?\S+\s*[:?+]?=", line):
            target, rest = line.split(":", 1)
            rules[target] = (rest.split("##")[0].split(), [])
        elif line and not line.startswith("#"):
            target = None
    return rules


def test_make_targets_run_the_demos_own_steps_with_its_settings() -> None:
    """Issue 24: `make bench-generate` (through `make index` -> `make prepare`) pretrained the demo's tiny LM again
    with other settings. prepare/index/train/infer are the demo's steps (``until``): its config and its ledger;
    no target runs a stage that builds the demo's inputs with settings of its own."""
    import shlex

    from adaragct.apps.demo import check_until
    from tests.conftest import compose_config

    rules = _makefile()
    for target, step in {"prepare": "prepare", "index": "index", "train": "train", "infer": "score"}.items():
        (line,) = rules[target][1]
        args = shlex.split(line.replace("$(or $(RETRIEVAL),adaptive)", "oracle"))
        assert args[:4] == ["$(PY)", "-m", "adaragct.demo", f"until={step}"], line
        cfg = compose_config("demo", [*args[3:], "paths.output_dir=/tmp/unused"])
        check_until(cfg)
        assert cfg.until == step and list(cfg.overrides) == ["experiment=demo"]
        if target == "infer":
            assert [dict(r) for r in cfg.runs] == [{"phase": "rag", "retrieval": "oracle"}]
    for target, (_, lines) in rules.items():
        for line in lines:
            assert not any(f"-m {stage} " in f"{line} " for stage in DEMO_INPUT_STAGES), (target, line)
    # what reads the demo's inputs gets them through those targets
    assert "index" in rules["bench-generate"][0]
    assert "prepare" in rules["bench-train"][0] and "prepare" in rules["analyze"][0]


def test_an_unknown_until_is_refused_before_any_work() -> None:
    import pytest

    from adaragct.apps.demo import check_until
    from adaragct.errors import DataError
    from tests.conftest import compose_config

    cfg = compose_config("demo", ["until=trian", "paths.output_dir=/tmp/unused"])
    with pytest.raises(
        DataError, match=r"conf/demo.yaml: until: 'trian' is not a step \(fix: one of prepare"
    ):
        check_until(cfg)
