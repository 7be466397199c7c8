"""The release's probe encoder: the text tower of the ViSD-Boost E2E checkpoint (``encoder=visd_boost``).

The release's ``inference_rag.py`` embeds each probe sentence with the text side of ViSD-Boost's image-text model,
read from ``data/retrieval/best_e2e.pth`` (a ``torch.save`` dict whose ``model`` entry is the VISDBOOST state
dict): a BERT (an ``XBertEncoder`` initialised from microsoft/BiomedVLP-CXR-BERT-specialized) under the prefix
``text_encoder.`` and a linear map to 256-d under ``text_proj.``; every other key (``image_encoder.``,
``vision_proj.``, ``temp``, ...) belongs to the image side and is skipped. The release's encoding, reproduced by
:meth:`VisdBoostEncoder.encode`::

    tokens = tokenizer([text], padding="max_length", truncation=True, max_length=max_txt_len)
    cls = text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state[:, 0, :]
    feature = F.normalize(text_proj(cls), dim=-1)

The BERT's architecture and tokenizer come from a local CXR-BERT directory (``bert_dir``: ``config.json`` and the
tokenizer files; its weights, if any, are not read); its weights come from the checkpoint. Table sizes (vocabulary,
positions, token types) are taken from the checkpoint's tensors, since the release may have added tokens to the
tokenizer and resized the embeddings. ``max_txt_len`` is ViSD-Boost's model setting and is not stored in the
checkpoint: it must be given (see ``conf/encoder/visd_boost.yaml``).

Which text-encoder keys may differ from a plain ``BertModel(add_pooling_layer=False)`` (anything else, missing or
extra, is an error naming the key):
    * ``pooler.*``: ignored when present; the release reads the CLS hidden state, never the pooler output.
    * ``*.crossattention.*``: ignored; BLIP-style XBert layers hold image cross-attention, which the text-only
      forward (``forward_text``, mode "text") never runs.
    * ``embeddings.position_ids``: ignored; a buffer holding ``arange``, rebuilt by the model.
    * ``embeddings.token_type_embeddings.weight`` absent: BLIP's ``med`` BERT has no token-type embeddings, so
      they are set to zero (a forward without them), and the log says so.

The checkpoint is read with ``torch.load(weights_only=True)``: a file that holds anything but tensors and plain
containers is refused, never unpickled (see :func:`read_text_tower`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaragct.errors import DataError, UsageError
from adaragct.retrieval.encoders import _batches, fingerprint_files

log = logging.getLogger(__name__)

TEXT_PREFIX = "text_encoder."
PROJ_PREFIX = "text_proj."
_IGNORED_TEXT_KEYS = ("pooler.", "embeddings.position_ids")
_TOKENIZER_FILES = (
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def _extract_fix(path: Path) -> str:
    return (
        'if you trust the file, save its state dict alone once: python -c "import torch; '
        f"torch.save({{'model': torch.load('{path}', weights_only=False)['model']}}, 'best_e2e_weights.pth')\" and "
        "point encoder.checkpoint at the new file"
    )


def read_text_tower(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The text encoder's tensors (prefix ``text_encoder.`` removed) and ``text_proj``'s, from a ViSD-Boost
    checkpoint; every other key of ``checkpoint['model']`` is left out."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(
            path, "file", "does not exist", "point encoder.checkpoint at the release's best_e2e.pth"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(
            path,
            "file",
            "holds objects other than tensors and plain containers, so it is not unpickled (torch.load "
            f"weights_only=True refused it: {first})",
            _extract_fix(path),
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise DataError(
            path, "file", f"not a readable torch checkpoint ({err})", "re-download the file"
        ) from err
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        keys = sorted(checkpoint) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise DataError(
            path,
            "key 'model'",
            f"missing or not a state dict (found: {keys})",
            "use the ViSD-Boost E2E checkpoint (best_e2e.pth), whose 'model' entry is the model's state dict",
        )
    state = checkpoint["model"]
    text = {k[len(TEXT_PREFIX) :]: v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
    proj = {k[len(PROJ_PREFIX) :]: v for k, v in state.items() if k.startswith(PROJ_PREFIX)}
    not_tensors = [k for k, v in {**text, **proj}.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise DataError(
            path,
            f"key 'model.*{not_tensors[0]}'",
            "not a tensor",
            "use the E2E checkpoint as the release ships it",
        )
    for prefix, found in ((TEXT_PREFIX, text), (PROJ_PREFIX, proj)):
        if not found:
            raise DataError(
                path,
                f"key 'model.{prefix}*'",
                f"no such keys (prefixes present: {sorted({k.split('.')[0] for k in state})})",
                "use the ViSD-Boost E2E checkpoint with its text tower (text_encoder + text_proj)",
            )
    for name in ("weight", "bias"):
        if not isinstance(proj.get(name), torch.Tensor):
            raise DataError(
                path, f"key 'model.{PROJ_PREFIX}{name}'", "missing or not a tensor", "use the E2E checkpoint"
            )
    return text, proj


def _bert_config(bert_dir: Path, text: Mapping[str, Any], path: Path) -> Any:
    """``bert_dir``'s BertConfig with the checkpoint's table sizes (vocabulary, positions, token types)."""
    from transformers import BertConfig

    if not (bert_dir / "config.json").is_file():
        raise DataError(
            bert_dir,
            "config.json",
            "not a BERT directory",
            "point encoder.bert_dir at a local copy of microsoft/BiomedVLP-CXR-BERT-specialized (config + tokenizer)",
        )
    config = BertConfig.from_pretrained(bert_dir, local_files_only=True)
    for key, attr in (
        ("embeddings.word_embeddings.weight", "vocab_size"),
        ("embeddings.position_embeddings.weight", "max_position_embeddings"),
        ("embeddings.token_type_embeddings.weight", "type_vocab_size"),
    ):
        if key in text:
            if text[key].ndim != 2 or text[key].shape[1] != config.hidden_size:
                raise DataError(
                    path,
                    f"key 'model.{TEXT_PREFIX}{key}'",
                    f"shape {tuple(text[key].shape)}, expected (n, {config.hidden_size}) for the hidden size of "
                    f"{bert_dir / 'config.json'}",
                    "use the BERT config the checkpoint was trained with",
                )
            setattr(config, attr, int(text[key].shape[0]))
    config.add_cross_attention, config.is_decoder = False, False
    return config


def _load_text_encoder(model: Any, text: Mapping[str, Any], path: Path) -> None:
    """Strict load of the text encoder's weights (see the module docstring for the keys that may differ)."""
    import torch

    expected = model.state_dict()
    ignored = [k for k in text if k.startswith(_IGNORED_TEXT_KEYS) or ".crossattention." in k]
    weights = {k: v for k, v in text.items() if k not in ignored}
    token_types = "embeddings.token_type_embeddings.weight"
    if token_types not in weights:
        weights[token_types] = torch.zeros_like(expected[token_types])
        log.info(
            "%s: no %s%s (a BLIP-style BERT): token-type embeddings are zero", path, TEXT_PREFIX, token_types
        )
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        where = f"key 'model.{TEXT_PREFIX}{(missing or unexpected)[0]}'"
        raise DataError(
            path,
            where,
            f"the text encoder's keys do not fit the BERT of encoder.bert_dir: {len(missing)} missing "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}",
            "use the CXR-BERT config the checkpoint was trained with (layer count, key names)",
        )
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise DataError(
                path,
                f"key 'model.{TEXT_PREFIX}{key}'",
                f"shape {tuple(value.shape)}, the BERT of encoder.bert_dir expects {tuple(expected[key].shape)}",
                "use the CXR-BERT config the checkpoint was trained with",
            )
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    if ignored:
        log.info(
            "%s: %d text-encoder tensors not used by a text forward (pooler, cross-attention)",
            path,
            len(ignored),
        )


class VisdBoostEncoder:
    """ViSD-Boost's text tower (the release's probe encoder) as a :class:`~adaragct.retrieval.encoders.TextEncoder`.

    Args:
        checkpoint: the release's ``best_e2e.pth`` (``torch.load`` dict; ``model`` holds the state dict).
        bert_dir: a local CXR-BERT directory with ``config.json`` and the tokenizer (the weights come from
            ``checkpoint``).
        max_txt_len: tokens per sentence, padded to and truncated at (ViSD-Boost's model setting).
        batch_size: sentences per forward pass (only with ``batch_invariant=False``).
        device: torch device.
        name: name used in ``encoder_id`` (default: the checkpoint's file name).
        progress: show a progress bar over batches.
        batch_invariant: one text per forward pass, as the release encodes probes (see
            :mod:`adaragct.retrieval.encoders`).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        bert_dir: str | Path,
        max_txt_len: int,
        batch_size: int = 64,
        device: str = "cpu",
        name: str | None = None,
        progress: bool = True,
        batch_invariant: bool = True,
    ) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        self.checkpoint, self.bert_dir = Path(checkpoint), Path(bert_dir)
        text, proj = read_text_tower(self.checkpoint)
        config = _bert_config(self.bert_dir, text, self.checkpoint)
        if not isinstance(max_txt_len, int) or not 0 < max_txt_len <= config.max_position_embeddings:
            raise UsageError(
                f"encoder.max_txt_len={max_txt_len}",
                f"not a token count in 1..{config.max_position_embeddings} (the model's positions)",
                "set it to ViSD-Boost's max_txt_len (its model config in the release's code)",
            )
        self.max_txt_len = max_txt_len
        self.tokenizer = AutoTokenizer.from_pretrained(self.bert_dir, local_files_only=True)
        if len(self.tokenizer) > config.vocab_size:
            raise DataError(
                self.bert_dir,
                "tokenizer",
                f"{len(self.tokenizer)} tokens, the checkpoint's word embeddings have {config.vocab_size} rows",
                "use the tokenizer the checkpoint was trained with",
            )
        self.device = torch.device(device)
        self.model = BertModel(config, add_pooling_layer=False)
        _load_text_encoder(self.model, text, self.checkpoint)
        weight, bias = proj["weight"], proj["bias"]
        if (
            weight.ndim != 2
            or weight.shape[1] != config.hidden_size
            or tuple(bias.shape) != (weight.shape[0],)
        ):
            raise DataError(
                self.checkpoint,
                f"key 'model.{PROJ_PREFIX}weight'",
                f"shape {tuple(weight.shape)} with bias {tuple(bias.shape)}, expected (d, {config.hidden_size}) "
                "and (d,)",
                "use the text_proj trained with this text encoder",
            )
        self.text_proj = torch.nn.Linear(weight.shape[1], weight.shape[0])
        self.text_proj.load_state_dict({"weight": weight.float(), "bias": bias.float()})
        self.model.to(self.device).eval()
        self.text_proj.to(self.device).eval()
        self.dim = int(weight.shape[0])
        self.batch_size = 1 if batch_invariant else batch_size
        self.progress = progress
        files = [
            self.checkpoint,
            *(self.bert_dir / f for f in _TOKENIZER_FILES if (self.bert_dir / f).is_file()),
        ]
        mode = "single:" if batch_invariant else ""
        self.encoder_id = f"visd_boost:{name or self.checkpoint.stem}:{self.dim}:len{max_txt_len}:{mode}{fingerprint_files(files)}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` as the release does -> float32 ``(n, dim)``, L2-normalised."""
        import torch
        import torch.nn.functional as F

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in _batches(len(texts), self.batch_size, self.progress, "encode"):
                batch = list(texts[start : start + self.batch_size])
                tokens = self.tokenizer(
                    batch,
                    padding="max_length",
                    truncation=True,
                    max_length=self.max_txt_len,
                    return_tensors="pt",
                )
                hidden = self.model(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                ).last_hidden_state
                feature = F.normalize(self.text_proj(hidden[:, 0, :]), dim=-1)
                out[start : start + len(batch)] = feature.float().cpu().numpy()
        return out
