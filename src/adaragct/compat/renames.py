"""Config names this project renamed, and how their old spellings are still met.

0.2 renamed the training-phase config group ``stage`` to ``phase`` (``conf/phase/{align,base,rag}.yaml``), so
that "stage" means one thing: a step of the pipeline (prepare, index, train, infer, evaluate). It also moved the
scoring settings into one group, ``conf/scoring`` (labeler, METEOR, bootstrap, judge, ...), which ``evaluate``,
``infer`` and the demo compose as their ``scoring`` node (:data:`RENAMED_IN_APP`). For one release:

* on the command line, ``stage=rag``, ``stage.lora.r=16``, ``+stage.x=...`` and ``~stage.x`` are rewritten to
  their ``phase`` spelling before Hydra reads them, with a warning (:func:`rewrite_overrides`); so are an app's
  own moved keys (``evaluate.enabled=false`` on infer -> ``score=false``, ``labeler.name=radbert`` on evaluate ->
  ``scoring.labeler.name=radbert``);
* in a config file, a ``stage:`` node (which Hydra would merge as a new key that nothing reads, so the setting
  would be silently lost) is an error naming ``phase`` (:func:`refuse_renamed_keys`), and so is a moved node of
  an app (an ``evaluate:`` node in an infer experiment file); ``override /stage: rag`` in an experiment file is
  Hydra's error "Could not override 'stage'", which docs/configs.md explains;
* a checkpoint written before the rename (its ``config.yaml`` has ``stage:``) still loads (:func:`saved_phase`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from adaragct.errors import UsageError

log = logging.getLogger(__name__)

#: old top-level config key -> new one, in every app
RENAMED = {"stage": "phase"}
# evaluate.yaml's top-level scoring settings of 0.1, now conf/scoring/default.yaml's keys
_SCORING_KEYS = (
    "labeler",
    "bootstrap",
    "judge",
    "meteor",
    "meteor_timeout_s",
    "compute_clinical",
    "protocol",
    "label_references",
    "allow_missing",
    "progress",
)
#: per app (its config name): old key (a node or a value, dotted) -> new key
RENAMED_IN_APP: dict[str, dict[str, str]] = {
    "evaluate": {key: f"scoring.{key}" for key in _SCORING_KEYS},
    "infer": {
        "evaluate.enabled": "score",
        "evaluate.metrics_json": "metrics_json",
        "evaluate.meteor": "scoring.meteor",
        "evaluate.bootstrap": "scoring.bootstrap.num_resamples",
    },
    "demo": {"bootstrap": "scoring.bootstrap"},
}
_PREFIXES = ("++", "+", "~")


def _renames(app: str | None) -> dict[str, str]:
    """Old key -> new key for ``app`` (None: the renames of every app only)."""
    return {**RENAMED, **RENAMED_IN_APP.get(app or "", {})}


def _new_key(key: str, renames: Mapping[str, str]) -> str | None:
    """``key`` in its new spelling (the longest renamed key it is or lies under), or None when not renamed."""
    for old in sorted(renames, key=len, reverse=True):
        if key == old or key.startswith(old + "."):
            return renames[old] + key[len(old) :]
    return None


def _refuse_split_node(arg: str, key: str, renames: Mapping[str, str]) -> None:
    """A whole-node override of a node whose keys moved apart (``evaluate={...}`` on infer) cannot be rewritten."""
    moved = {old: new for old, new in renames.items() if old.startswith(key + ".")}
    if moved:
        raise UsageError(
            arg,
            f"the node `{key}` was split up: " + ", ".join(f"{old} -> {new}" for old, new in moved.items()),
            "set each key under its new name",
        )


def rewrite_overrides(overrides: Sequence[str], app: str | None = None) -> list[str]:
    """Hydra overrides with every renamed key in its new spelling (``stage=rag`` -> ``phase=rag``,
    ``+stage.lora.r=8`` -> ``+phase.lora.r=8``; with ``app``, also that app's moved keys, e.g. on infer
    ``evaluate.enabled=false`` -> ``score=false``); one warning per renamed key met. Hydra's own flags
    (``--multirun``, ``-m``, ``hydra.*``) and values pass unchanged."""
    renames, out = _renames(app), []
    for arg in overrides:
        prefix = next((p for p in _PREFIXES if arg.startswith(p)), "")
        key, sep, value = arg[len(prefix) :].partition("=")
        new = None if arg.startswith("-") and not prefix else _new_key(key, renames)
        if new is None:
            if not arg.startswith("-") or prefix:
                _refuse_split_node(arg, key, renames)
            out.append(arg)
            continue
        head = key.split(".")[0] if key.split(".")[0] in RENAMED else key
        log.warning("%s is now spelled %s (the old key is accepted until the next release)", key, new)
        print(
            f"warning: `{head}` is now `{_new_key(head, renames)}`: read {arg!r} as {prefix}{new}{sep}{value!r}",
            file=sys.stderr,
        )
        out.append(f"{prefix}{new}{sep}{value}")
    return out


def rewrite_argv(app: str | None = None) -> None:
    """:func:`rewrite_overrides` on ``sys.argv`` in place: call it before ``hydra.main`` parses the command line."""
    sys.argv[1:] = rewrite_overrides(sys.argv[1:], app)


def refuse_renamed_keys(
    cfg: Mapping[str, Any], source: str = "the composed config", app: str | None = None
) -> None:
    """A renamed key in a config file (an experiment file of 0.1 that sets ``stage: {lora: ...}``, or on infer an
    ``evaluate:`` node) is an error naming the new key: Hydra would merge it as a new node that nothing reads."""
    for old, new in RENAMED.items():
        if old in cfg:
            raise UsageError(
                f"{old} (in {source})",
                f"key `{old}` was renamed `{new}` (conf/{new}/)",
                f"write `{new}:` in your config file, `override /{new}: ...` in its defaults list and "
                f"`{new}=...` on the command line",
            )
    moved = RENAMED_IN_APP.get(app or "", {})
    for head in dict.fromkeys(old.split(".")[0] for old in moved):
        if head in cfg:
            keys = {old: new for old, new in moved.items() if old == head or old.startswith(head + ".")}
            raise UsageError(
                f"{head} (in {source})",
                f"the {app} app's `{head}` moved: "
                + ", ".join(f"{old} -> {new}" for old, new in keys.items()),
                "write the new keys in your config file (conf/scoring/ holds the scoring settings)",
            )


def saved_phase(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The training-phase node of a checkpoint's saved config: ``phase``, or ``stage`` in a checkpoint written
    before the rename."""
    for key in ("phase", "stage"):
        if key in cfg:
            return cfg[key]
    raise KeyError("phase")
