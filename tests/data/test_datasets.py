"""Datasets chosen by ``_target_`` (docs/datasets.md): the shipped layouts, 0.1 configs without ``_target_``, and
the page's worked example (its class and YAML as written there) run through load_split and the DataModule."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from adaragct.data.datamodule import ReportDataModule
from adaragct.data.datasets import CTRateLayout, Dataset, ReleaseBundle, dataset, load_split
from adaragct.data.prompt import PromptConfig
from adaragct.data.specs import LoaderSpec
from adaragct.errors import DataError
from tests.conftest import PROJECT_ROOT, compose_config

DOC = PROJECT_ROOT / "docs" / "datasets.md"


def _block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, f"docs/datasets.md must hold one {language} block"
    return blocks[0]


def _same_volumes(a: list, b: list) -> None:
    assert [v.volume_id for v in a] == [v.volume_id for v in b]
    assert [v.report for v in a] == [v.report for v in b]
    for x, y in zip(a, b, strict=True):
        assert all((x.visual[s] == y.visual[s]).all() for s in y.visual)


@pytest.mark.parametrize(
    ("option", "cls"), [("demo", CTRateLayout), ("ctrate", CTRateLayout), ("adaragct_bundle", ReleaseBundle)]
)
def test_each_shipped_data_config_names_its_layout(option: str, cls: type, tmp_path: Path) -> None:
    data = compose_config(
        "prepare", [f"data={option}", f"paths.data_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
    ).data
    made = dataset(data)
    assert type(made) is cls and isinstance(made, Dataset) and made.name == option
    assert made.splits == ("train", "valid")


def test_without_target_a_data_config_reads_as_in_0_1(small_demo: dict) -> None:
    old = {k: v for k, v in small_demo.items() if k != "_target_"}
    assert type(dataset(old)) is ReleaseBundle
    _same_volumes(load_split(old, "valid"), load_split(small_demo, "valid"))
    with pytest.raises(DataError, match=r"conf/data/demo.yaml: keys: .*'whole_key'"):
        dataset({k: v for k, v in old.items() if k != "whole_key"})


def test_a_bad_target_names_the_key(small_demo: dict) -> None:
    with pytest.raises(
        DataError, match=r"conf/data/demo.yaml: _target_: cannot make the dataset 'nowhere.Thing'"
    ):
        dataset({**small_demo, "_target_": "nowhere.Thing"})
    with pytest.raises(DataError, match=r"_target_: dict is not a dataset \(it lacks name, splits, reports"):
        dataset({"_target_": "builtins.dict", "name": "x"})
    no_key = {k: v for k, v in small_demo.items() if k != "whole_key"}
    with pytest.raises(
        DataError,
        match=r"_target_: cannot make the dataset 'adaragct.data.datasets.CTRateLayout': CTRateLayout.__init__\(\) "
        r"missing 1 required keyword-only argument: 'whole_key' \(fix",
    ):
        dataset(no_key)


def test_the_release_bundle_takes_validation_references_from_the_organ_reports(small_demo: dict) -> None:
    bundle = ReleaseBundle(**{**small_demo, "valid_reports_csv": None})
    csv = CTRateLayout(**small_demo).reports("valid")
    assert set(bundle.reports("valid")) == set(csv)
    with pytest.raises(DataError, match=r"conf/data/demo.yaml: valid_reports_csv: not set"):
        CTRateLayout(**{**small_demo, "valid_reports_csv": None}).reports("valid")
    assert CTRateLayout(**small_demo).labels("train") is not None


def test_the_worked_example_runs_as_written(
    small_demo: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/datasets.md's class and YAML, verbatim: the same volumes as the demo they were written from, and a
    DataModule batch."""
    (tmp_path / "my_datasets.py").write_text(_block("python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "mine.yaml").write_text(_block("yaml"))
    root = tmp_path / "data" / "mine"
    demo = CTRateLayout(**small_demo)
    for split in ("train", "valid"):
        (root / "reports").mkdir(parents=True, exist_ok=True)
        rows = [{"volume": f"{vid}.nii.gz", "report": text} for vid, text in demo.reports(split).items()]
        (root / "reports" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for kind, key in (("ct_clip", "whole_embeddings"), ("visd_boost", "organ_embeddings")):
            (root / "embeddings" / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy(small_demo[key][split], root / "embeddings" / kind / f"{split}_embeds.npz")
    (root / "labels").mkdir()
    shutil.copy(small_demo["valid_labels_csv"], root / "labels" / "valid_labels.csv")

    cfg = compose_config(
        "prepare",
        [
            "data=mine",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path}/run",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        ],
    )
    assert type(dataset(cfg.data)).__name__ == "JsonlReports" and dataset(cfg.data).labels("train") is None
    assert len(dataset(cfg.data).labels("valid")) == len(demo.labels("valid"))
    for split in ("train", "valid"):
        _same_volumes(load_split(cfg.data, split), demo.volumes(split))

    tokenizer = AutoTokenizer.from_pretrained(small_demo["tokenizer_dir"])
    prompt = PromptConfig(**compose_config("train", resolve=False).prompt)
    train = compose_config("train", ["paths.output_dir=/tmp/unused"])
    loader = LoaderSpec.from_config(
        {**train.datamodule, "batch_size": 2, "max_length": 2048, "val_fraction": 0.2, "num_workers": 0}
    )
    dm = ReportDataModule(cfg.data, tokenizer, prompt, loader, contexts=None, seed=7, visual_partners=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 2
