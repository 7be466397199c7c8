"""Every ``_target_`` node of every composed config binds to its target's signature, and every composed config builds
the typed specs (torchtune's habit: a misspelt key fails here, on a laptop, not at step 0 on a cluster).

Compositions: every primary config alone, and with each option of each group its defaults list names (the
combinations of tests/test_configs.py, in every primary that takes the group, not only its host; an option that
overrides a group the primary lacks is left out). For each, every
node with a ``_target_`` (in the config and in ``hydra.callbacks``, where the ablation grids put ours) has its keys
bound with ``inspect.signature(target).bind_partial(*_args_, **keys)``: Hydra's reserved keys are not arguments,
``_partial_`` nodes are completed later (so are the others: the apps add runtime objects), and the nodes under a
``_recursive_: false`` node are handed to its target as data, not instantiated. Keys a caller reads off the node
before the call (``retrieval.name``: :data:`adaragct.retrieval.retrievers.CONFIG_ONLY_KEYS`) are left out. The
model builder node is bound by ``ModelSpec`` itself (it is looked up in an allowlist, not instantiated).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from adaragct.data.specs import ContextMix, LoaderSpec
from adaragct.models.specs import LoraSpec, ModelSpec, PhaseSpec
from adaragct.retrieval.retrievers import CONFIG_ONLY_KEYS
from tests.conftest import CONF_DIR
from tests.test_configs import PLUGIN_GROUPS, PRIMARY, _compose, _group_options

RESERVED = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
SPECS = (ModelSpec, PhaseSpec, LoraSpec, LoaderSpec, ContextMix)
# config node -> the spec built from it (where the composed config has the node)
TOP_SPECS = {"model": ModelSpec, "phase": PhaseSpec, "datamodule": LoaderSpec}


def _groups(primary: str) -> list[str]:
    """The groups ``primary``'s defaults list names."""
    text = (CONF_DIR / f"{primary}.yaml").read_text()
    return re.findall(r"^\s*- ([a-z_]+):", text, flags=re.M)


def _overridden(group: str, option: str) -> set[str]:
    """The groups an option's defaults list overrides (``override /phase: rag``): a primary without them cannot
    compose it (Hydra: "Could not override 'phase'"; a paper experiment is not for the prepare stage)."""
    return set(re.findall(r"override /([a-z_]+):", (CONF_DIR / group / f"{option}.yaml").read_text()))


def _compositions() -> list[tuple[str, str | None]]:
    options = _group_options()
    found = []
    for primary in PRIMARY:
        found.append((primary, None))
        groups = set(_groups(primary)) - {"paths", "hydra"}
        found += [
            (primary, f"{g}={o}")
            for g, o in options
            if g in groups and _overridden(g, o) <= set(_groups(primary))
        ]
    return found


def target_nodes(node: Any, path: tuple = ()) -> list[tuple[str, dict]]:
    """``(dotted path, node)`` of every node with a ``_target_`` under ``node``, except under ``_recursive_: false``."""
    found = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((".".join(map(str, path)), node))
            if node.get("_recursive_", True) is False:
                return found
        for key, value in node.items():
            if key not in RESERVED:
                found += target_nodes(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += target_nodes(value, (*path, i))
    return found


def bind(path: str, node: dict) -> None:
    """Bind ``node``'s keys to its target's signature (a TypeError names the key that does not fit)."""
    target = get_object(node["_target_"])
    caller = CONFIG_ONLY_KEYS if path == "retrieval" else ()
    kwargs = {k: v for k, v in node.items() if k not in RESERVED and k not in caller}
    try:
        inspect.signature(target).bind_partial(*node.get("_args_", []), **kwargs)
    except TypeError as error:
        raise AssertionError(f"{path}: {node['_target_']} does not take {sorted(kwargs)}: {error}") from None


@pytest.mark.parametrize(("primary", "override"), _compositions())
def test_every_target_binds_and_every_spec_builds(primary: str, override: str | None, tmp_path: Path) -> None:
    group = override.partition("=")[0] if override else None
    if group in PLUGIN_GROUPS:
        pytest.importorskip(PLUGIN_GROUPS[group], reason="install the sweep extra: pip install -e '.[sweep]'")
    cfg, hydra_cfg = _compose(primary, [override] if override else [], tmp_path)
    container = OmegaConf.to_container(cfg)
    callbacks = (
        OmegaConf.to_container(hydra_cfg.callbacks, resolve=True) if hydra_cfg.get("callbacks") else {}
    )
    nodes = target_nodes(container) + target_nodes(callbacks, ("hydra", "callbacks"))
    for path, node in nodes:
        if path == "model.builder":  # looked up in the builders' allowlist and bound by ModelSpec below
            continue
        bind(path, node)
    for key, spec in TOP_SPECS.items():
        if key in _groups(primary):  # (debug=default also sets datamodule.* in apps that have no datamodule)
            spec.from_config(cfg[key], f"{primary} {override or ''}")


def test_the_checker_finds_a_misspelt_key() -> None:
    """The walk sees nested and listed nodes, skips what ``_recursive_: false`` hands over, and a misspelt key
    fails with its path."""
    cfg = {
        "phase": {
            "optimizer": {
                "_target_": "torch.optim.AdamW",
                "_partial_": True,
                "lr": 1e-3,
                "wieght_decay": 0.1,
            },
        },
        "list": [{"_target_": "collections.OrderedDict"}],
        "outer": {"_target_": "builtins.dict", "_recursive_": False, "inner": {"_target_": "builtins.len"}},
    }
    paths = [p for p, _ in target_nodes(cfg)]
    assert paths == ["phase.optimizer", "list.0", "outer"]
    with pytest.raises(
        AssertionError, match=r"phase.optimizer: torch.optim.AdamW does not take .*wieght_decay"
    ):
        bind(*target_nodes(cfg)[0])
    bind(
        "phase.optimizer",
        {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.1},
    )


def test_spec_defaults_are_only_none() -> None:
    """The YAML is the one home of every value (adaragct.specs): a spec field is required, or optional with the
    default None ("not set"), never a number, path or switch restated in code."""
    for spec in SPECS:
        for field in dataclasses.fields(spec):
            assert field.default_factory is dataclasses.MISSING, f"{spec.__name__}.{field.name}"
            assert field.default in (dataclasses.MISSING, None), (
                f"{spec.__name__}.{field.name} defaults to {field.default!r}: state the value in conf/ instead"
            )


def test_every_spec_field_has_a_docstring() -> None:
    for spec in SPECS:
        tree = ast.parse(inspect.getsource(spec))
        body = tree.body[0].body
        documented = {
            stmt.target.id
            for stmt, after in itertools.pairwise(body)
            if isinstance(stmt, ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        }
        fields = {f.name for f in dataclasses.fields(spec)}
        assert fields <= documented, f"{spec.__name__}: no docstring for {sorted(fields - documented)}"


def test_a_spec_names_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    cfg, _ = _compose("train", ["phase=rag"], tmp_path)
    node = {**OmegaConf.to_container(cfg.datamodule), "batch_sise": 4}
    with pytest.raises(
        ValueError, match=r"^conf/datamodule: datamodule.batch_sise: unknown key \(fix: check"
    ):
        LoaderSpec.from_config(node)
    node = OmegaConf.to_container(cfg.phase)
    del node["rag_loss_weight"]
    with pytest.raises(ValueError, match=r"^x/config.yaml: phase.rag_loss_weight: missing \(fix: set it"):
        PhaseSpec.from_config(node, "x/config.yaml")
    node = OmegaConf.to_container(cfg.phase)
    node["contexts"]["oracle_ratio"] = 1.5
    with pytest.raises(
        ValueError, match=r"^conf/phase: phase.contexts.oracle_ratio=1.5: must be in \[0, 1\]"
    ):
        PhaseSpec.from_config(node)
    assert PhaseSpec.from_config(cfg.phase).config() == OmegaConf.to_container(
        cfg.phase
    )  # what hparams record
