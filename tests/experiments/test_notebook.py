"""notebooks/results_analysis.ipynb runs top to bottom (nbclient, the venv's python3 kernel) on a grid table and
a predictions file written here, and shows what it promises: the table, the plots, the organ counts, traces."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tests.conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "results_analysis.ipynb"


def _kernel_name() -> str:
    """The venv's python3 kernelspec; installed into the venv (offline, by ipykernel) when missing."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name="python3")
    return "python3"


def _predictions(path: Path) -> None:
    """Two reports in the real record format (prediction_record): one with two retrievals, one with none."""
    from adaragct.generation import GenerationSettings
    from adaragct.generation.adaptive import RowOutput
    from adaragct.generation.predictions import PredictionWriter, prediction_record

    hit = {
        "step": 5,
        "action": "retrieved",
        "probe_text": "A 6 mm nodule in the right lung.",
        "organ": "lung",
        "sentence_ids": [3, 9],
        "scores": [0.91, 0.84],
        "context": ["A 5 mm nodule in the right upper lobe.", "Nodule in the right lower lobe."],
    }
    heart = {
        **hit,
        "step": 30,
        "probe_text": "The heart is enlarged.",
        "organ": "heart",
        "context": ["Cardiomegaly is present."],
        "scores": [0.88],
    }
    rows = [
        RowOutput(
            "valid_1_a_1",
            [1] * 40,
            "A 6 mm nodule in the right lung. The heart is enlarged.",
            2,
            [hit, heart, {"step": 35, "action": "cancelled", "probe_text": "The"}],
            True,
        ),
        RowOutput("valid_2_a_1", [1] * 20, "The lungs are clear.", 0, [], True),
    ]
    with PredictionWriter(path) as writer:
        for row in rows:
            writer.write(prediction_record(row, "reference", GenerationSettings(top_k=3), "adaptive"))


def _grid_csv(path: Path) -> None:
    rows = [
        {
            "generation.top_k": k,
            "retrieval": r,
            "clin_f1": f,
            "clin_f1_micro": f,
            "clin_f1_macro": f / 2,
            "bleu_4": 0.1,
            "rouge_l": 0.3,
            "cider": 0.2,
            "retrievals_per_report": rpr,
            "num_predictions": 2,
            "tokens_per_s": None,
            "status": "done",
            "cell": f"generation.top_k={k},retrieval={r}",
        }
        for r, k, f, rpr in [
            ("none", 1, 0.2, 0.0),
            ("none", 3, 0.2, 0.0),
            ("adaptive", 1, 0.3, 1.0),
            ("adaptive", 3, 0.35, 1.0),
        ]
    ]
    rows.append(
        {**rows[-1], "clin_f1": None, "status": "missing", "cell": "generation.top_k=5,retrieval=adaptive"}
    )
    pd.DataFrame(rows).to_csv(path, index=False)


def _text(cell) -> str:
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)


def test_results_notebook_runs_on_a_grid_and_predictions(tmp_path: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    source = nbformat.read(NOTEBOOK, as_version=4)
    assert all(
        not c.get("outputs") for c in source.cells if c.cell_type == "code"
    )  # committed without outputs
    _grid_csv(tmp_path / "grid_results.csv")
    _predictions(tmp_path / "predictions.jsonl")
    monkeypatch.setenv("ADARAGCT_GRID_CSV", str(tmp_path / "grid_results.csv"))
    monkeypatch.setenv("ADARAGCT_PREDICTIONS", str(tmp_path / "predictions.jsonl"))
    assert os.environ["ADARAGCT_GRID_CSV"]  # the kernel inherits this environment
    NotebookClient(
        source,
        timeout=120,
        kernel_name=_kernel_name(),
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    code = [c for c in source.cells if c.cell_type == "code"]
    out = "\n".join(_text(c) for c in code)
    assert "5 cells, 1 without metrics" in out and "missing: generation.top_k=5,retrieval=adaptive" in out
    assert "2 reports, 1.00 retrievals per report (max 2)" in out
    assert "probe outcomes: {'retrieved': 2, 'cancelled': 1}" in out
    assert "probe [lung]: A 6 mm nodule in the right lung." in out and "-> 0.910  A 5 mm nodule" in out
    assert "1 example traces shown" in out
    images = sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {}))
    assert images == 3  # Clin-F1 by mode, retrievals histogram, organ distribution
