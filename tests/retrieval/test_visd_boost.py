"""encoder=visd_boost: the release's probe encoder from a checkpoint in the release's key layout (a tiny BERT)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from adaragct.errors import DataError, UsageError
from adaragct.retrieval.encoders import TextEncoder
from adaragct.retrieval.visd_boost import VisdBoostEncoder
from tests.conftest import compose_config
from tests.layouts import write_tiny_visd_boost
from tests.retrieval.conftest import CORPUS

TEXTS = [t for _, t, _, _ in CORPUS]
MAX_TXT_LEN = 24


def _release_encoding(bert_dir: Path, bert, proj, texts: list[str], max_txt_len: int) -> np.ndarray:
    """The release's code (one sentence at a time) on the plain BertModel and Linear the checkpoint was made of."""
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    rows = []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer(
                [text], padding="max_length", truncation=True, max_length=max_txt_len, return_tensors="pt"
            )
            output = bert(tokens.input_ids, attention_mask=tokens.attention_mask)
            rows.append(F.normalize(proj(output.last_hidden_state[:, 0, :]), dim=-1)[0].numpy())
    return np.stack(rows)


def _from_config(checkpoint: Path, bert_dir: Path, *extra: str) -> VisdBoostEncoder:
    from hydra.utils import instantiate

    cfg = compose_config(
        "index",
        [
            "paths.output_dir=unused",
            "encoder=visd_boost",
            f"encoder.checkpoint={checkpoint}",
            f"encoder.bert_dir={bert_dir}",
            *extra,
        ],
    )
    return instantiate(cfg.encoder, progress=False)


@pytest.mark.parametrize("blip_style", [False, True])
def test_embeddings_equal_the_release_encoding_of_the_checkpoint(tmp_path: Path, blip_style: bool) -> None:
    long = " ".join(TEXTS)  # longer than max_txt_len: truncated, as the release's tokenizer call does
    texts = [*TEXTS, long]
    checkpoint, bert_dir, bert, proj = write_tiny_visd_boost(tmp_path, texts, blip_style=blip_style)
    encoder = _from_config(checkpoint, bert_dir, f"encoder.max_txt_len={MAX_TXT_LEN}")
    assert isinstance(encoder, TextEncoder) and encoder.dim == 256
    assert encoder.encoder_id.startswith(f"visd_boost:best_e2e:256:len{MAX_TXT_LEN}:single:")
    got = encoder.encode(texts)
    want = _release_encoding(bert_dir, bert, proj, texts, MAX_TXT_LEN)
    assert got.dtype == np.float32 and got.shape == (len(texts), 256)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    assert np.abs(got[0] - got[1]).max() > 0.01  # sentences differ (the test would see a broken model)
    # batches give the same embeddings up to float noise (every sentence is padded to max_txt_len)
    batched = _from_config(
        checkpoint, bert_dir, f"encoder.max_txt_len={MAX_TXT_LEN}", "encoder.batch_invariant=false"
    )
    assert batched.encoder_id != encoder.encoder_id
    np.testing.assert_allclose(batched.encode(texts), got, atol=1e-6)
    # another max_txt_len is another encoder (and other embeddings for the long text)
    shorter = _from_config(checkpoint, bert_dir, "encoder.max_txt_len=8")
    assert shorter.encoder_id != encoder.encoder_id
    assert np.abs(shorter.encode([long]) - got[-1:]).max() > 1e-3


def test_the_checkpoint_weights_matter_and_the_bert_dir_holds_none(tmp_path: Path) -> None:
    a = write_tiny_visd_boost(tmp_path / "a", TEXTS, seed=0)
    b = write_tiny_visd_boost(tmp_path / "b", TEXTS, seed=1)
    assert not any(p.suffix in (".safetensors", ".bin") for p in a[1].iterdir())
    enc_a = _from_config(a[0], a[1], "encoder.max_txt_len=16")
    enc_b = _from_config(b[0], a[1], "encoder.max_txt_len=16")  # the same BERT dir, b's weights
    assert enc_a.encoder_id != enc_b.encoder_id
    assert np.abs(enc_a.encode(TEXTS[:2]) - enc_b.encode(TEXTS[:2])).max() > 0.01


def test_max_txt_len_must_be_given(tmp_path: Path) -> None:
    from omegaconf.errors import MissingMandatoryValue

    checkpoint, bert_dir, _, _ = write_tiny_visd_boost(tmp_path, TEXTS)
    with pytest.raises(MissingMandatoryValue, match="max_txt_len"):
        _from_config(checkpoint, bert_dir)
    with pytest.raises(UsageError, match=r"encoder\.max_txt_len=65: not a token count in 1\.\.64"):
        VisdBoostEncoder(checkpoint, bert_dir, max_txt_len=65)


class _Marker:
    """Unpickling this would create ``path`` (a file can name any callable)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_checkpoint_holding_other_objects_is_refused_without_running_them(tmp_path: Path) -> None:
    checkpoint, bert_dir, _, _ = write_tiny_visd_boost(tmp_path, TEXTS)
    marker = tmp_path / "marker"
    state = torch.load(checkpoint, weights_only=True)
    state["args"] = _Marker(marker)
    crafted = tmp_path / "crafted.pth"
    torch.save(state, crafted)
    with pytest.raises(DataError) as err:
        VisdBoostEncoder(crafted, bert_dir, max_txt_len=16)
    assert err.value.path == str(crafted) and "is not unpickled" in str(err.value)
    assert "weights_only=False" in err.value.fix  # how to extract the state dict from a trusted file
    assert not marker.exists()
    torch.load(crafted, weights_only=False)  # plain unpickling runs it: the test can fail
    assert marker.exists()


def _rewrite(checkpoint: Path, change) -> Path:
    state = torch.load(checkpoint, weights_only=True)
    change(state)
    torch.save(state, checkpoint)
    return checkpoint


def _drop(prefix: str):
    def change(state: dict) -> None:
        for key in [k for k in state["model"] if k.startswith(prefix)]:
            del state["model"][key]

    return change


BAD = {
    "no model entry": (lambda s: s.pop("model"), "key 'model'", "missing or not a state dict"),
    "no text encoder": (_drop("text_encoder."), "key 'model.text_encoder.*'", "no such keys"),
    "no projection": (_drop("text_proj."), "key 'model.text_proj.*'", "no such keys"),
    "no projection bias": (_drop("text_proj.bias"), "key 'model.text_proj.bias'", "missing"),
    "missing layer tensor": (
        _drop("text_encoder.encoder.layer.1.output.dense.weight"),
        "key 'model.text_encoder.encoder.layer.1.output.dense.weight'",
        "1 missing",
    ),
    "unexpected tensor": (
        lambda s: s["model"].update(
            {"text_encoder.encoder.layer.2.output.dense.weight": torch.zeros(32, 64)}
        ),
        "key 'model.text_encoder.encoder.layer.2.output.dense.weight'",
        "1 unexpected",
    ),
    "wrong shape": (
        lambda s: s["model"].update(
            {"text_encoder.encoder.layer.0.intermediate.dense.weight": torch.zeros(48, 32)}
        ),
        "key 'model.text_encoder.encoder.layer.0.intermediate.dense.weight'",
        "shape (48, 32), the BERT of encoder.bert_dir expects (64, 32)",
    ),
    "projection of another hidden size": (
        lambda s: s["model"].update({"text_proj.weight": torch.zeros(256, 48)}),
        "key 'model.text_proj.weight'",
        "shape (256, 48)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoints_name_the_file_the_key_and_the_fix(tmp_path: Path, case: str) -> None:
    change, field, problem = BAD[case]
    checkpoint, bert_dir, _, _ = write_tiny_visd_boost(tmp_path, TEXTS)
    _rewrite(checkpoint, change)
    with pytest.raises(DataError) as err:
        VisdBoostEncoder(checkpoint, bert_dir, max_txt_len=16)
    assert err.value.path == str(checkpoint) and err.value.field == field, str(err.value)
    assert problem in err.value.problem and err.value.fix


def test_ignored_blip_keys_are_logged_and_a_missing_file_is_named(tmp_path: Path, caplog) -> None:
    checkpoint, bert_dir, _, _ = write_tiny_visd_boost(tmp_path, TEXTS, blip_style=True)
    with caplog.at_level(logging.INFO, logger="adaragct.retrieval.visd_boost"):
        VisdBoostEncoder(checkpoint, bert_dir, max_txt_len=16, progress=False)
    assert "token-type embeddings are zero" in caplog.text
    assert "3 text-encoder tensors not used by a text forward" in caplog.text
    with pytest.raises(DataError, match="file: does not exist"):
        VisdBoostEncoder(tmp_path / "none.pth", bert_dir, max_txt_len=16)
    with pytest.raises(DataError, match=r"config\.json: not a BERT directory"):
        VisdBoostEncoder(checkpoint, tmp_path, max_txt_len=16)
