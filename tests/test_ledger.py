"""The ledger of finished steps: skip what is current, redo what changed, and code fingerprints that follow the
imports a stage really makes (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaragct.ledger import Ledger, code_fingerprint, fingerprint, module_files


def _package(root: Path) -> Path:
    """pkg/: stage -> (function-level) pkg.util -> relative .deep; pkg.unrelated imported by nobody."""
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "stage.py").write_text(
        "import os\n\ndef run():\n    from pkg.sub import util\n    return util.F\n"
    )
    (pkg / "sub" / "util.py").write_text("from .deep import G\nF = G\n")
    (pkg / "sub" / "deep.py").write_text("G = 1\n")
    (pkg / "unrelated.py").write_text("H = 1\n")
    return pkg


def test_code_fingerprint_follows_transitive_and_function_level_imports(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    assert set(module_files("pkg.stage", root=pkg)) == {
        "pkg",
        "pkg.stage",
        "pkg.sub",
        "pkg.sub.util",
        "pkg.sub.deep",
    }
    before = code_fingerprint("pkg.stage", root=pkg)
    (pkg / "unrelated.py").write_text("H = 2\n")
    assert code_fingerprint("pkg.stage", root=pkg) == before
    (pkg / "sub" / "deep.py").write_text("G = 2\n")  # two imports away, through a relative import
    assert code_fingerprint("pkg.stage", root=pkg) != before
    with pytest.raises(ModuleNotFoundError, match=r"pkg\.missing"):
        code_fingerprint("pkg.missing", root=pkg)


def test_stage_code_reaches_the_modules_it_runs() -> None:
    """The issue's case: inference predictions depend on formats/embeddings.py and models/ (a hand-kept list missed
    them); training code is not inference's."""
    infer = module_files("adaragct.apps.infer")
    assert {"adaragct.formats.embeddings", "adaragct.models.vlm", "adaragct.generation.adaptive"} <= set(
        infer
    )
    assert {"adaragct.retrieval.retrievers", "adaragct.data.prompt"} <= set(infer)
    assert "adaragct.models.module" not in infer and "adaragct.train" not in infer
    assert "adaragct.eval.runner" in module_files("adaragct.eval.runner")
    assert "adaragct.generation.adaptive" not in module_files("adaragct.eval.runner")


def test_ledger_skips_current_outputs_and_redoes_changed_ones(tmp_path: Path) -> None:
    out, many = tmp_path / "out.txt", [tmp_path / "a.txt", tmp_path / "b"]
    out.write_text("x")
    many[0].write_text("a")
    (many[1]).mkdir()
    (many[1] / "c.txt").write_text("c")
    ledger = Ledger(tmp_path / "state.json")
    inputs = fingerprint("settings", 1)
    assert not ledger.is_current("one", out, inputs)
    ledger.record("one", out, inputs, note="built")
    ledger.record("many", many, inputs)
    again = Ledger(tmp_path / "state.json")
    assert again.is_current("one", out, inputs) and again.is_current("many", many, inputs)
    assert again.entry("one")["note"] == "built" and again.entry("many")["file"] == [str(p) for p in many]
    assert not again.is_current("one", out, fingerprint("settings", 2))
    (many[1] / "c.txt").write_text("changed")
    assert not again.is_current("many", many, inputs)
    assert not Ledger(tmp_path / "state.json", force=True).is_current("one", out, inputs)
