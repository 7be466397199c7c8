"""Install (issue 23): the torch-free constraints agree with the tested set, the extras hold one FAISS each, the
torch floor is the same in the code and in pyproject.toml, the imported FAISS build is reported truthfully, and the
Makefile's torch-index probe answers quickly. Fast: no pip, no network."""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
import tomllib
from pathlib import Path

import pytest

import adaragct
from adaragct.retrieval import faiss_build as fb

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(text: str) -> dict[str, str]:
    lines = (ln.strip() for ln in text.splitlines())
    return dict(ln.split("==", 1) for ln in lines if ln and not ln.startswith("#"))


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


# ------------------------------------------------------------------------------------------ constraints files
def test_constraints_notorch_is_the_tested_set_without_the_torch_stack() -> None:
    tool = _tool("constraints_notorch")
    source = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    on_disk = (ROOT / "constraints-notorch.txt").read_text(encoding="utf-8")
    assert on_disk == tool.render(source), (
        "constraints-notorch.txt is stale: run `make constraints-notorch.txt`"
    )
    tested, notorch = _pins(source), _pins(on_disk)
    dropped = set(tested) - set(notorch)
    assert "torch" in dropped
    assert all(tool.is_torch_stack(name) for name in dropped)
    assert not [n for n in notorch if n == "torch" or n == "triton" or n.startswith(("nvidia-", "cuda-"))]
    assert all(notorch[n] == tested[n] for n in notorch)


@pytest.mark.parametrize(
    ("line", "dropped"),
    [
        ("torch==2.13.0", True),
        ("triton==3.5.0", True),
        ("nvidia-cudnn-cu13==9.1", True),
        ("cuda-bindings==13.0.1", True),
        ("torchmetrics==1.9.0", False),
        ("torch-geometric==2.8.0", False),
        ("faiss-gpu==1.15.1", False),
    ],
)
def test_only_torch_and_its_cuda_wheels_are_dropped(line: str, dropped: bool) -> None:
    assert _tool("constraints_notorch").is_torch_stack(line) is dropped


def test_every_dependency_and_extra_is_pinned_by_the_tested_set() -> None:
    tested = {n.lower() for n in _pins((ROOT / "constraints.txt").read_text(encoding="utf-8"))}
    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    wanted |= {_name(r) for reqs in extras.values() for r in reqs}
    assert not wanted - tested, "pin these in constraints.txt (and regenerate constraints-notorch.txt)"


# --------------------------------------------------------------------------------------------------- extras
def test_faiss_is_one_extra_away_and_never_two() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert not [r for r in project["dependencies"] if _name(r).startswith("faiss")]
    assert [_name(r) for r in extras["cpu"]] == ["faiss-cpu"]
    assert [_name(r) for r in extras["gpu"]] == ["faiss-gpu"]
    for name, reqs in extras.items():
        assert len([r for r in reqs if _name(r).startswith("faiss")]) <= 1, name


def test_extras_say_what_they_are_for_and_the_makefile_asks_for_existing_ones() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"cpu", "gpu", "quant", "deepspeed", "judge", "sweep", "slurm", "dev"} <= set(extras)
    assert "pycocoevalcap" in {_name(r) for r in PYPROJECT["project"]["dependencies"]}  # METEOR's jar
    assert "bitsandbytes" in {_name(r) for r in extras["quant"]}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    asked = re.search(r"^EXTRAS \?= (.+)$", makefile, re.M).group(1).split(",")
    assert set(asked) <= set(extras)
    assert "gpu" not in asked or "cpu" not in asked


def test_torch_floor_is_pyprojects() -> None:
    torch_req = next(r for r in PYPROJECT["project"]["dependencies"] if _name(r) == "torch")
    floor = re.search(r">=\s*([\d.]+)", torch_req).group(1)
    assert tuple(int(n) for n in floor.split(".")) == adaragct.TORCH_FLOOR


@pytest.mark.parametrize(
    ("version", "warns"),
    [
        ("2.13.0", False),
        ("2.11.0+cu126", False),
        ("2.11.0a0+git1", False),
        ("2.10.1", True),
        ("2.6.0+cu124", True),
    ],
)
def test_an_older_torch_is_named_with_the_fix(version: str, warns: bool) -> None:
    if warns:
        with pytest.warns(
            RuntimeWarning, match=rf"needs torch>=2\.11, but torch {re.escape(version)} is installed"
        ):
            assert adaragct.check_torch_floor(version) is not None
    else:
        assert adaragct.check_torch_floor(version) is None


# ---------------------------------------------------------------------------------------------- faiss build
def test_the_imported_faiss_build_is_reported() -> None:
    faiss = pytest.importorskip("faiss")
    build = fb.faiss_build(faiss)
    assert build.gpu_build == hasattr(faiss, "StandardGpuResources")
    assert build.kind == ("GPU" if build.gpu_build else "CPU")
    assert build.version == faiss.__version__
    dists = [d.split("==")[0] for d in build.distributions]
    assert len(dists) == 1, f"one FAISS distribution, got {dists}"
    assert dists[0] == ("faiss-cpu" if not build.gpu_build else dists[0])
    print(build.describe())  # pytest -s shows which build this machine has


def test_a_cpu_faiss_on_a_cuda_machine_is_named_with_the_swap() -> None:
    faiss = pytest.importorskip("faiss")
    build = fb.faiss_build(faiss)
    if build.gpu_build:
        pytest.skip("a GPU build of FAISS is installed")
    assert fb.mismatch(build, cuda=False) is None
    message = fb.mismatch(build, cuda=True)
    assert "CPU build" in message and "pip install faiss-gpu" in message
    both = fb.FaissBuild(build.version, False, 0, ("faiss-cpu==1.15.1", "faiss-gpu==1.15.1"))
    assert "both faiss-cpu and faiss-gpu" in fb.mismatch(both, cuda=False)


def test_the_faiss_report_runs(capsys) -> None:
    pytest.importorskip("faiss")
    code = fb.main()
    out = capsys.readouterr().out
    assert re.search(r"faiss [\d.]+: (CPU|GPU) build", out)
    assert code == (0 if fb.mismatch(fb.faiss_build(), fb.cuda_available()) is None else 1)


# ------------------------------------------------------------------------------------- the torch-index probe
def test_an_unreachable_torch_index_is_left_out_with_one_line(capsys) -> None:
    probe = _tool("index_reachable")
    with socket.socket() as s:  # a port nobody listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert probe.main(["probe", f"http://127.0.0.1:{port}/simple"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "is not reachable" in err


def test_an_empty_or_local_torch_index(capsys, tmp_path) -> None:
    probe = _tool("index_reachable")
    probe.main(["probe", ""])
    assert capsys.readouterr().out == ""
    probe.main(["probe", tmp_path.as_uri()])
    assert capsys.readouterr().out.strip() == f"--extra-index-url {tmp_path.as_uri()}"


def test_requires_python_is_the_pythons_ci_tests() -> None:
    """pyproject's Python range admits exactly the versions CI installs and tests: 3.11 (`make test`, the Makefile's
    PYTHON_BOOT) and 3.12 (`make test-py312`)."""
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(PYPROJECT["project"]["requires-python"])
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "command -v python3.11" in makefile
        and "python3.12" in makefile
        and "make test-py312" in (ROOT / ".ci" / "run").read_text()
    )
    assert [v for v in ("3.10", "3.11", "3.12", "3.13") if allowed.contains(f"{v}.0")] == ["3.11", "3.12"]
    assert allowed.contains(".".join(map(str, sys.version_info[:3])))
