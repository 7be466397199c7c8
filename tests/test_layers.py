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

Every other part (models, retrieval, generation, analysis, the stage apps) may import what it needs, but no module
may reach itself again through its imports.
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
}


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
    graph: Mapping[str, set[str]], rules: Mapping[str, frozenset[str]] = MAY_IMPORT
) -> list[str]:
    """``"adaragct.data.x imports adaragct.models.y (data may import only ...)"`` per import against the rules."""
    found = []
    for module, imports in sorted(graph.items()):
        allowed = rules.get(_part(module))
        for target in sorted(imports):
            if allowed is not None and _part(target) not in allowed | {_part(module)}:
                found.append(f"{module} imports {target} ({_part(module)} may import only {sorted(allowed)})")
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
