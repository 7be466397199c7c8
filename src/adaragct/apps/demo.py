"""The demo: the whole AdaRAG-CT study on the built-in demo cohort, on a laptop CPU.

    make demo            # = python -m adaragct.demo

1. prepare the cohort  2. index it  3. train phase=align (the projectors alone; with the findings prompt, the
finding classifier), then phase=base from its projector  4. train phase=rag (from base), then measure each trained
model's visual gain on the validation volumes (:mod:`adaragct.models.visual_gain`)  5. the copy baselines (a
training report copied: random, nearest whole-CT embedding, nearest organ embeddings)  6. generate for the
validation volumes: the base model, and the rag model with retrieval none / oracle / adaptive / text2text
7. score every row with 95% bootstrap intervals (F1 owed to the volume and distinct reports included)
8. paired p-values against base/none and rag/none, the paper's claims checked one line each (a claim resting on a
model whose F1 owed is not above 0 is "not evidence"); the tables and claims go to the terminal and
``outputs/demo/results.md``, ``results.json`` and ``results.png``.

Each step is skipped when it already ran with the same settings, upstream outputs and code (the ledger
``outputs/demo/state.json``, :mod:`adaragct.ledger`); changing e.g. the training steps reruns that stage and
everything after it. A step's code is every module its entry point imports
(:func:`adaragct.ledger.code_fingerprint`): editing ``formats/embeddings.py`` retrains and regenerates, editing
``generation/`` regenerates (and rescores predictions that changed), editing ``eval/`` only rescores. Every stage
runs with ``threads`` threads (``adaragct.determinism``), so two runs from scratch write the same bytes whatever
the machine's core count.

``until=<step>`` stops after one of :data:`STEPS`: ``make prepare``, ``make index``, ``make train`` and ``make
infer`` are the demo's own steps run this way, with its settings and its ledger, so no make target rebuilds the
demo's inputs differently and none redoes what the demo has done (a checkpoint also refuses other base weights:
:mod:`adaragct.models.provenance`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from adaragct import artifacts
from adaragct.apps._app import hydra_app, prologue
from adaragct.ledger import Ledger, code_fingerprint, fingerprint, sha256_path

log = logging.getLogger(__name__)
# the steps ``until`` may name, in order (``make prepare|index|train|infer``); null runs all eight
STEPS = ("prepare", "index", "train", "generate", "score")


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


def _cell_run_name(cfg: DictConfig) -> list[str]:
    """An ablation cell's checkpoints get their own folder (``cell`` is part of the run's name,
    :func:`adaragct.artifacts.run_name`): the demo's stay."""
    return [f"cell={cfg.cell}"] if cfg.get("cell") else []


def _train(
    phase: str,
    cfg: DictConfig,
    common: list[str],
    ledger: Ledger,
    upstream: str,
    start: list[str] | None = None,
) -> tuple[str, str]:
    """Train ``phase`` unless its checkpoint is current; returns the checkpoint's sha256 (what later steps key on)
    and its directory. ``start``: overrides that name the checkpoint it starts from (base: the align run's)."""
    from adaragct.apps.train import run as train

    tcfg = _compose(
        "train",
        [
            *common,
            f"phase={phase}",
            *_cell_run_name(cfg),
            f"paths.output_dir={artifacts.demo_logs(cfg.results_dir, f'train_{phase}')}",
            *(start or []),
            *cfg.train_overrides[phase],
        ],
    )
    inputs = fingerprint(
        _relevant(tcfg, ("model", "phase", "trainer", "datamodule", "prompt", "seed")),
        upstream,
        code_fingerprint("adaragct.apps.train"),
    )
    step, last = f"train_{phase}", Path(artifacts.last(tcfg.checkpoint_dir))
    if ledger.is_current(step, last, inputs):
        print(f"[demo] train phase={phase}: up to date ({last.resolve()})")
        return ledger.sha256(step), str(last)
    if Path(tcfg.checkpoint_dir).exists():  # settings changed: start clean rather than resume stale state
        shutil.rmtree(tcfg.checkpoint_dir)
    print(f"[demo] train phase={phase}: {tcfg.trainer.max_steps} optimizer steps")
    _threads(cfg)
    metrics = train(tcfg)
    sha = ledger.record(
        step, last, inputs, checkpoint=str(last.resolve()), **{k: round(v, 4) for k, v in metrics.items()}
    )
    return sha, str(last)


def _visual_gain(
    phase: str, ckpt: str, cfg: DictConfig, common: list[str], ledger: Ledger, upstream: str
) -> dict:
    """Visual gain of a trained model on the validation volumes, with its bootstrap interval (cached by the
    ledger): ``visual_gain_<phase>.json`` in the results folder."""
    from adaragct.apps.infer import _prompt, load_generation_model
    from adaragct.data.datasets import load_split
    from adaragct.io import read_json, write_json
    from adaragct.models.visual_gain import measure_visual_gain

    settings = OmegaConf.to_container(cfg.visual_gain, resolve=True)
    path = Path(artifacts.demo_visual_gain(cfg.results_dir, phase))
    inputs = fingerprint(
        upstream, settings, code_fingerprint("adaragct.models.visual_gain", "adaragct.apps.infer")
    )
    if ledger.is_current(f"visual_gain_{phase}", path, inputs):
        return read_json(path)
    _threads(cfg)
    icfg = _compose(
        "infer", [*common, f"phase={phase}", *_cell_run_name(cfg), f"paths.output_dir={cfg.results_dir}"]
    )
    model, tokenizer, ckpt_cfg = load_generation_model(ckpt, "cpu")
    volumes = load_split(icfg.data, "valid", ckpt_cfg["model"]["visual_dims"])
    gain = measure_visual_gain(model, tokenizer, _prompt(icfg, ckpt_cfg), volumes, **settings).as_dict()
    write_json(path, gain)
    ledger.record(f"visual_gain_{phase}", path, inputs)
    print(
        f"[demo] visual gain of {phase}: {gain['visual_gain']:+.4f} nats/token "
        f"[{gain['visual_gain_ci_lower']:+.4f}, {gain['visual_gain_ci_upper']:+.4f}]"
    )
    return gain


def _infer(run: DictConfig, cfg: DictConfig, common: list[str], ledger: Ledger, upstream: str) -> dict:
    """Generate the predictions of one (stage, retrieval) row, unless they are up to date; returns the ledger
    entry (``file``: the predictions, throughput)."""
    from adaragct.apps.infer import run as run_infer

    name = f"{run.phase}_{run.retrieval}"
    predictions = Path(artifacts.demo_row(cfg.results_dir, name))
    out = predictions.parent
    icfg = _compose(
        "infer",
        [
            *common,
            f"phase={run.phase}",
            f"retrieval={run.retrieval}",
            *_cell_run_name(cfg),
            f"predictions={predictions}",
            f"paths.output_dir={out}",
            "progress=true",
            "score=false",  # scored by _score, with bootstrap intervals
            "view=false",  # written by _score, with the metrics
            *cfg.infer_overrides,
            *cfg.retrieval_overrides.get(run.retrieval, []),
        ],
    )
    inputs = fingerprint(
        _relevant(icfg, ("generation", "retrieval", "split", "limit", "prompt", "seed")), upstream
    )
    step = f"infer_{name}"
    if ledger.is_current(step, predictions, inputs):
        print(f"[demo] infer {name}: up to date")
        return ledger.entry(step)
    if out.exists():
        shutil.rmtree(out)  # another checkpoint or settings: old predictions must not be resumed
    _threads(cfg)
    summary = run_infer(icfg)
    keys = ("tokens_per_s", "retrievals_per_report", "seconds")
    ledger.record(step, predictions, inputs, **{k: summary[k] for k in keys})
    return ledger.entry(step)


def _baselines(cfg: DictConfig, common: list[str], ledger: Ledger, data_fp: str) -> dict[str, str]:
    """Write the copy baselines' predictions (seconds); ``{row name: predictions path}``."""
    from adaragct.data.datasets import load_split
    from adaragct.experiments.baselines import write_copy_predictions

    settings = OmegaConf.to_container(cfg.baselines, resolve=True)
    code = code_fingerprint("adaragct.experiments.baselines", "adaragct.data.datasets")
    out, volumes = {}, None
    for name in settings["rows"]:
        path = Path(artifacts.demo_row(cfg.results_dir, f"copy_{name}"))
        inputs = fingerprint(data_fp, name, settings["seed"], settings["center"], code)
        out[f"copy/{name}"] = str(path)
        if ledger.is_current(f"copy_{name}", path, inputs):
            print(f"[demo] copy baseline {name}: up to date")
            continue
        if volumes is None:
            data = _compose("infer", common).data
            volumes = {split: load_split(data, split) for split in ("train", "valid")}
        write_copy_predictions(
            path, name, volumes["train"], volumes["valid"], seed=settings["seed"], center=settings["center"]
        )
        print(f"[demo] copy baseline {name}: {path}")
        ledger.record(f"copy_{name}", path, inputs)
    return out


def _score(name: str, predictions: str, cfg: DictConfig, ledger: Ledger, labels_csv: str) -> dict[str, Any]:
    """metrics.json (with bootstrap intervals) beside ``predictions``, scored as ``cfg.scoring`` says, unless up to
    date; returns the metrics."""
    from adaragct.eval.runner import run_evaluation, scoring_options
    from adaragct.io import read_json

    output = Path(artifacts.beside(predictions, "metrics"))
    boot = cfg.scoring.bootstrap
    inputs = fingerprint(
        sha256_path(predictions),
        sha256_path(labels_csv),
        boot.num_resamples,
        boot.seed,
        code_fingerprint("adaragct.eval.runner"),
    )
    if ledger.is_current(f"score_{name}", output, inputs):
        _view(predictions, output, labels_csv)
        return read_json(output)
    _threads(cfg)
    metrics = run_evaluation(scoring_options(cfg.scoring, predictions, output, labels_csv=labels_csv))
    ledger.record(f"score_{name}", output, inputs)
    _view(predictions, output, labels_csv)
    return metrics


def _view(predictions: str, metrics: Path, labels_csv: str) -> None:
    """view.html beside each row's predictions (adaragct-show; deterministic bytes, ~0.5 s a row): also for the
    copy baselines, whose predictions never change."""
    from adaragct.apps.show import show

    show(predictions, metrics=metrics, labels_csv=labels_csv)


def _row(
    name: str, metrics: dict[str, Any], info: dict[str, Any] | None, gain: dict[str, Any] | None
) -> dict[str, Any]:
    """A results row: point values and 95% intervals of the table's metrics (F1 owed included), the model's
    visual gain (trained rows), distinct reports, throughput for generated rows."""
    from adaragct.formats.metrics import DEMO_COLUMNS, metric_key

    phase, retrieval = name.split("/")
    return {
        "name": name,
        "phase": phase,
        "retrieval": retrieval,
        "metrics": {m: metrics[metric_key(m)] for _, m in DEMO_COLUMNS},
        "ci": {
            m: [metrics[metric_key(f"{m}_ci_lower")], metrics[metric_key(f"{m}_ci_upper")]]
            for _, m in DEMO_COLUMNS
            if metric_key(f"{m}_ci_lower") in metrics
        },
        "duplicate_rate": metrics.get(metric_key("duplicate_rate")),
        "distinct_reports": metrics.get(metric_key("distinct_reports")),
        "visual_gain": None if gain is None else gain["visual_gain"],
        "visual_gain_ci": None
        if gain is None
        else [gain["visual_gain_ci_lower"], gain["visual_gain_ci_upper"]],
        "retrievals_per_report": info["retrievals_per_report"] if info else None,
        "predictions": info["file"] if info else None,
    }


class StepClock:
    """Wall seconds per demo step: printed as each step ends and written to ``timings.json`` (kept out of
    ``results.json``, which two runs must write identically)."""

    def __init__(self, path: Path) -> None:
        self.path, self.seconds, self._name, self._start = path, {}, None, 0.0
        self.tokens_per_s: dict[str, float] = {}

    def throughput(self, infos: dict[str, dict[str, Any]]) -> None:
        """Generation tokens/s per row (wall clock: a timing, so here and not in ``results.json``)."""
        self.tokens_per_s = {name: info["tokens_per_s"] for name, info in infos.items()}
        print(
            "[demo] tokens/s (wall clock): " + ", ".join(f"{n} {v:.0f}" for n, v in self.tokens_per_s.items())
        )

    def step(self, name: str | None, header: str = "") -> None:
        """End the running step (printing its time) and start ``name``, printing ``header`` (None: the last
        step ended)."""
        now = time.perf_counter()
        if self._name is not None:
            self.seconds[self._name] = round(now - self._start, 1)
            print(f"[demo]     {self._name}: {self.seconds[self._name]:.1f} s")
        self._name, self._start = name, now
        if header:
            print(f"[demo] {header}")
        if name is None:
            from adaragct.io import write_json

            total = round(sum(self.seconds.values()), 1)
            write_json(self.path, {**self.seconds, "total": total, "tokens_per_s": self.tokens_per_s})


def _threads(cfg: DictConfig) -> dict[str, Any]:
    """Pin every numeric library to ``cfg.threads`` before a stage (see :mod:`adaragct.determinism`)."""
    from adaragct.determinism import apply_threads

    return apply_threads(cfg.get("threads"), bool(cfg.get("deterministic", True)))


def _report(
    cfg: DictConfig,
    rows: list[dict[str, Any]],
    predictions: dict[str, str],
    labels_csv: str,
    num_volumes: int,
) -> None:
    """Paired comparisons, claims, then results.{md,json,png} and the terminal tables."""
    from adaragct.experiments import demo_report as report
    from adaragct.experiments.evidence import check_claims, paired_comparisons
    from adaragct.io import atomic_open, write_json

    results, boot = Path(cfg.results_dir), cfg.scoring.bootstrap
    _threads(cfg)
    comparisons = paired_comparisons(
        predictions,
        [name for name in cfg.compare_with if name in predictions],
        labels_csv,
        num_resamples=int(boot.num_resamples),
        seed=int(boot.seed),
    )
    claims = check_claims({r["name"]: r for r in rows}, comparisons)
    settings = {
        "num_volumes": num_volumes,
        "labels_csv": labels_csv,
        "bootstrap": OmegaConf.to_container(boot),
        "threads": cfg.get("threads"),
    }
    write_json(
        results / "results.json",
        {**settings, "rows": rows, "comparisons": comparisons, "claims": [c.as_dict() for c in claims]},
    )
    text = report.markdown(
        rows, comparisons, claims, num_volumes=num_volumes, num_resamples=boot.num_resamples, seed=boot.seed
    )
    with atomic_open(results / "results.md", "w", encoding="utf-8") as handle:
        handle.write(text)
    page = cfg.get("results_page")
    if page and Path(page).parent.is_dir():  # a checkout: the page the README links to, never hand-copied
        with atomic_open(page, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"[demo] results page: {page}")
    report.plot(rows, results / "results.png")
    print(report.results_table(rows, all_intervals=False))
    print(f"\npaired bootstrap, row minus reference ({boot.num_resamples} resamples):")
    print(report.pvalue_table(rows, comparisons))
    print("\nthe paper's claims on these numbers:\n" + report.claim_lines(claims))
    print(f"[demo] written: {results / 'results.md'}, {results / 'results.png'}, {results / 'results.json'}")


def _common_overrides(cfg: DictConfig) -> list[str]:
    """The demo's paths and ``overrides`` (an ablation cell's change), passed to every stage it composes."""
    return [
        f"paths.root_dir={cfg.paths.root_dir}",
        f"paths.data_dir={cfg.paths.data_dir}",
        f"paths.output_root={cfg.paths.output_root}",
        f"paths.cache_dir={cfg.paths.cache_dir}",
        *cfg.overrides,
    ]


def _prepare(cfg: DictConfig, common: list[str]) -> dict[str, Any]:
    """Step 1 (its own ledgers skip what is done): the prepare summary, whose ``fingerprint`` later steps key on."""
    from adaragct.apps.prepare import run as run_prepare

    prepare = [
        *common,
        *cfg.get("prepare_overrides", []),
        f"paths.output_dir={artifacts.demo_logs(cfg.results_dir, 'prepare')}",
    ]
    return run_prepare(_compose("prepare", prepare))


def _index(cfg: DictConfig, common: list[str]) -> str:
    """Step 2 (its own ledger skips what is done); returns the fingerprint of the index's files and encoder."""
    from adaragct.apps.index import run as run_index

    _threads(cfg)
    # the index has no model node (a cell sets one), nor an experiment
    no_model = [c for c in common if not c.startswith(("experiment=", "model"))]
    index = run_index(
        _compose(  # its retrieved contexts come from retrieval=adaptive (conf/index.yaml)
            "index",
            [
                *no_model,
                f"paths.output_dir={artifacts.demo_logs(cfg.results_dir, 'index')}",
                "index.progress=false",
                *cfg.retrieval_overrides.adaptive,
            ],
        )
    )
    files = [sha256_path(p) for p in index["paths"].values() if Path(p).is_file()]
    return fingerprint(index["encoder_id"], *files)


def _generate(
    cfg: DictConfig, common: list[str], ledger: Ledger, checkpoints: dict[str, str], index_fp: str
) -> dict[str, dict[str, Any]]:
    """Step 6: ``{row name: ledger entry}`` of every (phase, retrieval) row of ``cfg.runs``."""
    code = code_fingerprint("adaragct.apps.infer")
    return {
        f"{run.phase}/{run.retrieval}": _infer(
            run, cfg, common, ledger, fingerprint(checkpoints[run.phase], index_fp, code)
        )
        for run in cfg.runs
    }


def check_until(cfg: DictConfig) -> None:
    """``until`` names one of :data:`STEPS` (or is null): checked before any work."""
    until = cfg.get("until")
    if until is not None and until not in STEPS:
        from adaragct.errors import DataError

        raise DataError(
            "conf/demo.yaml", "until", f"{until!r} is not a step", f"one of {', '.join(STEPS)}, or null"
        )


def _stops_after(cfg: DictConfig, step: str) -> bool:
    """``until=step``: the run ends after ``step`` (printed)."""
    if cfg.get("until") == step:
        print(f"[demo] stopped after step {step} (until={step}); `make demo` goes on from there, skipping it")
    return cfg.get("until") == step


def run(cfg: DictConfig) -> list[dict[str, Any]]:
    """Run (or skip) the module docstring's steps 1-8 and return the results rows (none when ``until`` stops the
    run earlier)."""
    prologue(cfg, "demo")  # threads are pinned again before each stage (_threads), with cfg.deterministic
    check_until(cfg)
    results = Path(cfg.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    ledger, common = Ledger(results / "state.json"), _common_overrides(cfg)
    clock = StepClock(results / "timings.json")
    clock.step("prepare", f"1/8 prepare (threads: {_threads(cfg)['threads']})")
    summary = _prepare(cfg, common)
    if _stops_after(cfg, "prepare"):
        return []
    data_fp = summary["fingerprint"]  # the cohort, the tokenizer and the tiny LM as prepared
    clock.step("index", "2/8 index")
    index_fp = _index(cfg, common)
    if _stops_after(cfg, "index"):
        return []
    clock.step("train_align", "3/8 train phase=align, then phase=base from its projector")
    align_sha, align_dir = _train("align", cfg, common, ledger, data_fp)
    clock.step("train_base")
    trained = {"base": _train("base", cfg, common, ledger, align_sha, [f"phase.projector_from={align_dir}"])}
    if any(
        run.phase == "rag" for run in cfg.runs
    ):  # an ablation cell with base rows only trains no rag model
        clock.step("train_rag", "4/8 train phase=rag")
        trained["rag"] = _train("rag", cfg, common, ledger, fingerprint(trained["base"][0], index_fp))
    if _stops_after(cfg, "train"):
        return []
    checkpoints = {phase: sha for phase, (sha, _) in trained.items()}
    clock.step("visual_gain", "   visual gain of each trained model on the validation volumes")
    gains = {
        phase: _visual_gain(phase, path, cfg, common, ledger, sha) for phase, (sha, path) in trained.items()
    }
    clock.step("baselines", "5/8 copy baselines")
    predictions = _baselines(cfg, common, ledger, data_fp)
    clock.step("generate", "6/8 generate")
    infos = _generate(cfg, common, ledger, checkpoints, index_fp)
    predictions.update({name: info["file"] for name, info in infos.items()})
    clock.throughput(infos)
    if _stops_after(cfg, "generate"):
        return []
    clock.step("score", f"7/8 score ({cfg.scoring.bootstrap.num_resamples} bootstrap resamples)")
    labels_csv = _compose("infer", common).data.valid_labels_csv
    rows = [
        _row(
            name,
            _score(name.replace("/", "_"), path, cfg, ledger, labels_csv),
            infos.get(name),
            gains.get(name.split("/")[0]),
        )
        for name, path in predictions.items()
    ]
    if _stops_after(cfg, "score"):
        return []
    clock.step("report", "8/8 paired comparisons, claims, results")
    _report(cfg, rows, predictions, labels_csv, summary["counts"]["valid"]["volumes"])
    clock.step(None)
    return rows


main = hydra_app("demo", run)


if __name__ == "__main__":
    main()
