"""The analyze stage: how much of each embedding slot is usable signal (the paper's bottleneck finding), and
how two report sets compare as text.

    python -m adaragct.analyze data=demo
    python -m adaragct.analyze npz=data/demo/bundle/embeddings/ct_clip/valid_embeds.npz
    python -m adaragct.analyze text.a=CT-CLIP/text_classifier/data/train.csv text.b=demo

The bottleneck report prints and writes ``bottleneck.json`` / ``bottleneck.md`` (variance share of the top-k
principal components, effective rank, participation ratio per slot; linear-probe AUC per slot and finding) and
two plots (``cumulative_variance.png``, ``probe_auc.png``) under the run folder. With ``text.a`` (and ``text.b``)
set it prints and writes ``text_stats.json`` / ``text_stats.md`` instead: words, sentences, recurring sentences,
positives per report and BLEU-4 / ROUGE-L of random and label-nearest report pairs, with the calibration band of
``b`` against ``a`` (:mod:`adaragct.analysis.text_stats`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from adaragct.apps._app import hydra_app, prologue

log = logging.getLogger(__name__)


def _slot_arrays(cfg: DictConfig, split: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    from adaragct.constants import ORGAN_SLOTS
    from adaragct.formats.embeddings import read_embeddings_npz

    whole = read_embeddings_npz(cfg.data.whole_embeddings[split], [cfg.data.whole_key])
    organs = read_embeddings_npz(cfg.data.organ_embeddings[split], ORGAN_SLOTS)
    if whole.ids != organs.ids:
        return {
            "whole_ct": whole.arrays[cfg.data.whole_key],
            **{s: organs.rows(s, whole.ids) for s in ORGAN_SLOTS},
        }, whole.ids
    return {"whole_ct": whole.arrays[cfg.data.whole_key], **organs.arrays}, whole.ids


def _npz_arrays(path: str, keys: list[str] | None) -> dict[str, np.ndarray]:
    from adaragct.formats.embeddings import read_embeddings_npz

    if keys is None:
        from adaragct.formats.safe_npz import open_npz

        with open_npz(path, "point npz= at an existing embeddings NPZ") as npz:
            keys = [k for k in npz.files if npz[k].ndim == 2 and np.issubdtype(npz[k].dtype, np.floating)]
    return read_embeddings_npz(path, keys).arrays


def _probes(cfg: DictConfig) -> dict[str, dict[str, float]]:
    from adaragct.analysis.bottleneck import probe_table
    from adaragct.constants import FINDINGS
    from adaragct.formats.tables import read_labels_csv

    arrays, labels = {}, {}
    for split in ("train", "valid"):
        arrays[split], ids = _slot_arrays(cfg, split)
        table = read_labels_csv(cfg.data[f"{split}_labels_csv"])
        labels[split] = table.loc[list(ids)].to_numpy()
    return probe_table(
        arrays["train"], arrays["valid"], labels["train"], labels["valid"], FINDINGS, cfg.min_positives
    )


def markdown(report: dict[str, Any]) -> str:
    ks = list(next(iter(report["spectrum"].values()))["variance_share"])
    lines = [
        "| slot | dim | "
        + " | ".join(f"top-{k} var" for k in ks)
        + " | eff. rank | part. ratio | mean probe AUC |",
        "|---" * (len(ks) + 5) + "|",
    ]
    for slot, s in report["spectrum"].items():
        aucs = list(report.get("probe_auc", {}).get(slot, {}).values())
        mean_auc = f"{np.mean(aucs):.3f}" if aucs else "-"
        lines.append(
            f"| {slot} | {s['dim']} | "
            + " | ".join(f"{s['variance_share'][k]:.3f}" for k in ks)
            + f" | {s['effective_rank']:.1f} | {s['participation_ratio']:.2f} | {mean_auc} |"
        )
    return "\n".join(lines)


def _plots(arrays: dict[str, np.ndarray], report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaragct.analysis.bottleneck import cumulative_variance

    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for slot, x in arrays.items():
        curve = cumulative_variance(x)[:50]
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=slot)
    ax.set(
        xlabel="principal components",
        ylabel="cumulative variance share",
        xscale="log",
        ylim=(0, 1.01),
        title="Variance concentration per embedding slot",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "cumulative_variance.png", dpi=120)
    written.append(out / "cumulative_variance.png")
    plt.close(fig)
    if report.get("probe_auc"):
        slots = list(report["probe_auc"])
        findings = sorted({f for row in report["probe_auc"].values() for f in row})
        grid = np.array([[report["probe_auc"][s].get(f, np.nan) for f in findings] for s in slots])
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(findings)), 3))
        im = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(findings)), findings, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(slots)), slots)
        fig.colorbar(im, ax=ax, label="probe AUC")
        ax.set_title("Linear-probe AUC per slot and finding")
        fig.tight_layout()
        fig.savefig(out / "probe_auc.png", dpi=120)
        written.append(out / "probe_auc.png")
        plt.close(fig)
    return written


def run_analyze(cfg: DictConfig) -> dict[str, Any]:
    """Compute, print and write the bottleneck report; returns it."""
    from adaragct.analysis.bottleneck import spectrum_summary
    from adaragct.io import atomic_open, write_json

    if cfg.npz:
        arrays = _npz_arrays(cfg.npz, list(cfg.arrays) if cfg.arrays else None)
    else:
        arrays, _ = _slot_arrays(cfg, cfg.split)
    report: dict[str, Any] = {
        "source": cfg.npz or f"data={cfg.data.name} split={cfg.split}",
        "spectrum": {slot: spectrum_summary(x, cfg.top_k) for slot, x in arrays.items()},
    }
    if cfg.probes and not cfg.npz and cfg.data.get("train_labels_csv") and cfg.data.get("valid_labels_csv"):
        report["probe_auc"] = _probes(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bottleneck.json", report)
    table = markdown(report)
    with atomic_open(out / "bottleneck.md", "w", encoding="utf-8") as handle:
        handle.write(f"# Embedding bottleneck ({report['source']})\n\n{table}\n")
    plots = _plots(arrays, report, out)
    print(table)
    if "whole_ct" in report["spectrum"]:
        share = report["spectrum"]["whole_ct"]["variance_share"].get(2)
        print(f"whole-volume embedding: top-2 principal components hold {share:.1%} of the variance")
    print(f"written: {out / 'bottleneck.json'}, {out / 'bottleneck.md'}, " + ", ".join(str(p) for p in plots))
    return report


def run_text_stats(cfg: DictConfig) -> dict[str, Any]:
    """Compute, print and write the text statistics of ``text.a`` (and ``text.b``, with its bands); returns them."""
    from adaragct.analysis.text_sources import load_report_set
    from adaragct.analysis.text_stats import band_check, format_table, report_stats
    from adaragct.io import atomic_open, write_json

    generator = OmegaConf.to_container(cfg.data.generator, resolve=True) if "generator" in cfg.data else None
    sources = [
        OmegaConf.to_container(s, resolve=True) if OmegaConf.is_list(s) else s
        for s in (cfg.text.a, cfg.text.b)
    ]
    sets = [
        load_report_set(s, generator).subsample(cfg.text.max_reports, cfg.text.seed)
        for s in sources
        if s is not None
    ]
    stats = []
    for report_set in sets:
        log.info("text statistics of %s (%d reports)", report_set.source, len(report_set.reports))
        stats.append(report_stats(report_set.reports, report_set.labels, seed=int(cfg.text.seed)))
    bands = band_check(stats[0], stats[1]) if len(stats) == 2 else None
    result: dict[str, Any] = {
        "sets": [{"name": s.name, "source": s.source, **st} for s, st in zip(sets, stats, strict=True)],
        "seed": int(cfg.text.seed),
    }
    if bands is not None:
        result["bands"] = bands
    table = format_table([s.name for s in sets], stats, bands)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "text_stats.json", result)
    with atomic_open(out / "text_stats.md", "w", encoding="utf-8") as handle:
        sources_md = "\n".join(f"- {s.name}: {s.source}" for s in sets)
        handle.write(f"# Report text statistics\n\n{sources_md}\n\n```\n{table}\n```\n")
    for s in sets:
        print(f"{s.name}: {s.source}")
    print(table)
    print(f"written: {out / 'text_stats.json'}, {out / 'text_stats.md'}")
    return result


def run(cfg: DictConfig) -> dict[str, Any]:
    """The text statistics when ``text.a`` or ``text.b`` is set, else the bottleneck report; returns it."""
    prologue(cfg, "analyze")
    log.info("analyze config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.text.a is not None or cfg.text.b is not None:
        return run_text_stats(cfg)
    return run_analyze(cfg)


main = hydra_app("analyze", run)


if __name__ == "__main__":
    main()
