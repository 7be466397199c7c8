"""benchmarks/run_all.py: runs each script as a subprocess, keeps its ratio/goal lines, reports failures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", PROJECT_ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_key_lines_status_and_summary(tmp_path: Path) -> None:
    run_all = _run_all()
    ok, bad = tmp_path / "bench_ok.py", tmp_path / "bench_bad.py"
    ok.write_text(
        "print('step  seconds  ratio')\nprint('ours vs baseline: 3.5x (goal >= 2)')\nprint('noise 12')\n"
    )
    bad.write_text("import sys\nprint('ratio numpy / faiss 0.9')\nsys.exit(3)\n")
    good, failed = run_all.run_benchmark(ok, timeout=60), run_all.run_benchmark(bad, timeout=60)
    assert (good.status, good.key_lines) == (0, ["ours vs baseline: 3.5x (goal >= 2)"])
    assert (failed.status, failed.key_lines) == (3, ["ratio numpy / faiss 0.9"])
    table = run_all.summary_table([good, failed])
    assert "bench_ok" in table and "bench_bad" in table and table.splitlines()[3].split()[2] == "3"


def test_a_hanging_benchmark_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "bench_hang.py"
    script.write_text("import time\ntime.sleep(60)\n")
    result = _run_all().run_benchmark(script, timeout=1)
    assert result.status != 0 and result.seconds < 30
    assert result.key_lines == ["killed after 1 s (--timeout)"]
