"""Data that is not ours runs end to end: the release bundle and CT-RATE's layout through every stage.

prepare -> index -> train phase=align -> phase=base (from align's projector) -> phase=rag -> infer (adaptive,
oracle, none) -> cal_metrics, each stage composed from the real configs (``data=adaragct_bundle`` / ``data=ctrate`` plus paths) exactly as the README's
commands compose them, with ``model=tiny`` and a few steps. The release bundle's own retrieval pieces must be used
as they are; for CT-RATE the index stage builds them all. Bad input files fail at the stage that reads them with a
DataError naming the file and the field.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from adaragct.errors import DataError
from tests.conftest import FAST_TRAIN, compose_config
from tests.layouts import (
    rewrite_ids_as_objects,
    small_cohort,
    write_ctrate_layout,
    write_projection,
    write_release_bundle,
    write_tiny_visd_boost,
)

N_VALID = 10
PIECES = ("database", "embeddings", "neighbours", "oracle_contexts", "retrieved_contexts")


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


@pytest.fixture(scope="module")
def cohort():
    return small_cohort(n_train=40, n_valid=N_VALID)


@pytest.fixture(scope="module")
def projected(tmp_path_factory):
    """The projected MiniLM (256-d) that made the release fixture's sentence embeddings, and its config."""
    from adaragct.retrieval.encoders import packaged_minilm

    path = write_projection(tmp_path_factory.mktemp("encoder") / "projection.npy")
    return packaged_minilm(progress=False, projection=path), [f"encoder.projection={path}"]


@pytest.fixture(scope="module")
def release(cohort, projected, tmp_path_factory) -> Path:
    return write_release_bundle(tmp_path_factory.mktemp("release") / "bundle", cohort, projected[0])


class Stages:
    """The stage commands' configs for one dataset, under one work folder."""

    def __init__(self, work: Path, data: list[str], encoder: list[str] = (), model: list[str] = ()) -> None:
        self.work, self.encoder, self.model = work, list(encoder), list(model)
        self.common = [
            f"paths.root_dir={work}",
            f"paths.data_dir={work}/data",
            f"paths.cache_dir={work}/cache",
            *data,
        ]

    def cfg(self, name: str, *extra: str):
        return compose_config(name, [*self.common, f"paths.output_dir={self.work}/runs/{name}", *extra])

    def prepare(self, *extra: str) -> dict:
        from adaragct.apps.prepare import run as run_prepare

        return _quiet(run_prepare, self.cfg("prepare", "tokenizer.vocab_size=600", "tiny_lm.steps=3", *extra))

    def index(self, *extra: str) -> dict:
        from adaragct.apps.index import run

        overrides = ["index.progress=false", "+encoder.progress=false", *self.encoder, *extra]
        return _quiet(run, self.cfg("index", *overrides))

    def train(self, phase: str, *extra: str) -> Path:
        from adaragct.apps.train import run as train

        overrides = ("model=tiny", *FAST_TRAIN, f"phase={phase}", "datamodule.max_length=2048", *self.model)
        cfg = self.cfg("train", *overrides, *extra)
        _quiet(train, cfg)
        return self.work / "outputs" / "train" / f"{cfg.data.name}_tiny_{phase}" / "last"

    def infer(self, retrieval: str) -> Path:
        from adaragct.apps.infer import run as run_infer

        predictions = self.work / "predictions" / f"{retrieval}.jsonl"
        extra = (
            "generation.max_new_tokens=40",
            "generation.rag_logit_bias=50.0",
            "generation.min_probe_chars=1",
            "progress=false",
        )
        _quiet(
            run_infer,
            self.cfg("infer", f"retrieval={retrieval}", f"predictions={predictions}", *extra, *self.encoder),
        )
        return predictions


def _every_stage(stages: Stages, labels_csv: str, n_volumes: int) -> dict:
    """prepare -> index -> train base -> train rag -> infer x3 -> cal_metrics; what each wrote."""
    from adaragct.compat.cal_metrics import main as cal_metrics

    out = {"prepare": stages.prepare(), "index": stages.index()}
    align = stages.train("align")
    base = stages.train("base", f"phase.projector_from={align}")
    out["checkpoints"] = [align, base, stages.train("rag")]
    out["metrics"] = {}
    for retrieval in ("adaptive", "oracle", "none"):
        predictions = stages.infer(retrieval)
        rows = [json.loads(line) for line in predictions.read_text().splitlines()]
        assert len(rows) == n_volumes and all(r["reference_text"] for r in rows), retrieval
        metrics = predictions.with_name(f"{retrieval}_metrics.json")
        argv = [str(predictions), "--output", str(metrics), "--labels-csv", labels_csv, "--no-meteor"]
        assert _quiet(cal_metrics, argv) == 0
        out["metrics"][retrieval] = json.loads(metrics.read_text())
        out[retrieval] = rows
    return out


def test_release_bundle_runs_every_stage_on_its_own_files(cohort, release, projected, tmp_path) -> None:
    from adaragct.data.index_files import index_file
    from adaragct.formats.neighbours import read_image_neighbours
    from adaragct.formats.sentence_db import read_sentence_embeddings
    from adaragct.retrieval.encoders import l2_normalise

    stages = Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={release}"], projected[1])
    n_volumes = len(cohort["valid"].volume_ids)
    out = _every_stage(stages, str(release / "annotations/valid_predicted_labels.csv"), n_volumes)
    assert out["prepare"]["counts"]["valid"] == {
        "patients": N_VALID,
        "volumes": n_volumes,
        "unlabelled_volumes": 0,
    }
    assert not any(release.rglob("index_state.json")), "nothing may be written into the user's bundle"
    index = out["index"]
    assert index["sources"] == dict.fromkeys(PIECES, "release"), index["status"]
    assert all(index["status"][p].startswith("used as is (release") for p in PIECES)
    data = stages.cfg("infer").data
    for piece, path in {
        "database": "retrieval/database/train_sentences_multi_label.json",
        "embeddings": "retrieval/database/train_sentence_embeds.npz",
        "neighbours": "retrieval/img2img_top20.json",
        "oracle_contexts": "oracle/oracle_context_top3.jsonl",
        "retrieved_contexts": "retrieval/retrieval_context_top3.jsonl",
    }.items():
        assert index_file(data, piece) == release / path
    # the bank holds the release's own embeddings, bit for bit, and nothing was encoded but the spot check
    from adaragct.retrieval.runtime import load_retriever

    retriever = load_retriever(
        stages.cfg("infer").retrieval, data, stages.cfg("infer", *projected[1]).encoder
    )
    ids, emb = read_sentence_embeddings(release / "retrieval/database/train_sentence_embeds.npz")
    pos = {sid: i for i, sid in enumerate(ids)}
    rows = [pos[r.sentence_id] for r in retriever.bank.records]
    assert np.array_equal(retriever.bank.embeddings, l2_normalise(emb[rows]))
    assert retriever.neighbours == read_image_neighbours(release / "retrieval/img2img_top20.json")
    assert not (Path(data.retrieval_dir) / "database").exists()
    assert sum(r["retrieval_count"] for r in out["adaptive"]) > 0
    for metrics in out["metrics"].values():
        assert metrics["num_samples"] == n_volumes and 0 <= metrics["report_generation/clinical_f1"] <= 1


def test_ctrate_layout_runs_every_stage_with_everything_built(cohort, tmp_path) -> None:
    """With the findings prompt too: CT-RATE has training labels, so phase align fits the finding classifier,
    base and rag inherit it, and inference names each volume's findings from its own embeddings."""
    ctrate, bundle = write_ctrate_layout(tmp_path / "user", cohort)
    data = ["data=ctrate", f"data.root={ctrate}", f"data.bundle_root={bundle}"]
    stages = Stages(tmp_path, data, model=["prompt=findings"])
    n_volumes = len(cohort["valid"].volume_ids)
    out = _every_stage(stages, str(ctrate / "multi_abnormality_labels/valid_predicted_labels.csv"), n_volumes)
    align, base, rag = out["checkpoints"]
    assert not (align / "adapter_model.safetensors").exists()  # align trains the projector alone
    assert all((c / "findings.safetensors").is_file() for c in (align, base, rag))
    from adaragct.models.findings import read_findings

    assert torch.equal(read_findings(align).weight, read_findings(rag).weight)  # one classifier, inherited
    assert out["index"]["sources"] == dict.fromkeys(PIECES, "built")
    assert out["prepare"]["organ_probe_auc"], "CT-RATE has train labels: the probes run"
    written = {p.relative_to(tmp_path / "user") for p in (tmp_path / "user").rglob("*") if p.is_file()}
    assert all(str(p).startswith(("ctrate/", "bundle/embeddings/")) for p in written), written
    assert (tmp_path / "data/work/ctrate/retrieval/index_state.json").is_file()
    assert sum(r["retrieval_count"] for r in out["adaptive"]) > 0
    assert out["metrics"]["none"]["num_samples"] == n_volumes


# ---- bad input through the stage commands: the readers' error cases, met where a user meets them ----------------
def _rewrite_npz(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez(path, **arrays)


def _drop_first_row(arrays: dict) -> None:
    for key in list(arrays):
        arrays[key] = arrays[key][1:]


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _drop_labels_row(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1] + lines[2:]))


BAD_FOR_PREPARE = {
    "missing file": (
        lambda b: (b / "embeddings/visd_boost/valid_embeds.npz").unlink(),
        "visd_boost/valid_embeds.npz",
        "does not exist",
    ),
    "missing key": (
        lambda b: _rewrite_npz(b / "embeddings/visd_boost/train_embeds.npz", lambda a: a.pop("lung")),
        "visd_boost/train_embeds.npz",
        "array 'lung'",
    ),
    "wrong dimension": (
        lambda b: _rewrite_npz(
            b / "embeddings/ct_clip/valid_embeds.npz",
            lambda a: a.update(ct_clip_max=a["ct_clip_max"][:, :256]),
        ),
        "ct_clip/valid_embeds.npz",
        "dimension 256, expected 512",
    ),
    "report without embedding": (
        lambda b: _rewrite_npz(b / "embeddings/visd_boost/valid_embeds.npz", _drop_first_row),
        "visd_boost/valid_embeds.npz",
        "have a report but no embedding",
    ),
    "volume without labels": (
        lambda b: _drop_labels_row(b / "annotations/valid_predicted_labels.csv"),
        "valid_predicted_labels.csv",
        "no labels row",
    ),
    "entry without raw_report": (
        lambda b: _edit_json(b / "annotations/valid_organ_reports.json", lambda d: d[0].pop("raw_report")),
        "valid_organ_reports.json",
        "raw_report",
    ),
}
BAD_FOR_INDEX = {
    "sentence without embedding": (
        lambda b: _rewrite_npz(b / "retrieval/database/train_sentence_embeds.npz", _drop_first_row),
        "train_sentence_embeds.npz",
        "have no embedding",
    ),
    "embeddings of another encoder": (
        lambda b: _rewrite_npz(
            b / "retrieval/database/train_sentence_embeds.npz",
            lambda a: a.update(
                embeddings=np.random.default_rng(0).standard_normal(a["embeddings"].shape).astype(np.float32)
            ),
        ),
        "train_sentence_embeds.npz",
        "not made by the configured encoder",
    ),
    "database organ unknown": (
        lambda b: _edit_json(
            b / "retrieval/database/train_sentences_multi_label.json",
            lambda d: next(iter(d.values()))[0].update(organs=["liver"]),
        ),
        "train_sentences_multi_label.json",
        "unknown organs",
    ),
    "valid volume without neighbours": (
        lambda b: _edit_json(b / "retrieval/img2img_top20.json", lambda d: d.pop(next(iter(d)))),
        "img2img_top20.json",
        "have no image neighbours",
    ),
    "context entry without retrieved": (
        lambda b: _edit_json(
            b / "oracle/oracle_context_top3.jsonl", lambda d: next(iter(d.values()))[0].pop("retrieved")
        ),
        "oracle_context_top3.jsonl",
        "retrieved",
    ),
}


def _broken(release: Path, tmp_path: Path, damage) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(release, bundle)
    damage(bundle)
    return bundle


@pytest.mark.parametrize("case", list(BAD_FOR_PREPARE))
def test_prepare_names_the_file_and_field_of_bad_release_input(release, tmp_path, case) -> None:
    damage, file, field = BAD_FOR_PREPARE[case]
    bundle = _broken(release, tmp_path, damage)
    with pytest.raises(DataError) as err:
        Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={bundle}"]).prepare()
    assert file in err.value.path and field in str(err.value) and err.value.fix


@pytest.mark.parametrize("case", list(BAD_FOR_INDEX))
def test_index_names_the_file_and_field_of_bad_release_input(release, projected, tmp_path, case) -> None:
    damage, file, field = BAD_FOR_INDEX[case]
    bundle = _broken(release, tmp_path, damage)
    with pytest.raises(DataError) as err:
        Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={bundle}"], projected[1]).index()
    assert file in err.value.path and field in str(err.value) and err.value.fix


def test_release_npz_with_object_id_arrays_goes_through_prepare_and_index(
    cohort, release, projected, tmp_path
) -> None:
    """The release writes its id arrays from pandas columns: object arrays of str, pickled inside the .npy. They
    load through the restricted unpickler (adaragct.formats.safe_npz) with the same ids as string arrays give."""
    from adaragct.formats.embeddings import read_embeddings_npz
    from adaragct.formats.sentence_db import read_sentence_embeddings

    bundle = tmp_path / "bundle"
    shutil.copytree(release, bundle)
    rewritten = rewrite_ids_as_objects(bundle)
    assert len(rewritten) == 5
    with np.load(bundle / "retrieval/database/train_sentence_embeds.npz", allow_pickle=True) as npz:
        assert npz["sentence_ids"].dtype == object  # the fixture holds what the release holds
    stages = Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={bundle}"], projected[1])
    prepared = stages.prepare()
    assert prepared["counts"]["valid"]["volumes"] == len(cohort["valid"].volume_ids)
    index = stages.index("index.quality=false")
    assert index["sources"] == dict.fromkeys(PIECES, "release"), index["status"]
    assert index["status"]["embeddings"].startswith("used as is (release")
    organs = "embeddings/visd_boost/valid_embeds.npz"
    assert (
        read_embeddings_npz(bundle / organs, ["lung"]).ids
        == read_embeddings_npz(release / organs, ["lung"]).ids
    )
    sentences = "retrieval/database/train_sentence_embeds.npz"
    ids, emb = read_sentence_embeddings(bundle / sentences)
    assert ids == read_sentence_embeddings(release / sentences)[0] and ids[:3] == ["0", "1", "2"]
    assert emb.dtype == np.float32


@pytest.fixture
def one_thread():
    """torch on one thread: the tiny BERT's thousand single-sentence forwards take ~1 ms each, but ~15 ms with two
    threads on a loaded machine (spin-waiting)."""
    ambient = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(ambient)


def test_release_embeddings_of_visd_boost_are_used_as_is_with_encoder_visd_boost(
    tmp_path, caplog, one_thread
) -> None:
    """The release's sentence embeddings come from ViSD-Boost's text tower: with encoder=visd_boost (the same
    checkpoint and max_txt_len) the index stage uses them as they are; another max_txt_len fails the spot check."""
    from adaragct.retrieval.visd_boost import VisdBoostEncoder

    cohort = small_cohort(n_train=24, n_valid=4, seed=11)
    reports = [r for split in cohort.values() for r in split.volume_reports()]
    checkpoint, bert_dir, _, _ = write_tiny_visd_boost(tmp_path / "visd_boost", reports)
    encoder = VisdBoostEncoder(checkpoint, bert_dir, max_txt_len=32, progress=False)
    bundle = write_release_bundle(tmp_path / "bundle", cohort, encoder)
    settings = ["encoder=visd_boost", f"encoder.checkpoint={checkpoint}", f"encoder.bert_dir={bert_dir}"]
    data = ["data=adaragct_bundle", f"data.bundle_root={bundle}"]
    stages = Stages(tmp_path / "work", data, [*settings, "encoder.max_txt_len=32"])
    with caplog.at_level(logging.INFO, logger="adaragct.retrieval.index_build"):
        index = stages.index("index.quality=false")
    assert index["sources"] == dict.fromkeys(PIECES, "release"), index["status"]
    assert index["status"]["embeddings"] == "used as is (release)"
    assert (index["encoder_id"], index["dim"]) == (encoder.encoder_id, 256)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embeddings ")]
    assert len(logged) == 1 and "used as is (release)" in logged[0], logged
    other = Stages(tmp_path / "other", data, [*settings, "encoder.max_txt_len=4"])
    with pytest.raises(DataError, match="not made by the configured encoder visd_boost:best_e2e:256:len4:"):
        other.index("index.quality=false")


def test_release_embeddings_of_another_dimension_are_re_encoded_and_the_log_says_why(
    release, tmp_path
) -> None:
    index = Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={release}"]).index(
        "index.quality=false"
    )
    assert index["sources"]["database"] == "release" and index["sources"]["embeddings"] == "built"
    assert "256-d" in index["status"]["embeddings"] and "384-d" in index["status"]["embeddings"]
    assert index["dim"] == 384


def test_the_command_line_prints_the_data_error(release, tmp_path) -> None:
    import subprocess
    import sys

    bundle = _broken(release, tmp_path, BAD_FOR_PREPARE["missing file"][0])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaragct.prepare",
            "data=adaragct_bundle",
            f"data.bundle_root={bundle}",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2  # a user error: one line, no traceback (errors.user_errors_exit)
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "visd_boost/valid_embeds.npz: file: does not exist (fix:" in run.stderr
    assert "Traceback" not in run.stderr and "TypeError" not in run.stderr


def test_findings_prompt_without_training_labels_names_the_missing_field(
    release, projected, tmp_path
) -> None:
    """The release bundle has validation labels only: the findings prompt cannot be trained on it."""
    from adaragct.apps.train import run as train

    stages = Stages(tmp_path, ["data=adaragct_bundle", f"data.bundle_root={release}"], projected[1])
    stages.prepare()
    cfg = stages.cfg("train", "model=tiny", *FAST_TRAIN, "phase=align", "prompt=findings")
    with pytest.raises(DataError, match="train_labels_csv"):
        train(cfg)
