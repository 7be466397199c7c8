"""Run identity and artifact paths have one owner (adaragct.artifacts): the configs reach it through resolvers,
and no config or Makefile line spells a path rule of its own."""

from __future__ import annotations

import re

import pytest

from adaragct import artifacts
from tests.conftest import PROJECT_ROOT, compose_config

OUT = "paths.output_dir=/tmp/unused"


def test_a_train_run_and_the_infer_run_reading_it_agree_on_its_checkpoint() -> None:
    for overrides in (
        ["phase=rag"],
        ["phase=base"],
        ["phase=align", "data=ctrate"],
        ["phase=base", "cell=whole_ct"],
    ):
        train = compose_config("train", [*overrides, OUT])
        infer = compose_config("infer", [*overrides, OUT])
        run = artifacts.run_name(train.data.name, train.model.name, train.phase.name, train.get("cell"))
        assert train.run_name == infer.run_name == run
        assert train.checkpoint_dir == artifacts.train_dir(train.paths.output_root, run)
        assert (
            infer.ckpt == f"{train.checkpoint_dir}/last" == artifacts.checkpoint(train.paths.output_root, run)
        )
    assert compose_config("train", ["cell=whole_ct", OUT]).run_name == "demo_tiny_base_whole_ct"


def test_phase_rag_starts_from_the_base_run_of_the_same_data_and_model() -> None:
    rag = compose_config("train", ["phase=rag", "data=ctrate", OUT])
    base = compose_config("train", ["phase=base", "data=ctrate", OUT])
    assert rag.phase.init_from == artifacts.last(base.checkpoint_dir)
    base_8b = compose_config("train", ["experiment=base_8b", OUT])
    align_8b = compose_config("train", ["experiment=align_8b", OUT])
    assert base_8b.phase.projector_from == artifacts.last(align_8b.checkpoint_dir)


def test_predictions_go_to_one_folder_per_run_and_retrieval_mode() -> None:
    infer = compose_config("infer", ["retrieval=oracle", "phase=rag", OUT])
    assert infer.predictions == f"{infer.paths.output_root}/infer/demo_tiny_rag_oracle/predictions.jsonl"
    assert artifacts.beside(infer.predictions, "metrics").endswith("demo_tiny_rag_oracle/metrics.json")
    assert artifacts.beside("p.jsonl", "view") == "view.html"


def test_the_training_grid_writes_the_checkpoints_the_inference_grid_reads() -> None:
    trained = compose_config(
        "train", ["ablation=oracle_ratio", "phase=rag", "phase.contexts.oracle_ratio=0.3", "seed=1", OUT]
    )
    read = compose_config("infer", ["ablation=retrieval_x_oracle", "oracle_ratio=0.3", "seed=1", OUT])
    assert read.ckpt == artifacts.last(trained.checkpoint_dir)
    assert trained.checkpoint_dir.endswith("grids/oracle_ratio/checkpoints/oracle0.3_seed1")
    with pytest.raises(ValueError, match="pairs"):
        artifacts.grid_cell("oracle", 0.3, "seed")


def test_the_demo_and_its_ablation_cells_have_their_own_results_folders() -> None:
    demo = compose_config("demo", [OUT])
    cell = compose_config("demo", ["demo_ablation=whole_ct", OUT])
    assert demo.results_dir == artifacts.demo_results(demo.paths.output_root)
    assert cell.results_dir == artifacts.demo_results(demo.paths.output_root, "whole_ct")
    assert cell.results_dir.startswith(artifacts.demo_ablations_dir(demo.paths.output_root))


def test_built_index_files_are_named_after_their_count() -> None:
    assert artifacts.index_file_name("neighbours", 20) == "img2img_top20.json"
    assert artifacts.index_file_name("oracle_contexts", 3) == "oracle_context_top3.jsonl"
    with pytest.raises(ValueError, match="give k"):
        artifacts.index_file_name("neighbours")


# a path rule: the output root joined to a folder by hand, or a run folder spelled out
PATH_RULE = re.compile(
    r"\$\{paths\.output_root\}/|outputs/(train|infer|grids|demo)\b|/predictions\.jsonl|/last\b"
)


def test_no_config_or_makefile_line_spells_a_path_rule() -> None:
    """Comments may say where things land; settings and recipes take the path from adaragct.artifacts."""
    files = [*sorted((PROJECT_ROOT / "src/adaragct/conf").rglob("*.yaml")), PROJECT_ROOT / "Makefile"]
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PATH_RULE.search(line.split("#", 1)[0])
    ]
    assert found == []
