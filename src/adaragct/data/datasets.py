"""Datasets (docs/datasets.md): what a stage asks of the data, and one class per layout the data comes in.

A dataset is any object with the members of :class:`Dataset`; ``conf/data/<name>.yaml`` names its class in
``_target_`` and gives its constructor's keywords, and :func:`dataset` makes it (through Hydra's ``instantiate``),
so a new dataset is one class and one YAML file. The layouts there are today:

* :class:`CTRateLayout`: CT-RATE's reports and labels CSVs (docs/formats.md#ct-rate-layout) with embeddings NPZs in the
  release bundle's layout (``conf/data/ctrate.yaml``; the demo cohort is written in it too, ``conf/data/demo.yaml``);
* :class:`ReleaseBundle`: the AdaRAG-CT release bundle alone, whose validation references are the organ-reports
  JSON's ``raw_report`` (``conf/data/adaragct_bundle.yaml``).

The data node holds more than the dataset reads (``work_dir``, ``retrieval_dir``, ``precomputed``, ``tokenizer_dir``,
the demo's ``generator``, ...: where the other stages write and find what they derive); a dataset class takes
those as ``**stage_keys`` and leaves them alone. A data config without ``_target_`` (written for 0.1) is read as
0.1 read it: :class:`ReleaseBundle`'s rules, which are 0.1's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from adaragct.data.cohort import Volume, embedded_volumes
from adaragct.errors import DataError
from adaragct.formats.organ_reports import read_organ_reports_json
from adaragct.formats.tables import read_labels_csv, read_reports_csv

SPLITS = ("train", "valid")


@runtime_checkable
class Dataset(Protocol):
    """What every stage reads from a dataset (prepare, index, train, infer, evaluate).

    Attributes:
        name: the dataset's name (outputs are kept apart by it).
        splits: the splits it has (``("train", "valid")``: train for training and the retrieval bank, valid for
            inference and evaluation).
    """

    name: str
    splits: tuple[str, ...]

    def reports(self, split: str) -> dict[str, str]:
        """``{volume_id: reference report}`` of ``split``, in the dataset's order."""
        ...

    def labels(self, split: str) -> pd.DataFrame | None:
        """The 18 findings' 0/1 labels of ``split`` (:func:`adaragct.formats.tables.read_labels_csv`'s frame, indexed
        by volume id), or None when the dataset has none for it."""
        ...

    def volumes(self, split: str, visual_dims: Mapping[str, int] | None = None) -> list[Volume]:
        """Volumes of ``split`` with report and embeddings (dims checked against ``visual_dims`` when given)."""
        ...


class CTRateLayout:
    """Reports and labels in CT-RATE's CSVs, embeddings in the release bundle's NPZs (docs/formats.md).

    Args:
        name: the dataset's name.
        train_reports_csv, valid_reports_csv: CT-RATE reports CSVs (``VolumeName``, ``Findings_EN``, ...).
        train_labels_csv, valid_labels_csv: CT-RATE labels CSVs (null: no labels for that split).
        whole_embeddings: ``{train, valid}`` whole-volume embeddings NPZ (CT-CLIP).
        organ_embeddings: ``{train, valid}`` organ embeddings NPZ (ViSD-Boost).
        whole_key: the whole-volume array to use (``ct_clip_max``, ``ct_clip_avg``, ``ct_clip_avgmax``).
        missing_embedding: a volume with a report but no embedding: ``error``, or ``skip`` it (logged count).
        stage_keys: the data node's other keys, for the other stages (see the module docstring).
    """

    splits = SPLITS

    def __init__(
        self,
        *,
        name: str,
        whole_embeddings: Mapping[str, str],
        organ_embeddings: Mapping[str, str],
        whole_key: str,
        train_reports_csv: str | None = None,
        valid_reports_csv: str | None = None,
        train_labels_csv: str | None = None,
        valid_labels_csv: str | None = None,
        missing_embedding: str = "error",  # 0.1's default for a data config without the key
        **stage_keys: Any,
    ) -> None:
        self.name = name
        self.reports_csv = {"train": train_reports_csv, "valid": valid_reports_csv}
        self.labels_csv = {"train": train_labels_csv, "valid": valid_labels_csv}
        self.whole_embeddings, self.organ_embeddings = whole_embeddings, organ_embeddings
        self.whole_key, self.missing_embedding = whole_key, missing_embedding
        self.stage_keys = stage_keys

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"split must be 'train' or 'valid', got {split!r}")

    def reports(self, split: str) -> dict[str, str]:
        self._check_split(split)
        csv_path = self.reports_csv[split]
        if not csv_path:
            raise DataError(
                f"conf/data/{self.name}.yaml",
                f"{split}_reports_csv",
                "not set",
                f"point data.{split}_reports_csv at a CT-RATE reports CSV (docs/formats.md#ct-rate-layout)",
            )
        return read_reports_csv(csv_path)["report"].to_dict()

    def labels(self, split: str) -> pd.DataFrame | None:
        self._check_split(split)
        path = self.labels_csv[split]
        return read_labels_csv(path) if path else None

    def volumes(self, split: str, visual_dims: Mapping[str, int] | None = None) -> list[Volume]:
        self._check_split(split)
        return embedded_volumes(
            self.reports(split),
            self.whole_embeddings[split],
            self.whole_key,
            self.organ_embeddings[split],
            visual_dims,
            self.missing_embedding,
        )


class ReleaseBundle(CTRateLayout):
    """The AdaRAG-CT release bundle (docs/formats.md#release-bundle): as :class:`CTRateLayout`, but the release ships
    no validation reports CSV, so with ``valid_reports_csv`` null the validation references are ``raw_report`` of
    ``valid_organ_reports_json``.

    Args:
        valid_organ_reports_json: the bundle's ``annotations/valid_organ_reports.json``.
        kwargs: :class:`CTRateLayout`'s.
    """

    def __init__(self, *, valid_organ_reports_json: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.valid_organ_reports_json = valid_organ_reports_json

    def reports(self, split: str) -> dict[str, str]:
        if split == "valid" and not self.reports_csv["valid"] and self.valid_organ_reports_json:
            entries = read_organ_reports_json(self.valid_organ_reports_json)
            return {vid: entry["raw_report"] for vid, entry in entries.items()}
        return super().reports(split)


def dataset(data_cfg: Mapping[str, Any]) -> Dataset:
    """The dataset a ``conf/data`` node describes: its ``_target_`` class made with its keys (Hydra's
    ``instantiate``, so interpolations resolve against the whole config), or 0.1's rules without ``_target_``."""
    where = f"conf/data/{data_cfg.get('name')}.yaml"
    if "_target_" not in data_cfg:
        try:
            made: Any = ReleaseBundle(**{str(k): data_cfg[k] for k in data_cfg})
        except TypeError as err:  # a required key missing from a 0.1 data config
            raise DataError(
                where, "keys", str(err).split("__init__() ")[-1], "add it as conf/data/ctrate.yaml has it"
            ) from err
    else:
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        try:
            made = instantiate(data_cfg, _recursive_=False)
        except InstantiationException as err:
            cause = err.__cause__ if isinstance(err.__cause__, DataError) else None
            if cause is not None:
                raise cause from err
            raise DataError(
                where,
                "_target_",
                f"cannot make the dataset {data_cfg['_target_']!r}: {' '.join(str(err.__cause__ or err).split())}",
                "name a Dataset class (adaragct.data.datasets.Dataset) and give exactly its keywords (docs/datasets.md)",
            ) from err
    if not isinstance(made, Dataset):
        missing = [m for m in ("name", "splits", "reports", "labels", "volumes") if not hasattr(made, m)]
        raise DataError(
            where,
            "_target_",
            f"{type(made).__name__} is not a dataset (it lacks {', '.join(missing)})",
            "give the class the members of adaragct.data.datasets.Dataset (docs/datasets.md)",
        )
    return made


def load_split(
    data_cfg: Mapping[str, Any], split: str, visual_dims: Mapping[str, int] | None = None
) -> list[Volume]:
    """Volumes of ``split`` of the configured dataset, with embeddings checked and aligned (every stage gets its
    volumes here, so ids, alignment and the missing-embedding policy are decided once)."""
    return dataset(data_cfg).volumes(split, visual_dims)


def split_reports(data_cfg: Mapping[str, Any], split: str) -> dict[str, str]:
    """``{volume_id: reference report}`` of ``split`` of the configured dataset."""
    return dataset(data_cfg).reports(split)
