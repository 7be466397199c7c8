"""Config names this project renamed, and how their old spellings are still met.

0.2 renamed the training-phase config group ``stage`` to ``phase`` (``conf/phase/{align,base,rag}.yaml``), so
that "stage" means one thing: a step of the pipeline (prepare, index, train, infer, evaluate). For one release:

* on the command line, ``stage=rag``, ``stage.lora.r=16``, ``+stage.x=...`` and ``~stage.x`` are rewritten to
  their ``phase`` spelling before Hydra reads them, with a warning (:func:`rewrite_overrides`);
* in a config file, a ``stage:`` node (which Hydra would merge as a new key that nothing reads, so the setting
  would be silently lost) is an error naming ``phase`` (:func:`refuse_renamed_keys`); ``override /stage: rag``
  in an experiment file is Hydra's error "Could not override 'stage'", which docs/configs.md explains;
* a checkpoint written before the rename (its ``config.yaml`` has ``stage:``) still loads (:func:`saved_phase`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from adaragct.errors import UsageError

log = logging.getLogger(__name__)

#: old top-level config key -> new one
RENAMED = {"stage": "phase"}
_PREFIXES = ("++", "+", "~")


def rewrite_overrides(overrides: Sequence[str]) -> list[str]:
    """Hydra overrides with every renamed key in its new spelling (``stage=rag`` -> ``phase=rag``,
    ``+stage.lora.r=8`` -> ``+phase.lora.r=8``); one warning per renamed key met. Hydra's own flags
    (``--multirun``, ``-m``, ``hydra.*``) and values pass unchanged."""
    out = []
    for arg in overrides:
        prefix = next((p for p in _PREFIXES if arg.startswith(p)), "")
        body = arg[len(prefix) :]
        key, sep, value = body.partition("=")
        head, dot, rest = key.partition(".")
        if (arg.startswith("-") and not prefix) or head not in RENAMED:
            out.append(arg)
            continue
        new = RENAMED[head]
        log.warning("%s is now spelled %s (the old key is accepted until the next release)", head, new)
        print(
            f"warning: `{head}` is now `{new}`: read {arg!r} as {prefix}{new}{dot}{rest}{sep}{value!r}",
            file=sys.stderr,
        )
        out.append(f"{prefix}{new}{dot}{rest}{sep}{value}")
    return out


def rewrite_argv() -> None:
    """:func:`rewrite_overrides` on ``sys.argv`` in place: call it before ``hydra.main`` parses the command line."""
    sys.argv[1:] = rewrite_overrides(sys.argv[1:])


def refuse_renamed_keys(cfg: Mapping[str, Any], source: str = "the composed config") -> None:
    """A renamed key in a config file (an experiment file of 0.1 that sets ``stage: {lora: ...}``) is an error
    naming the new key: Hydra would merge it as a new node that nothing reads."""
    for old, new in RENAMED.items():
        if old in cfg:
            raise UsageError(
                f"{old} (in {source})",
                f"key `{old}` was renamed `{new}` (conf/{new}/)",
                f"write `{new}:` in your config file, `override /{new}: ...` in its defaults list and "
                f"`{new}=...` on the command line",
            )


def saved_phase(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The training-phase node of a checkpoint's saved config: ``phase``, or ``stage`` in a checkpoint written
    before the rename."""
    for key in ("phase", "stage"):
        if key in cfg:
            return cfg[key]
    raise KeyError("phase")
