"""Two demo runs from scratch write the same bytes (issue 14, item 1), and a rerun skips every step.

The runs are separate processes with other string-hash seeds and other ambient thread counts, as on two
machines: the demo pins its threads, the encoder is batch-invariant, checkpoints list LoRA targets sorted. Every
file is compared with the run's root folder replaced by ``ROOT``; only wall-clock figures (state.json, results.*)
and Lightning's zipped resume state (paths inside a zip, CRCs over them) may differ. A small cohort and a few
training steps keep it to minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

SMALL = [
    'overrides=["experiment=demo","data.generator.n_train_patients=60","data.generator.n_valid_patients=15",'
    '"data.generator.tokenizer_vocab_size=600","data.generator.tiny_lm_steps=30"]',
    'prepare_overrides=["tiny_lm.steps=30","tiny_lm.extra_reports=100"]',
    'train_overrides={align:["trainer.max_steps=4","trainer.val_check_interval=8"],'
    'base:["trainer.max_steps=6","trainer.val_check_interval=6"],'
    'rag:["trainer.max_steps=6","trainer.val_check_interval=6"]}',
    'infer_overrides=["batch_size=8","generation.max_new_tokens=120"]',
    "scoring.bootstrap.num_resamples=200",
]
# files that record a wall-clock throughput, or a path inside a zip, by design
EXEMPT = ("state.json", "timings.json", "last.ckpt")  # step records with wall times; Lightning state


def _demo(root: Path, hash_seed: str, omp_threads: str) -> str:
    env = {
        **os.environ,
        "PYTHONHASHSEED": hash_seed,
        "OMP_NUM_THREADS": omp_threads,
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "adaragct.demo", f"paths.root_dir={root}", *SMALL],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
        for top in ("data", "outputs", ".cache")
        for p in sorted((root / top).rglob("*"))
        if p.is_file() and "/runs/" not in str(p) and "/csv/" not in str(p) and not p.name.endswith(".log")
    }


def _results(root: Path) -> dict:
    results = json.loads((root / "outputs" / "demo" / "results.json").read_text())
    for row in results["rows"]:
        row["predictions"] = row["predictions"] and Path(row["predictions"]).relative_to(root).as_posix()
    return results


def test_two_fresh_demo_runs_write_the_same_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "docs").mkdir(parents=True)  # a checkout: the demo publishes its results page there
    _demo(first, "1", "2")
    _demo(second, "2", "1")
    a, b = _files(first), _files(second)
    assert set(a) == set(b)
    differ = sorted(f for f in a if a[f] != b[f] and not f.endswith(EXEMPT))
    assert differ == []
    predictions = [f for f in a if f.endswith("predictions.jsonl")]
    assert len(predictions) == 8  # 5 model rows + 3 copy baselines
    assert any(f.endswith("tiny_lm/model.safetensors") for f in a)  # the file that differed before the fix
    assert _results(first) == _results(second)
    page = first / "docs" / "results.md"
    assert page.read_bytes() == (first / "outputs" / "demo" / "results.md").read_bytes()
    assert not (second / "docs").exists()  # no docs/ (not a checkout): no page
    rerun = _demo(first, "3", "2")
    assert "optimizer steps" not in rerun and "up to date" in rerun  # every step skipped
    assert _results(first) == _results(second)
