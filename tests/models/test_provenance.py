"""Checkpoints know their base (provenance.json, adaragct.models.provenance): issue 24.

The base here is a real tiny LM pretrained by the prepare stage's own code (``pretrain_tiny_lm``) into a model
directory; "pretrained again in place with other settings" is what ``make prepare`` did to the demo's checkpoints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from adaragct.errors import DataError
from adaragct.models import provenance
from adaragct.models.builders import llama_tiny, load_tokenizer
from adaragct.models.checkpoint import save_checkpoint
from adaragct.models.loading import build_phase_model, load_checkpoint
from adaragct.models.tiny_lm import pretrain_tiny_lm
from tests.models.conftest import CORPUS, model_cfg, perturb_trainable, phase_cfg, random_visual

LOGGER = "adaragct.models.provenance"


def _pretrain(lm_dir: Path, tokenizer_dir: Path, seed: int) -> Path:
    """The prepare stage's pretraining, 2 steps: a model directory (weights + tokenizer) like data/demo/tiny_lm."""
    pretrain_tiny_lm(CORPUS, tokenizer_dir, lm_dir, steps=2, batch_size=4, warmup=1, seed=seed)
    return lm_dir


def _save(root: Path, model, tokenizer, mc: dict, sc: dict) -> Path:
    return save_checkpoint(root, "step-000003", model, tokenizer, yaml.safe_dump({"model": mc, "phase": sc}))


def _logits(model) -> torch.Tensor:
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    model.eval()
    with torch.no_grad():
        return model(ids, torch.ones_like(ids), random_visual(1))


@pytest.fixture()
def trained(tmp_path, tokenizer_dir):
    """A pretrained tiny LM, a phase=base checkpoint on it and a phase=rag checkpoint merged from that one."""
    lm = _pretrain(tmp_path / "lm", tokenizer_dir, seed=0)
    tokenizer = load_tokenizer(lm)
    mc = model_cfg(lm)
    base = build_phase_model(mc, phase_cfg("base"), tokenizer)
    perturb_trainable(base, 1)
    base_ckpt = _save(tmp_path / "base", base, tokenizer, mc, phase_cfg("base"))
    rag_phase = phase_cfg("rag", init_from=str(base_ckpt))
    rag = build_phase_model(mc, rag_phase, tokenizer, init_from=base_ckpt)
    perturb_trainable(rag, 2)
    rag_ckpt = _save(tmp_path / "rag", rag, tokenizer, mc, rag_phase)
    return {
        "lm": lm,
        "tokenizer_dir": tokenizer_dir,
        "base": base_ckpt,
        "rag": rag_ckpt,
        "logits": _logits(rag),
    }


def test_checkpoints_record_their_base_and_starting_checkpoint(trained) -> None:
    lm, base_ckpt = trained["lm"], trained["base"]
    recorded = provenance.read_provenance(base_ckpt)
    assert recorded["format"] == 1 and set(recorded) == {"format", "base"}
    assert recorded["base"]["scheme"] == "files" and recorded["base"]["source"] == str(lm.resolve())
    assert len(recorded["base"]["sha256"]) == 64
    assert recorded["base"] == provenance.weights_fingerprint(lm)
    rag = provenance.read_provenance(trained["rag"])
    assert rag["base"] == recorded["base"]
    assert rag["init_from"] == {
        "scheme": "checkpoint",
        "source": str(base_ckpt),
        "sha256": provenance.phase_fingerprint(base_ckpt)["sha256"],
    }
    # the base's fingerprint is its weights' contents: another tiny LM gives another one
    other = _pretrain(lm.parent / "other_lm", trained["tokenizer_dir"], seed=1)
    assert provenance.weights_fingerprint(other)["sha256"] != recorded["base"]["sha256"]


def test_same_base_loads_silently_even_when_pretrained_again_identically(trained, caplog) -> None:
    _pretrain(
        trained["lm"], trained["tokenizer_dir"], seed=0
    )  # prepare rerun with the same settings: same bytes
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model, _, _ = load_checkpoint(trained["rag"])
    assert caplog.records == []
    torch.testing.assert_close(_logits(model), trained["logits"], rtol=1e-6, atol=1e-6)


def test_a_base_pretrained_again_with_other_settings_is_refused_unless_allowed(trained, caplog) -> None:
    """The issue's bug: the demo's tiny LM pretrained again in place, its checkpoints loaded on top in silence."""
    from adaragct.apps.infer import load_generation_model

    recorded = provenance.read_provenance(trained["base"])["base"]["sha256"]
    _pretrain(trained["lm"], trained["tokenizer_dir"], seed=1)
    now = provenance.weights_fingerprint(trained["lm"])["sha256"]
    assert now != recorded
    for ckpt in (trained["base"], trained["rag"]):
        with pytest.raises(DataError) as caught:
            load_checkpoint(ckpt)
        message = str(caught.value)
        assert message.startswith(f"{ckpt}/provenance.json: base: trained on base weights sha256 {recorded}")
        assert f"the base built now is sha256 {now}" in message
        assert (
            message.count(str(trained["lm"].resolve())) == 2
        )  # both sources: here the same folder, rewritten
        assert (
            "fix: load it on the weights it was trained on" in message
            and "allow_base_mismatch=true" in message
        )
    # training phase rag on top of the old base checkpoint is refused too
    tokenizer = load_tokenizer(trained["lm"])
    with pytest.raises(DataError, match=r"base: trained on base weights .*this run's base \(init_from\) is"):
        build_phase_model(model_cfg(trained["lm"]), phase_cfg("rag"), tokenizer, init_from=trained["base"])
    # allow_base_mismatch=true: loaded, with a warning
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model, _, _ = load_generation_model(str(trained["rag"]), "cpu", allow_base_mismatch=True)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and all("allow_base_mismatch=true" in w for w in warned)
    assert any(w.startswith(f"{trained['rag']}/provenance.json: base:") for w in warned)
    assert not torch.allclose(_logits(model), trained["logits"], atol=1e-3)  # another model, as warned


def test_a_starting_checkpoint_retrained_in_place_is_refused(trained) -> None:
    base_file = trained["base"] / "projector.safetensors"
    tensors = load_file(str(base_file))
    save_file({k: v + 0.01 for k, v in tensors.items()}, str(base_file))
    with pytest.raises(DataError, match=r"provenance.json: init_from: trained on phase.init_from checkpoint"):
        load_checkpoint(trained["rag"])


def test_a_checkpoint_from_before_provenance_loads_with_a_warning(
    tmp_path, tokenizer_dir, tokenizer, caplog
) -> None:
    mc = model_cfg(tokenizer_dir)
    model = build_phase_model(mc, phase_cfg("base"), tokenizer)
    perturb_trainable(model, 4)
    ckpt = _save(tmp_path / "b", model, tokenizer, mc, phase_cfg())
    (ckpt / "provenance.json").unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        loaded, _, _ = load_checkpoint(ckpt)
    assert [r.getMessage() for r in caplog.records] == [
        f"{ckpt}: no provenance.json (written before checkpoints recorded their base): cannot check that it was "
        f"trained on the base built from {tokenizer_dir}; a checkpoint trained again records it"
    ]
    torch.testing.assert_close(_logits(loaded), _logits(model), rtol=1e-6, atol=1e-6)


def test_a_random_init_base_is_fingerprinted_by_its_tensors(tmp_path, tokenizer_dir, tokenizer) -> None:
    """model=tiny without weights (a bare tokenizer dir): the seeded init, hashed; a checkpoint trained on it
    is refused on a pretrained LM at the same model.path."""
    mc = model_cfg(tokenizer_dir)
    ckpt = _save(
        tmp_path / "b", build_phase_model(mc, phase_cfg("base"), tokenizer), tokenizer, mc, phase_cfg()
    )
    recorded = provenance.read_provenance(ckpt)["base"]
    assert recorded["scheme"] == "tensors" and recorded["source"].startswith("random init of llama_tiny")
    assert recorded == provenance.tensors_fingerprint(
        llama_tiny(load_tokenizer(tokenizer_dir)), recorded["source"]
    )
    load_checkpoint(ckpt)  # the same seed builds the same weights
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    config["model"]["path"] = str(_pretrain(tmp_path / "lm", tokenizer_dir, seed=0))
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        DataError, match=r"base: trained on base weights sha256 \w+ \(random init of llama_tiny"
    ):
        load_checkpoint(ckpt)


def test_the_training_chain_records_each_stage_start(tiny_checkpoints) -> None:
    """The real train entry point: align -> base (projector_from) -> rag (init_from), each on the prepared tiny
    LM, each recording what it started from."""
    align, base, rag = (provenance.read_provenance(tiny_checkpoints[s]) for s in ("align", "base", "rag"))
    model_path = yaml.safe_load((tiny_checkpoints["rag"] / "config.yaml").read_text())["model"]["path"]
    assert align["base"] == base["base"] == rag["base"] == provenance.weights_fingerprint(model_path)
    assert set(align) == {"format", "base"}
    assert base["projector_from"] == provenance.phase_fingerprint(tiny_checkpoints["align"].resolve())
    assert rag["init_from"] == provenance.phase_fingerprint(tiny_checkpoints["base"].resolve())
    assert set(rag) == {"format", "base", "init_from"}
