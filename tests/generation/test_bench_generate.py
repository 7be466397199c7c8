"""The generation benchmark's harness runs end to end and its baselines make the adaptive run's decisions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import data_overrides

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_generate.py"


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_generate", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_generate_runs_and_baselines_emit_the_adaptive_tokens(
    bench, indexed_demo: Path, tmp_path, capsys
) -> None:
    out = tmp_path / "bench.json"
    bench.main(
        [
            "--model=tiny-random",
            "--batches=1,3",
            "--reports=3",
            "--max-new=90",
            "--repeat=2",
            "--modes=none,adaptive,adaptive-speculative,adaptive-padded,re-prefill,none-dynamic-cache,"
            "adaptive-dynamic-cache",
            f"--json={out}",
            *data_overrides(indexed_demo),
            f"paths.output_dir={tmp_path}",
            "generation.probe=draft",
        ]
    )
    printed = capsys.readouterr().out
    assert "adaptive / none at batch 3" in printed and "adaptive / re-prefill at batch 3" in printed
    assert "ceiling (decoded tokens at none's cost + retrieval)" in printed
    assert "forward calls per output token at batch 3" in printed and "draft tokens accepted" in printed
    rows = {(r["mode"], r["batch"]): r for r in json.loads(out.read_text())["rows"]}
    modes = (
        "none",
        "adaptive",
        "adaptive-speculative",
        "adaptive-padded",
        "re-prefill",
        "none-dynamic-cache",
        "adaptive-dynamic-cache",
    )
    assert set(rows) == {(m, b) for m in modes for b in (1, 3)}
    for batch in (1, 3):
        assert rows[("adaptive", batch)]["retrievals"] >= 3  # the scheduled [RAG] makes every row ask
        assert rows[("adaptive", batch)]["probe_tokens"] > 0 and rows[("none", batch)]["retrievals"] == 0
        # fp32 on the CPU: padded injections, the re-prefill baseline and transformers' own cache decide exactly
        # as the loop on its in-place cache
        for variant in modes[2:]:
            assert rows[(variant, batch)]["same_tokens"] is True, variant
        speculative, adaptive = rows[("adaptive-speculative", batch)], rows[("adaptive", batch)]
        # (a random model's rewrite rarely repeats its draft: the savings are measured on the trained model)
        assert speculative["forward_calls_per_token"] <= adaptive["forward_calls_per_token"]
        assert 0 <= speculative["draft_acceptance"] <= 1 and adaptive["draft_acceptance"] is None


def test_continuous_batching_in_the_benchmark_does_the_same_work(bench, indexed_demo: Path, tmp_path, capsys):
    """``--continuous`` streams 5 reports through 2 slots; every mode decodes, probes and retrieves exactly what
    fixed batches do (only the schedule differs)."""
    figures = {}
    for flag in ("", "--continuous"):
        out = tmp_path / f"bench{flag}.json"
        args = [
            "--model=tiny-random",
            "--batches=2",
            "--reports=5",
            "--max-new=90",
            "--modes=none,adaptive",
            "--repeat=1",
        ]
        bench.main([*args, *([flag] if flag else []), f"--json={out}", *data_overrides(indexed_demo)])
        rows = json.loads(out.read_text())["rows"]
        figures[flag] = {r["mode"]: (r["out_tokens"], r["probe_tokens"], r["retrievals"]) for r in rows}
    assert "continuous batching" in capsys.readouterr().out
    assert figures[""] == figures["--continuous"] and figures[""]["adaptive"][2] >= 5
    with pytest.raises(SystemExit):  # the re-prefill baseline has no streaming form
        bench.main(["--continuous", "--modes=none,adaptive,re-prefill", *data_overrides(indexed_demo)])
