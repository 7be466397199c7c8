"""``make demo-ablations``: the paper's claims (b) and (c) in miniature, from the ablation cells of the demo.

    python -m adaragct.demo -m demo_ablation=whole_ct,tiny_large    # the cells (Hydra multirun; base model only)
    python -m adaragct.experiments.demo_ablations                    # table, plot and claim lines

Each cell (``conf/demo_ablation/<cell>.yaml``) is the demo with one change, trained and scored like the demo's
``base/none`` row on the same validation volumes; this module pairs each cell with that row:

(b) the embedding bottleneck: organ + whole-CT input beats the whole-CT (CT-CLIP) embedding alone on weighted
    clinical F1 (paired bootstrap p < 0.05);
(c) model size: a tiny model 2.7x larger (``model=tiny_large``) gives no clear gain (its weighted-F1 difference is
    not positive with p < 0.05).

Writes ``outputs/demo_ablations/results.{md,json,png}`` and prints the table, the paired differences and the two
claim lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from adaragct import artifacts
from adaragct.experiments.evidence import ALPHA, Claim, Comparisons, format_p, gate, paired_comparisons

REFERENCE = "tiny/organs+whole_ct"
# cell -> its results row name (model/input)
CELLS = {"whole_ct": "tiny/whole_ct_only", "tiny_large": "tiny_large/organs+whole_ct"}


def _results(results_json: Path) -> dict[str, Any]:
    if not results_json.is_file():
        raise FileNotFoundError(
            f"{results_json}: no results (fix: run `make demo` for the demo and `python -m adaragct.demo -m "
            f"demo_ablation=whole_ct,tiny_large` for the cells, or simply `make demo-ablations`)"
        )
    return json.loads(results_json.read_text())


def _base_row(results: dict[str, Any], results_json: Path, name: str) -> dict[str, Any]:
    """The ``base/none`` row of a demo (or cell) results file, renamed ``name`` (``model/input``)."""
    rows = {r["name"]: r for r in results["rows"]}
    if "base/none" not in rows:
        raise ValueError(
            f"{results_json}: rows: no base/none row (fix: keep {{phase: base, retrieval: none}} in runs)"
        )
    model, inputs = name.split("/")
    return {**rows["base/none"], "name": name, "phase": model, "retrieval": inputs}


def _difference(comparisons: Comparisons, row: str) -> dict[str, float]:
    return comparisons[REFERENCE][row]["clinical_f1"]


def _detail(rows: dict[str, dict[str, Any]], comparisons: Comparisons, row: str) -> str:
    cmp = comparisons[REFERENCE][row]
    res = cmp["clinical_f1"]
    return (
        f"{row} {rows[row]['metrics']['clinical_f1']:.3f} vs {REFERENCE} "
        f"{rows[REFERENCE]['metrics']['clinical_f1']:.3f} (diff {res['difference']:+.3f} "
        f"[{res['ci_lower']:+.3f}, {res['ci_upper']:+.3f}], {format_p(res['p_value'], cmp.get('num_resamples'))})"
    )


# claim key -> (cell, claim text, whether the paired difference "cell minus the demo's base" supports it, the rows
# that must read their image for it to be evidence). (b) is about the whole-CT embedding carrying too little: a
# whole-CT-only model that owes nothing to its volume is that bottleneck, so only the demo's base model is gated.
CLAIMS = {
    "b": (
        "whole_ct",
        "organ + whole-CT input beats whole-CT input alone on weighted clinical F1 (paired p < 0.05)",
        lambda res: res["difference"] < 0 and res["p_value"] < ALPHA,  # whole-CT alone is clearly worse
        (REFERENCE,),
    ),
    "c": (
        "tiny_large",
        "a tiny model 2.7x larger gives no clear gain (weighted clinical F1 not higher with paired p < 0.05)",
        lambda res: not (res["difference"] > 0 and res["p_value"] < ALPHA),
        (REFERENCE, CELLS["tiny_large"]),
    ),
}


def check(rows: dict[str, dict[str, Any]], comparisons: Comparisons) -> list[Claim]:
    """Claims (b) and (c) on the paired differences (cell minus the demo's base model); a cell without results
    gives no line; a claim resting on a model that owes nothing provable to its volume is NOT EVIDENCE."""
    claims = []
    for key, (cell, text, holds, readers) in CLAIMS.items():
        row = CELLS[cell]
        if row in rows:
            passed = holds(_difference(comparisons, row))
            claim = Claim(key, text, "PASS" if passed else "FAIL", _detail(rows, comparisons, row))
            claims.append(gate(claim, rows, list(readers)))
    return claims


def run(output_root: Path, num_resamples: int = 1000, seed: int = 42) -> list[Claim]:
    """Read the demo's and the cells' results, compare, write ``demo_ablations/results.{md,json,png}``."""
    from adaragct.experiments import demo_report as report
    from adaragct.io import atomic_open, write_json

    demo_json = Path(artifacts.demo_results(output_root)) / "results.json"
    demo = _results(demo_json)
    rows = {REFERENCE: _base_row(demo, demo_json, REFERENCE)}
    for cell, name in CELLS.items():
        path = Path(artifacts.demo_results(output_root, cell)) / "results.json"
        if path.is_file():
            rows[name] = _base_row(_results(path), path, name)
        else:
            print(f"[demo-ablations] {cell}: no results yet ({path}); its claim is not checked")
    predictions = {name: row["predictions"] for name, row in rows.items()}
    comparisons = paired_comparisons(
        predictions, [REFERENCE], demo["labels_csv"], num_resamples=num_resamples, seed=seed
    )
    claims = check(rows, comparisons)
    out = Path(artifacts.demo_ablations_dir(output_root))
    ordered = list(rows.values())
    write_json(
        out / "results.json",
        {
            "num_volumes": demo["num_volumes"],
            "bootstrap": {"num_resamples": num_resamples, "seed": seed},
            "rows": ordered,
            "comparisons": comparisons,
            "claims": [c.as_dict() for c in claims],
        },
    )
    table, pvalues = report.results_table(ordered), report.pvalue_table(ordered, comparisons)
    lines = "\n".join(f"- {c.line()}" for c in claims)
    with atomic_open(out / "results.md", "w", encoding="utf-8") as handle:
        handle.write(
            f"# adaragct demo ablations\n\nThe demo's base model (model=tiny, organ + whole-CT input) and its "
            f"ablation cells, each trained like it and scored on the same {demo['num_volumes']} validation volumes "
            f"(no retrieval). Brackets: 95% bootstrap intervals ({num_resamples} resamples, seed {seed}).\n\n"
            f"{table}\n\n## Paired comparisons\n\nCell minus {REFERENCE}; p: two-sided paired bootstrap.\n\n"
            f"{pvalues}\n\n## The paper's claims (b) and (c)\n\n{lines}\n"
        )
    report.plot(ordered, out / "results.png")
    print(report.results_table(ordered, all_intervals=False))
    print(f"\npaired bootstrap, cell minus {REFERENCE}:\n{pvalues}")
    print("\n" + report.claim_lines(claims))
    print(f"[demo-ablations] written: {out / 'results.md'}, {out / 'results.png'}, {out / 'results.json'}")
    return claims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-root", default="outputs", type=Path, help="the demo's paths.output_root")
    parser.add_argument("--num-resamples", default=1000, type=int)
    parser.add_argument("--seed", default=42, type=int)
    args = parser.parse_args()
    run(args.output_root, args.num_resamples, args.seed)


if __name__ == "__main__":
    main()
