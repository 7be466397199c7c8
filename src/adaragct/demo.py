"""The demo: the whole AdaRAG-CT study on the built-in demo cohort, on a laptop CPU.

    make demo            # = python -m adaragct.demo

1. prepare the cohort  2. index it  3. train stage=base  4. train stage=rag (from base)  5. generate for the
validation volumes: the base model, and the rag model with retrieval none / oracle / adaptive / text2text, each
scored right after  6. print the results table, write ``outputs/demo/results.md``, ``results.json`` and
``results.png``. Each step is skipped when it already ran with the same settings and upstream outputs
(``outputs/demo/state.json``); changing e.g. the training steps reruns that stage and everything after it, and
editing the generation, retrieval or evaluation code reruns the generate-and-score step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

COLUMNS = (
    ("clin-F1 (w)", "report_generation/clinical_f1"),
    ("micro", "report_generation/clinical_micro_f1"),
    ("macro", "report_generation/clinical_macro_f1"),
    ("BLEU-4", "report_generation/bleu_4"),
    ("ROUGE-L", "report_generation/rouge_l"),
    ("CIDEr", "report_generation/cider"),
)


class DemoState:
    """``state.json``: a fingerprint per finished step, so a rerun skips what is done and valid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, step: str, fingerprint: str) -> bool:
        return self.data.get(step, {}).get("fingerprint") == fingerprint

    def record(self, step: str, fingerprint: str, **info: Any) -> None:
        from adaragct.io import write_json

        self.data[step] = {"fingerprint": fingerprint, **info}
        write_json(self.path, self.data)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# the code that decides what inference writes and how it is scored: editing it reruns the (fast) generate and
# evaluate steps, so results.md never mixes predictions of old code with the README's numbers
_INFER_CODE = ("generation", "retrieval", "eval", "infer.py", "data/prompt.py")


def _code_fingerprint(parts: tuple[str, ...] = _INFER_CODE, root: Path | None = None) -> str:
    """A hash over the ``.py`` files of ``parts`` (packages or modules under ``root``, default: adaragct)."""
    root = root or Path(__file__).resolve().parent
    files = sorted(
        f for part in parts for f in ([root / part] if part.endswith(".py") else (root / part).rglob("*.py"))
    )
    return _fingerprint(
        *((str(f.relative_to(root)), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files)
    )


def _compose(name: str, overrides: list[str]) -> DictConfig:
    cfg = hydra.compose(config_name=name, overrides=overrides, return_hydra_config=False)
    OmegaConf.resolve(cfg)
    return cfg


def _relevant(cfg: DictConfig, keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k]
        for k in keys
        if k in cfg
    }


def _train(stage: str, cfg: DictConfig, common: list[str], state: DemoState, upstream: str) -> str:
    from adaragct.train import train

    tcfg = _compose(
        "train",
        [
            *common,
            f"stage={stage}",
            f"paths.output_dir={cfg.results_dir}/train_{stage}",
            *cfg.train_overrides[stage],
        ],
    )
    fp = _fingerprint(
        _relevant(tcfg, ("model", "stage", "trainer", "datamodule", "prompt", "seed")), upstream
    )
    last = Path(tcfg.checkpoint_dir) / "last"
    if state.done(f"train_{stage}", fp) and last.exists():
        print(f"[demo] train stage={stage}: up to date ({last.resolve()})")
        return fp
    if Path(tcfg.checkpoint_dir).exists():  # settings changed: start clean rather than resume stale state
        shutil.rmtree(tcfg.checkpoint_dir)
    print(f"[demo] train stage={stage}: {tcfg.trainer.max_steps} optimizer steps")
    metrics = train(tcfg)
    state.record(
        f"train_{stage}", fp, checkpoint=str(last.resolve()), **{k: round(v, 4) for k, v in metrics.items()}
    )
    return fp


def _infer(run: DictConfig, cfg: DictConfig, common: list[str], state: DemoState, upstream: str) -> dict:
    from adaragct.infer import run_infer

    name = f"{run.stage}_{run.retrieval}"
    out = Path(cfg.results_dir) / name
    icfg = _compose(
        "infer",
        [
            *common,
            f"stage={run.stage}",
            f"retrieval={run.retrieval}",
            f"predictions={out}/predictions.jsonl",
            f"paths.output_dir={out}",
            "progress=true",
            *cfg.infer_overrides,
        ],
    )
    fp = _fingerprint(_relevant(icfg, ("generation", "retrieval", "split", "limit", "prompt")), upstream)
    if state.done(f"infer_{name}", fp) and (out / "metrics.json").is_file():
        print(f"[demo] infer {name}: up to date")
        return state.data[f"infer_{name}"]
    if not state.done(f"infer_{name}", fp) and out.exists():
        shutil.rmtree(out)  # another checkpoint or settings: old predictions must not be resumed
    summary = run_infer(icfg)
    info = {
        "tokens_per_s": summary["tokens_per_s"],
        "retrievals_per_report": summary["retrievals_per_report"],
        "metrics_json": str(out / "metrics.json"),
    }
    state.record(f"infer_{name}", fp, **info)
    return state.data[f"infer_{name}"]


def results_table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "retrieval", *[c for c, _ in COLUMNS], "retrievals/report", "tokens/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        values = [
            row["stage"],
            row["retrieval"],
            *[f"{row['metrics'][k]:.3f}" for _, k in COLUMNS],
            f"{row['retrievals_per_report']:.2f}",
            f"{row['tokens_per_s']:.0f}",
        ]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['stage']}\n{r['retrieval']}" for r in rows]
    shown = COLUMNS[:1] + COLUMNS[3:5]
    x, width = np.arange(len(rows)), 0.8 / len(shown)
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (name, key) in enumerate(shown):
        ax.bar(x + i * width, [r["metrics"][key] for r in rows], width, label=name)
    ax.set_xticks(x + width * (len(shown) - 1) / 2, labels)
    ax.set(ylabel="score", title="adaragct demo: validation volumes of the demo cohort")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run (or skip) every step and return the results rows."""
    from adaragct.index import run as run_index
    from adaragct.io import atomic_open, write_json
    from adaragct.prepare import run_prepare
    from adaragct.retrieval.bank import sha256_file

    results = Path(cfg.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    state = DemoState(results / "state.json")
    common = [
        f"paths.root_dir={cfg.paths.root_dir}",
        f"paths.data_dir={cfg.paths.data_dir}",
        f"paths.output_root={cfg.paths.output_root}",
        *cfg.overrides,
    ]
    data_common = [c for c in common if not c.startswith("experiment=")]
    print("[demo] 1/6 prepare")
    summary = run_prepare(_compose("prepare", [*data_common, f"paths.output_dir={results}/prepare"]))
    print("[demo] 2/6 index")
    index = run_index(
        _compose("index", [*data_common, f"paths.output_dir={results}/index", "index.progress=false"])
    )
    data_fp = summary["fingerprint"]  # the cohort, the tokenizer and the tiny LM as prepared
    index_fp = _fingerprint(
        index["encoder_id"], *(sha256_file(p) for p in index["paths"].values() if Path(p).is_file())
    )
    print("[demo] 3/6 train stage=base")
    base_fp = _train("base", cfg, common, state, data_fp)
    print("[demo] 4/6 train stage=rag")
    rag_fp = _train("rag", cfg, common, state, _fingerprint(base_fp, index_fp))
    print("[demo] 5/6 generate and evaluate")
    rows = []
    code_fp = _code_fingerprint()
    for run in cfg.runs:
        upstream = _fingerprint(base_fp if run.stage == "base" else rag_fp, index_fp, code_fp)
        info = _infer(run, cfg, common, state, upstream)
        metrics = json.loads(Path(info["metrics_json"]).read_text())
        rows.append(
            {
                "stage": run.stage,
                "retrieval": run.retrieval,
                "metrics": {k: metrics[k] for _, k in COLUMNS},
                "retrievals_per_report": info["retrievals_per_report"],
                "tokens_per_s": info["tokens_per_s"],
            }
        )
    print("[demo] 6/6 results")
    table = results_table(rows)
    write_json(results / "results.json", rows)
    with atomic_open(results / "results.md", "w", encoding="utf-8") as handle:
        handle.write(
            f"# adaragct demo results\n\n{summary['counts']['valid']['volumes']} validation volumes of the "
            f"demo cohort; clinical F1 from the rule labeler against the cohort's labels.\n\n{table}\n"
        )
    _plot(rows, results / "results.png")
    print(table)
    print(f"[demo] written: {results / 'results.md'}, {results / 'results.png'}, {results / 'results.json'}")
    return rows


@hydra.main(version_base="1.3", config_path="../../conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    """Console entry point (``adaragct-demo``)."""
    run_demo(cfg)


if __name__ == "__main__":
    main()
