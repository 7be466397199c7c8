"""The prepare stage: write a dataset every later stage can read (SPEC 1, 2.3).

Run::

    python -m adaragct.prepare data=demo              # the built-in demo cohort into data/demo/
    python -m adaragct.prepare data=demo force=true   # regenerate even if up to date
    python -m adaragct.prepare data=demo data.generator.n_train_patients=1000

For ``data=demo`` it generates the seeded cohort in the CT-RATE and AdaRAG-CT bundle layouts, trains the tiny
model's BPE tokenizer, and prints (and writes to ``data/demo/summary.json``) counts, text variety, the embedding
bottleneck and organ-vs-whole probe AUCs. Heavy imports (transformers, sklearn) happen inside the stage, so
``--help`` is instant.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from adaragct.errors import DataError

log = logging.getLogger(__name__)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable table of the prepare summary."""
    lines = []
    for split, c in summary["counts"].items():
        lines.append(f"{split:<6} patients {c['patients']:>5}  volumes {c['volumes']:>5}")
    t = summary["text"]
    lines.append(
        f"unique reports {t['unique_reports']}  unique sentences {t['unique_sentences']}  "
        f"words/report {t['words_per_report']} (CT-RATE ~274)"
    )
    lines.append(f"label/text agreement {summary['label_text']['agreement']:.4f}")
    lines.append(
        f"top-2 PC variance share of whole embeddings {summary['top2_variance_share']:.3f} (CT-CLIP ~0.9)"
    )
    lines.append(f"{'organ':<10}{'organ AUC':>10}{'whole AUC':>10}{'findings':>9}")
    for organ, row in summary["organ_probe_auc"].items():
        lines.append(f"{organ:<10}{row['organ_auc']:>10.3f}{row['whole_auc']:>10.3f}{row['findings']:>9}")
    return "\n".join(lines)


def run_prepare(cfg: DictConfig) -> dict[str, Any]:
    """Prepare ``cfg.data``; returns the summary dict (also written as ``<data.root>/summary.json``)."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if "generator" not in data:
        raise DataError(
            f"conf/data/{data.get('name')}.yaml",
            "generator",
            "prepare can only generate the demo cohort so far",
            "use data=demo; CT-RATE and bundle data are read as they are by the later stages",
        )
    from adaragct.data.demo.writer import demo_paths, write_demo

    summary = write_demo(data, force=bool(cfg.get("force", False)))
    print(format_summary(summary))
    state = "up to date, nothing written" if summary["skipped"] else "written"
    print(f"demo cohort {state}: {data['root']}")
    paths = demo_paths(data)
    for key in (
        "train_reports_csv",
        "train_whole_npz",
        "train_organ_npz",
        "valid_organ_reports_json",
        "tokenizer_dir",
        "summary_json",
    ):
        print(f"  {key:<26} {paths[key]}")
    return summary


@hydra.main(version_base="1.3", config_path="../../conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    """Console entry point (``adaragct-prepare``)."""
    run_prepare(cfg)


if __name__ == "__main__":
    main()
