"""Typed specs: how a config node that travels deep becomes a checked dataclass, once, at the app boundary.

``ModelSpec`` (``conf/model``) and ``PhaseSpec`` (``conf/phase``) live in :mod:`adaragct.models.specs`,
``LoaderSpec`` (``conf/datamodule``) and ``ContextMix`` (``conf/phase: contexts``) in :mod:`adaragct.data.specs`.
Each is a frozen dataclass with a docstring per field, checked in ``__post_init__``, and built from its config
node by ``from_config`` (an app: ``PhaseSpec.from_config(cfg.phase)``; a checkpoint's ``config.yaml``: the same,
with ``where`` naming that file). Code below the app takes the spec, never the dict.

The rule on defaults: **the YAML is their only home.** A spec field has no default (it is required: every option
of its config group states it) unless a config may leave it out (an option of the group does, or a checkpoint
written before the key existed); such a field's default is ``None``, which means "not set" (the feature off, or
"all of them"), never a value. So no number, path or switch is restated in code; ``tests/test_config_targets.py``
checks that every spec default is ``None`` and that every composed config builds every spec.

Errors are one line naming the file (or ``conf/<group>``), the key and the fix: a misspelt key is "unknown"
with the keys the spec knows, a missing one says which config group sets it.

The checkpoint's ``config.yaml`` and Lightning's hparams keep the config's own shape: a spec built by
``from_config`` keeps the plain dict it was read from (:meth:`Spec.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from adaragct.errors import DataError, UsageError


class SpecError(UsageError):
    """A spec field with a value that cannot work: ``key`` is the config key (``model.dtype``)."""

    def __init__(self, key: str, value: Any, problem: str, fix: str) -> None:
        self.key = key
        super().__init__(f"{key}={value!r}", problem, fix)


def plain(node: Any) -> Any:
    """A config node (OmegaConf or not) as plain dicts and lists, interpolations resolved."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf comes with hydra, a dependency
        return node
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [plain(v) for v in node]
    return node


class Spec:
    """Base of the specs: ``from_config`` (checks keys, then the dataclass checks values) and ``config``.

    Subclasses are ``@dataclasses.dataclass(frozen=True, kw_only=True)`` and set ``KEY`` (the config key the node
    sits under: ``model``, ``phase``, ``datamodule``) and may set ``RENAMED`` (``{old key: message naming the new
    one}``) for keys a config of an older release may still hold.
    """

    KEY: ClassVar[str]
    RENAMED: ClassVar[Mapping[str, str]] = {}
    DERIVED: ClassVar[tuple[str, ...]] = ()  # fields made by fields_from, not config keys

    @classmethod
    def where_default(cls) -> str:
        return f"conf/{cls.group()}"

    @classmethod
    def group(cls) -> str:
        """The config group the node comes from (``phase`` for ``phase.contexts``)."""
        return cls.KEY.split(".")[0]

    @classmethod
    def field_names(cls) -> list[str]:
        """The config keys the node may hold."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in cls.DERIVED]  # type: ignore[arg-type]

    @classmethod
    def required(cls) -> list[str]:
        """The config keys the node must hold (fields without a default)."""
        return [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in cls.DERIVED
        ]

    @classmethod
    def check_keys(cls, node: Mapping[str, Any], where: str | Path) -> None:
        """Unknown and missing keys of ``node`` as a DataError naming the key and the fix."""
        known = cls.field_names()
        for key in node:
            if key not in known:
                fix = cls.RENAMED.get(key) or f"check the spelling; {cls.KEY} takes {', '.join(known)}"
                raise DataError(where, f"{cls.KEY}.{key}", "unknown key", fix)
        for key in cls.required():
            if key not in node:
                raise DataError(
                    where,
                    f"{cls.KEY}.{key}",
                    "missing",
                    f"set it (every option of conf/{cls.group()}/ states it; the YAML is where its value lives)",
                )

    @classmethod
    def fields_from(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        """The constructor's keyword arguments from the plain, key-checked node (nested specs built here)."""
        return node

    @classmethod
    def from_config(cls, node: Any, where: str | Path | None = None) -> Self:
        """The spec of a config node (a DictConfig or a mapping); errors name ``where`` (default ``conf/<KEY>``).

        A spec passes through unchanged, so a function may take either a spec or a config node."""
        if isinstance(node, cls):
            return node
        where = where or cls.where_default()
        if not isinstance(node, Mapping) and not hasattr(node, "items"):
            raise DataError(where, cls.KEY, f"is {type(node).__name__}, not a mapping", "give it as a node")
        config = plain(node)
        raw = cls.prepare(dict(config), where)
        cls.check_keys(raw, where)
        try:
            spec = cls(**cls.fields_from(raw, where))
        except SpecError as error:  # the value's check, now naming the file it came from
            raise DataError(where, error.option, error.problem, error.fix) from None
        object.__setattr__(spec, "_config", config)
        return spec

    @classmethod
    def prepare(cls, node: dict[str, Any], where: str | Path) -> dict[str, Any]:
        """Hook for an older form of the node (e.g. a string where a node is now expected); default: as is."""
        return node

    def config(self) -> dict[str, Any]:
        """The plain config dict this spec was read from (what checkpoints and hparams record), or, for a spec
        built in code, its fields as a dict."""
        found = getattr(self, "_config", None)
        return dict(found) if found is not None else dataclasses.asdict(self)  # type: ignore[call-overload]


def whole(value: Any, least: int = 0) -> bool:
    """``value`` is an int (not a bool) >= ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def number(value: Any) -> bool:
    """``value`` is an int or a float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(ok: bool, key: str, value: Any, problem: str, fix: str) -> None:
    """Raise a :class:`SpecError` for ``key`` unless ``ok``."""
    if not ok:
        raise SpecError(key, value, problem, fix)


def check_flags(spec: Any, prefix: str, *keys: str) -> None:
    """Each of ``keys`` of ``spec`` is true or false (``prefix.key`` names it in the error)."""
    for key in keys:
        value = getattr(spec, key)
        check(
            isinstance(value, bool), f"{prefix}.{key}", value, "must be true or false", "write true or false"
        )


def check_counts(spec: Any, prefix: str, keys: tuple[str, ...], fix: str) -> None:
    """Each of ``keys`` of ``spec`` is a whole number >= 1."""
    for key in keys:
        value = getattr(spec, key)
        check(whole(value, 1), f"{prefix}.{key}", value, "must be a whole number >= 1", fix)


def check_name(key: str, value: Any, example: str) -> None:
    """``value`` is a non-empty name."""
    check(isinstance(value, str) and bool(value), key, value, "must be a name", f"e.g. {example}")
