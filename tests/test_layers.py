"""Layers (docs/method.md, issue 16): which part of ``adaragct`` may import which other part, and no import circles.

Imports are read from the source with ``ast``, the ones inside functions as much as the ones at the top: a lazy
import hides a dependency from the reader but not from the layering, and two lazy imports still make a circle.
A *part* is the first name under ``adaragct`` (``adaragct.synthetic.writer`` is in ``synthetic``, ``adaragct.ids``
is ``ids``). The rules, one row per part that is restricted (a part may always import itself):

    artifacts, cli, constants,   the foundation (where every artifact goes, command-line helpers, vocabularies,
    errors, ids, io, ledger,     errors, volume ids, file I/O, the ledger of finished steps, how a config node
    specs                        becomes a typed spec): import only each other
    formats                      one module per on-disk format (read, write, schema): the foundation only, so
                                 every other part may read and write files
    data                         datasets, sentences, the datamodule: the foundation and formats/ (not models/,
                                 retrieval/, generation/, nor analysis/, which reads data/)
    synthetic                    the demo cohort's generator: what data/ may import, and data/
    eval                         runs on a predictions file alone: data/, formats/ and the foundation only
    compat                       the old spellings: what it maps onto (apps, eval, models) and the foundation
    apps                         the commands, the top: may import anything, and nothing below imports them

Every other part (models, retrieval, generation, analysis) may import what it needs, but not ``apps``, and no module
may reach itself again through its imports. The one exception: the :data:`FORWARDERS`, the one-line modules that
keep 0.1's and the release's command paths (``python -m adaragct.infer``, ``adaragct.eval.cal_metrics``) working,
import the app or the compat module they forward to, and nothing else (checked below).
"""

from __future__ import annotations

import ast
import graphlib
import shutil
from collections.abc import Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FOUNDATION = frozenset({"artifacts", "cli", "constants", "errors", "ids", "io", "ledger", "specs"})
MAY_IMPORT: dict[str, frozenset[str]] = {
    **dict.fromkeys(FOUNDATION, FOUNDATION),
    "formats": FOUNDATION,
    "data": FOUNDATION | {"formats"},
    "synthetic": FOUNDATION | {"formats", "data"},
    "eval": FOUNDATION | {"formats", "data"},
    "compat": FOUNDATION | {"", "apps", "eval", "models"},  # "": the package root (CONF_DIR)
}
#: the parts only the top imports: ``apps`` (the commands), imported by ``compat`` (the release's commands run them)
TOP = {"apps": frozenset({"apps", "compat"})}
#: old module paths kept as forwarders (their target: an app or a compat module); exempt from the rules above
FORWARDERS = frozenset(
    {
        *(
            f"adaragct.{app}"
            for app in ("prepare", "index", "infer", "evaluate", "analyze", "aggregate", "demo")
        ),
        "adaragct.show",
        "adaragct.train",
        "adaragct.train.__main__",
        "adaragct.train.train_rag",
        "adaragct.inference.inference_rag",
        "adaragct.eval.cal_metrics",
    }
)


def _module_names(src: Path, package: str) -> dict[str, Path]:
    """``adaragct.data.prompt`` -> its file, for every module and package under ``src/package``."""
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The modules of ``known`` that one import statement in ``module`` names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - (node.level - (1 if is_package else 0))]
            base = ".".join([*anchor, base] if base else anchor)
        candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = set()
    for name in candidates:
        while name and name not in known:  # `from pkg.mod import func` -> pkg.mod
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found if isinstance(node, ast.Import) else _most_specific(found)


def _most_specific(found: set[str]) -> set[str]:
    """Drop a package when one of its modules is named too (``from pkg import mod`` imports ``pkg.mod``)."""
    return {name for name in found if not any(other.startswith(name + ".") for other in found)}


def import_graph(src: Path, package: str = "adaragct") -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at module level or inside any function or class."""
    files = _module_names(src, package)
    graph = {}
    for module, path in files.items():
        nodes = ast.walk(ast.parse(path.read_text(), filename=str(path)))
        imports = (n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom))
        is_package = path.name == "__init__.py"
        graph[module] = set().union(*(_imported(module, is_package, n, set(files)) for n in imports))
    return graph


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def layer_violations(
    graph: Mapping[str, set[str]],
    rules: Mapping[str, frozenset[str]] = MAY_IMPORT,
    top: Mapping[str, frozenset[str]] = TOP,
    forwarders: frozenset[str] = FORWARDERS,
) -> list[str]:
    """``"adaragct.data.x imports adaragct.models.y (data may import only ...)"`` per import against the rules, and
    ``"... imports adaragct.apps.y (only ... import apps)"`` per import of a top part from below it."""
    found = []
    for module, imports in sorted(graph.items()):
        if module in forwarders:
            continue
        allowed = rules.get(_part(module))
        for target in sorted(imports):
            if allowed is not None and _part(target) not in allowed | {_part(module)}:
                found.append(f"{module} imports {target} ({_part(module)} may import only {sorted(allowed)})")
            elif _part(target) in top and _part(module) not in top[_part(target)]:
                found.append(
                    f"{module} imports {target} (only {sorted(top[_part(target)])} import {_part(target)})"
                )
    return found


def import_circle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle (``[a, b, a]``), or ``None`` when the modules can be imported in some order."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))
    return None


# --- the package itself ------------------------------------------------------------------------------------------


def test_every_part_imports_only_what_its_layer_allows() -> None:
    graph = import_graph(SRC)
    assert {"adaragct.data.prompt", "adaragct.eval.runner", "adaragct.models.loading"} <= set(graph)
    assert "adaragct.formats.tables" in graph["adaragct.eval.runner"], "the graph must see real imports"
    assert layer_violations(graph) == []


def test_the_old_command_paths_only_forward() -> None:
    """Each forwarder is a docstring, imports from the app or compat module it forwards to (and ``sys``), and the
    ``if __name__ == "__main__":`` call of ``main``: no logic of its own."""
    files = _module_names(SRC, "adaragct")
    assert set(files) >= FORWARDERS
    for name in sorted(FORWARDERS):
        body = ast.parse(files[name].read_text()).body
        assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), f"{name}: docstring"
        for node in body[1:]:
            if isinstance(node, ast.ImportFrom):
                assert node.module.startswith(("adaragct.apps.", "adaragct.compat.")), (
                    f"{name}: {node.module}"
                )
            elif isinstance(node, ast.Import):
                assert [a.name for a in node.names] == ["sys"], name
            else:
                assert isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'", name
                assert len(node.body) == 1 and "main()" in ast.unparse(node.body[0]), name
        assert len(body) <= 5, f"{name} holds more than a forwarder"


def test_every_hydra_app_has_the_one_shape() -> None:
    """``apps/<name>.py`` over ``conf/<name>.yaml``: ``run(cfg)`` and the ``main`` that ``hydra_app`` makes."""
    import importlib
    import inspect

    from adaragct import CONF_DIR

    apps = sorted(p.stem for p in (SRC / "adaragct" / "apps").glob("*.py") if not p.stem.startswith("_"))
    assert apps == ["aggregate", "analyze", "demo", "evaluate", "index", "infer", "prepare", "show", "train"]
    for name in apps:
        module = importlib.import_module(f"adaragct.apps.{name}")
        assert callable(module.main), name
        if name == "show":  # argparse: the report viewer's page, no config
            continue
        assert (CONF_DIR / f"{name}.yaml").is_file(), name
        assert list(inspect.signature(module.run).parameters) == ["cfg"], name
        assert module.main.__doc__.startswith("Console entry point"), f"{name}: main is not hydra_app's"
        calls = [n for n in ast.walk(ast.parse(inspect.getsource(module))) if isinstance(n, ast.Call)]
        prologues = [ast.unparse(c.args[1]) for c in calls if ast.unparse(c.func) == "prologue"]
        assert prologues == [repr(name)], f"{name}: run has no prologue(cfg, {name!r})"


def test_no_module_imports_itself_back() -> None:
    circle = import_circle(import_graph(SRC))
    assert circle is None, "import circle: " + " -> ".join(circle)


# --- the checker finds what it is for ----------------------------------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_reports_bad_imports_and_circles_in_a_small_package(tmp_path) -> None:
    """Function-level, relative and ``from pkg import module`` imports all count."""
    _write(
        tmp_path,
        {
            "adaragct/__init__.py": "",
            "adaragct/constants.py": "X = 1\n",
            "adaragct/data/__init__.py": "",
            "adaragct/data/reader.py": "def read():\n    from adaragct.models import net\n",
            "adaragct/eval/__init__.py": "",
            "adaragct/eval/score.py": "from ..data import reader\nfrom ..retrieval.bank import Bank\n",
            "adaragct/models/__init__.py": "",
            "adaragct/models/net.py": "from adaragct.constants import X\n\n\ndef build():\n    from . import load\n",
            "adaragct/models/load.py": "from adaragct.models.net import build\n",
            "adaragct/retrieval/__init__.py": "",
            "adaragct/retrieval/bank.py": "class Bank: ...\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["adaragct.eval.score"] == {"adaragct.data.reader", "adaragct.retrieval.bank"}
    assert [v.split(" (")[0] for v in layer_violations(graph)] == [
        "adaragct.data.reader imports adaragct.models.net",
        "adaragct.eval.score imports adaragct.retrieval.bank",
    ]
    circle = import_circle(graph)
    assert circle is not None and set(circle) == {"adaragct.models.net", "adaragct.models.load"}


def _planted(tmp_path: Path, module: str, import_line: str) -> list[str]:
    """The violations of a copy of the real tree with ``import_line`` added lazily to ``module`` (``data/prompt.py``)."""
    shutil.copytree(SRC / "adaragct", tmp_path / "adaragct", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "adaragct" / module
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {import_line}\n")
    return layer_violations(import_graph(tmp_path))


def test_a_bad_import_planted_in_a_copy_of_the_package_is_reported(tmp_path) -> None:
    """The real tree with one lazy ``data -> models`` import added: the rule that protects it must fire."""
    assert _planted(tmp_path, "data/prompt.py", "from adaragct.models.vlm import ReportModel") == [
        "adaragct.data.prompt imports adaragct.models.vlm "
        "(data may import only ['artifacts', 'cli', 'constants', 'errors', 'formats', 'ids', 'io', 'ledger', 'specs'])"
    ]


def test_a_formats_module_that_reads_a_dataset_config_is_reported(tmp_path) -> None:
    """formats/ sits on the foundation: a lazy import of data/ (or anything above) from a format module fires."""
    assert _planted(tmp_path, "formats/tables.py", "from adaragct.data.prompt import PromptConfig") == [
        "adaragct.formats.tables imports adaragct.data.prompt "
        "(formats may import only ['artifacts', 'cli', 'constants', 'errors', 'ids', 'io', 'ledger', 'specs'])"
    ]


def test_an_import_of_an_app_from_below_is_reported(tmp_path) -> None:
    """``apps`` is the top: a retriever that reached into the infer app would be reported (compat may)."""
    shutil.copytree(SRC / "adaragct", tmp_path / "adaragct", ignore=shutil.ignore_patterns("__pycache__"))
    runtime = tmp_path / "adaragct" / "retrieval" / "runtime.py"
    runtime.write_text(runtime.read_text() + "\n\ndef _planted():\n    from adaragct.apps.infer import run\n")
    assert layer_violations(import_graph(tmp_path)) == [
        "adaragct.retrieval.runtime imports adaragct.apps.infer (only ['apps', 'compat'] import apps)"
    ]
