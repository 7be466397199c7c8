"""What a checkpoint was trained on: fingerprints of its base weights and of the checkpoint it started from.

A checkpoint of ours holds trained tensors only; the base LLM is rebuilt from ``model.path`` (or, for a tiny
model without weights there, from a fixed seed). When those weights change after training (the demo's tiny LM
pretrained again with other settings, another download of a Llama), the checkpoint would load without a word and
describe a model nobody trained. So every checkpoint writes ``provenance.json``::

    {"format": 1,
     "base":           {"scheme": "files", "source": "/abs/data/demo/tiny_lm", "sha256": "..."},
     "init_from":      {"scheme": "checkpoint", "source": "/abs/.../demo_tiny_base/step-000060", "sha256": "..."},
     "projector_from": {...}}           # init_from: phase rag; projector_from: phase base from phase align

and loading it (``load_checkpoint``), or training on top of it (``phase.init_from`` / ``phase.projector_from``),
compares them with what is there now. A mismatch is a :class:`~adaragct.errors.DataError` naming both
fingerprints and both sources; ``allow_base_mismatch=true`` (conf/train.yaml, conf/infer.yaml) goes on with a
warning. A checkpoint written before this file existed loads with a warning.

Schemes:
    files       sha256 over the weight files in ``model.path`` (``*.safetensors``, else ``*.bin``): names and
                contents, in sorted order. Contents, not safetensors headers and sizes: two fine-tunes of one
                architecture have identical headers and sizes. Reading 16 GB (8B) or 140 GB (70B) costs ~10 s to
                a few minutes, so a file's digest is cached by (resolved path, size, mtime in ns) in
                ``$XDG_CACHE_HOME/adaragct/file_sha256.json`` (default ``~/.cache``): it is read once per download,
                not at every save or load. Files under 64 MiB (the tiny LM's ~7 MB) are simply hashed. A run's base
                is fingerprinted once, when the model is built; every save reuses it.
    tensors     sha256 over the built model's state dict (name, dtype, shape, bytes; sorted by name): a tiny
                model random-initialised from its seed, which has no weight files (~7 MB, milliseconds).
    checkpoint  sha256 over a stage checkpoint's trained files (:data:`STAGE_FILES`), or the release's
                ``projector.pt`` (a release base's merged weights are ``model.path`` itself: the ``files`` scheme).

    provenance = {"format": 1, "base": base_fingerprint(model.path, model.builder, llm)}   # model: a ModelSpec
    check_recorded(ckpt_dir, read_provenance(ckpt_dir), provenance, allow=False)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from adaragct.errors import DataError
from adaragct.io import write_json
from adaragct.ledger import (  # noqa: F401 (file_sha256, weight_files, weights_fingerprint: re-exported)
    file_sha256,
    files_digest,
    sha256_file,
    weight_files,
    weights_fingerprint,
)

log = logging.getLogger(__name__)

PROVENANCE = "provenance.json"
FORMAT = 1
FLAG = "allow_base_mismatch"
# what a stage checkpoint of ours contributes when a later stage starts from it (merged or loaded)
STAGE_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "projector.safetensors",
    "findings.safetensors",
)
Fingerprint = dict[str, str]


def tensors_fingerprint(module: torch.nn.Module, source: str) -> Fingerprint:
    """The ``tensors`` fingerprint of a built model's state dict (random-initialised tiny models)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if not isinstance(tensor, torch.Tensor):
            continue
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return {"scheme": "tensors", "source": source, "sha256": digest.hexdigest()}


def base_fingerprint(path: str | Path | None, builder: str, llm: torch.nn.Module) -> Fingerprint:
    """The fingerprint of the base ``llm`` that ``builder`` built from ``path`` (``model.path``; before any LoRA is
    merged into it)."""
    found = weights_fingerprint(path)
    if found is not None:
        return found
    name = builder.rpartition(".")[2]
    return tensors_fingerprint(llm, f"random init of {name} (no weights at {path})")


def phase_fingerprint(ckpt_dir: str | Path) -> Fingerprint:
    """The ``checkpoint`` fingerprint of a stage checkpoint of ours, or of a release directory's projector.pt."""
    ckpt_dir = Path(ckpt_dir).resolve()
    files = [ckpt_dir / n for n in STAGE_FILES if (ckpt_dir / n).is_file()]
    if not files and (ckpt_dir / "projector.pt").is_file():
        files = [ckpt_dir / "projector.pt"]
    return {"scheme": "checkpoint", "source": str(ckpt_dir), "sha256": files_digest(files, ckpt_dir)}


def read_provenance(ckpt_dir: str | Path) -> dict[str, Any] | None:
    """A checkpoint's ``provenance.json``; None when it has none (written before it existed, or the release's)."""
    path = Path(ckpt_dir) / PROVENANCE
    if not path.is_file():
        return None
    from adaragct.io import read_json

    recorded = read_json(path)
    if recorded.get("format") != FORMAT or "base" not in recorded:
        raise DataError(
            path,
            "format",
            f"is {recorded.get('format')!r} with keys {sorted(recorded)} (expected format {FORMAT} with 'base')",
            "the file was edited or comes from another version of adaragct; restore it or retrain",
        )
    return recorded


def write_provenance(directory: str | Path, provenance: Mapping[str, Any]) -> None:
    """Write ``provenance.json`` into a checkpoint directory."""
    write_json(Path(directory) / PROVENANCE, dict(provenance))


_WHAT = {
    "base": "base weights",
    "init_from": "phase.init_from checkpoint (merged as its base)",
    "projector_from": "phase.projector_from checkpoint",
}


def _mismatch(
    path: Path, field: str, recorded: Fingerprint, current: Fingerprint, now: str, fix: str, allow: bool
):
    problem = (
        f"trained on {_WHAT[field]} sha256 {recorded['sha256']} ({recorded['source']}), but {now} "
        f"sha256 {current['sha256']} ({current['source']})"
    )
    if not allow:
        raise DataError(path, field, problem, f"{fix}; or set {FLAG}=true to go on anyway (with a warning)")
    log.warning(
        "%s: %s: %s; going on because %s=true: the result is a model nobody trained",
        path,
        field,
        problem,
        FLAG,
    )


def check_recorded(
    ckpt_dir: str | Path, recorded: Mapping[str, Any], current: Mapping[str, Fingerprint | None], allow: bool
) -> None:
    """Compare a checkpoint's recorded fingerprints with ``current`` (``base``, ``init_from``; None: not known
    yet), before it is loaded."""
    path = Path(ckpt_dir) / PROVENANCE
    fixes = {
        "base": (
            "the base built now is",
            "load it on the weights it was trained on (model.path in its config.yaml; for the demo's tiny LM, "
            "prepare with the demo's settings: `make prepare`), or train it again on these",
        ),
        "init_from": (
            "that checkpoint now is",
            "point phase.init_from in its config.yaml at the checkpoint it was trained from, or train this stage "
            "again (its starting checkpoint was retrained in place)",
        ),
    }
    for field, (now, fix) in fixes.items():
        mine, theirs = recorded.get(field), current.get(field)
        if mine and theirs and mine["sha256"] != theirs["sha256"]:
            _mismatch(path, field, mine, theirs, now, fix, allow)


def warn_unrecorded(ckpt_dir: str | Path, base_source: str | None) -> None:
    """A checkpoint of ours from before ``provenance.json``: loaded, with a warning that nothing was checked."""
    log.warning(
        "%s: no %s (written before checkpoints recorded their base): cannot check that it was trained on the base "
        "built from %s; a checkpoint trained again records it",
        ckpt_dir,
        PROVENANCE,
        base_source,
    )


def start_from(ckpt_dir: str | Path, field: str, base: Fingerprint, allow: bool) -> Fingerprint:
    """Phase rag merging ``phase.init_from``, or phase base loading ``phase.projector_from``: check the starting
    checkpoint was trained on this run's ``base``; return its fingerprint (what this run's checkpoints record)."""
    ckpt_dir = Path(ckpt_dir).resolve()
    recorded = read_provenance(ckpt_dir)
    if recorded is not None:
        if recorded["base"]["sha256"] != base["sha256"]:
            _mismatch(
                ckpt_dir / PROVENANCE,
                "base",
                recorded["base"],
                base,
                f"this run's base ({field}) is",
                f"train on the base {ckpt_dir.name} was trained on (model.path), or train that stage again on "
                "this base (a new base invalidates every stage trained on the old one)",
                allow,
            )
    elif (ckpt_dir / "projector.pt").is_file():  # the release's: a base dir is model.path itself (checked)
        log.info(
            "%s=%s: a release directory records no base fingerprint; nothing to compare", field, ckpt_dir
        )
    else:
        warn_unrecorded(ckpt_dir, base["source"])
    return phase_fingerprint(ckpt_dir)
