"""The prepare stage: validate a dataset and write what every later stage needs (docs/method.md, docs/formats.md).

Run::

    python -m adaragct.prepare data=demo                                        # the built-in demo cohort
    python -m adaragct.prepare data=adaragct_bundle data.bundle_root=/data/adaragct_bundle
    python -m adaragct.prepare data=ctrate data.root=/data/CT-RATE/dataset data.bundle_root=/data/adaragct_bundle

Steps, the same for every data source (only step 1 is the demo's own):
    1. ``data=demo``: write the seeded cohort in the CT-RATE and bundle layouts (``data.generator``)
    2. validate every file the later stages read, and the ids across files (:mod:`adaragct.data.validate`)
    3. train model=tiny's BPE tokenizer on the training reports          -> ``data.tokenizer_dir``
    4. pretrain the composed tiny Llama on the training reports (``tiny_lm.*``) -> ``model.path``
    5. summary: counts, text variety, the embedding bottleneck, organ-vs-whole probe AUCs -> ``summary.json``

Everything goes under ``data.work_dir`` (for the demo its own folder); nothing is written into a user's CT-RATE
or release folder. Steps 3-5 are skipped when their inputs did not change (``prepare_state.json``); ``force=true``
redoes everything. Heavy imports happen inside the steps, so ``--help`` is instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from adaragct.apps._app import hydra_app, prologue

log = logging.getLogger(__name__)


def format_summary(summary: dict[str, Any]) -> str:
    """A short human-readable table of the prepare summary."""
    lines = []
    for split, c in summary["counts"].items():
        lines.append(f"{split:<6} patients {c['patients']:>6}  volumes {c['volumes']:>6}")
    t = summary["text"]
    lines.append(
        f"unique reports {t['unique_reports']}  unique sentences {t['unique_sentences']}  "
        f"words/report {t['words_per_report']} (CT-RATE ~274; over {t['reports']} reports)"
    )
    if "label_text" in summary:
        lines.append(f"label/text agreement {summary['label_text']['agreement']:.4f}")
    lines.append(
        f"top-2 PC variance share of whole embeddings {summary['top2_variance_share']:.3f} (CT-CLIP ~0.9)"
    )
    if summary.get("organ_probe_auc"):
        lines.append(f"{'organ':<10}{'organ AUC':>10}{'whole AUC':>10}{'findings':>9}")
        for organ, row in summary["organ_probe_auc"].items():
            lines.append(f"{organ:<10}{row['organ_auc']:>10.3f}{row['whole_auc']:>10.3f}{row['findings']:>9}")
    else:
        lines.append("organ probe AUCs: not measured (needs train and valid labels CSVs)")
    return "\n".join(lines)


def _train_texts(cfg: DictConfig, checked: dict[str, Any]) -> list[str]:
    """The distinct training reports (sorted), or a seeded sample of ``tiny_lm.max_reports`` of them."""
    import random

    texts = sorted({v.report for v in checked["volumes"]["train"]})
    cap = cfg.tiny_lm.get("max_reports")
    if cap and len(texts) > cap:
        texts = sorted(random.Random(cfg.seed).sample(texts, int(cap)))
    return texts


def _lm_documents(cfg: DictConfig, checked: dict[str, Any], reports: list[str]) -> list[str]:
    """What the tiny LM is pretrained on: the reports; with ``prompt.findings_sentence`` each report after the
    end of the prompt that names its findings (from the training labels CSV), so the LM learns to follow
    findings given as words (:func:`adaragct.data.prompt.findings_document`)."""
    from adaragct.constants import FINDINGS
    from adaragct.data.prompt import PromptConfig, findings_document
    from adaragct.errors import DataError

    prompt = PromptConfig(**cfg.prompt)
    extra = _extra_reports(cfg)
    if prompt.findings_sentence is None:
        return reports + [report for report, _ in extra]
    labels = checked["labels"]["train"]
    if labels is None:
        raise DataError(
            f"conf/data/{cfg.data.name}.yaml",
            "train_labels_csv",
            "not set: prompt.findings_sentence pretrains the tiny LM on each report's findings",
            "point data.train_labels_csv at the training labels, or set prompt.findings_sentence=null",
        )
    findings = {}  # reconstructions of one scan share the report and its labels
    for volume in checked["volumes"]["train"]:
        if volume.report not in findings and volume.volume_id in labels.index:
            row = labels.loc[volume.volume_id]
            findings[volume.report] = [f for f in FINDINGS if row[f] == 1]
    unlabelled = [r for r in reports if r not in findings]
    if unlabelled:
        log.warning("tiny LM: %d training reports have no labels row and are left out", len(unlabelled))
    documents = [findings_document(prompt, findings[r], r) for r in reports if r in findings]
    return documents + [findings_document(prompt, names, report) for report, names in extra]


def _extra_reports(cfg: DictConfig) -> list[tuple[str, list[str]]]:
    """``tiny_lm.extra_reports`` reports the demo's grammar writes for patients outside the study (data=demo)."""
    count = int(cfg.tiny_lm.get("extra_reports") or 0)
    if not count:
        return []
    if not cfg.data.get("generator"):
        from adaragct.errors import DataError

        raise DataError(
            f"conf/data/{cfg.data.name}.yaml",
            "generator",
            "tiny_lm.extra_reports needs the demo's report generator (data=demo)",
            "set tiny_lm.extra_reports=0 (your training reports are the tiny LM's text)",
        )
    from adaragct.synthetic.generate import extra_reports

    return extra_reports(OmegaConf.to_container(cfg.data.generator, resolve=True), count)


def _tokenizer(cfg: DictConfig, texts: list[str], ledger: Any) -> str:
    """Step 3: model=tiny's BPE tokenizer trained on the training reports."""
    from adaragct.data.tokenizer import train_bpe_tokenizer
    from adaragct.io import atomic_dir
    from adaragct.ledger import code_fingerprint, fingerprint

    target = Path(cfg.data.tokenizer_dir)
    inputs = fingerprint(texts, cfg.tokenizer.vocab_size, code_fingerprint("adaragct.data.tokenizer"))
    if ledger.is_current("tokenizer", target, inputs):
        return "up to date"
    log.info(
        "[3/5] training the BPE tokenizer (vocab %s) on %d train reports",
        cfg.tokenizer.vocab_size,
        len(texts),
    )
    with atomic_dir(target) as tmp:  # a half-written tokenizer never loads
        train_bpe_tokenizer(texts, int(cfg.tokenizer.vocab_size), tmp)
    ledger.record("tokenizer", target, inputs)
    return "built"


def _tiny_lm(cfg: DictConfig, texts: list[str], ledger: Any) -> str:
    """Step 4: pretrain the composed tiny model (``model=tiny``/``tiny_large``) on the training reports, into
    ``model.path`` (the stand-in for Llama's pretrained weights)."""
    from adaragct.ledger import code_fingerprint, fingerprint
    from adaragct.models.specs import ModelSpec

    size = ModelSpec.from_config(cfg.model).builder_args.get("size")  # the tiny builder's own argument
    if not cfg.tiny_lm.enabled or not size:
        return (
            "skipped ("
            + ("tiny_lm.enabled=false" if size else f"model={cfg.model.name} is not a tiny model")
            + ")"
        )
    target = Path(cfg.model.path)
    settings = OmegaConf.to_container(cfg.tiny_lm, resolve=True)
    import torch

    # the weights depend on the thread count (adaragct.determinism): another count means other weights
    inputs = fingerprint(
        texts,
        ledger.sha256("tokenizer"),
        settings,
        size,
        cfg.seed,
        torch.get_num_threads(),
        code_fingerprint("adaragct.models.tiny_lm"),
    )
    if ledger.is_current(f"lm_{cfg.model.name}", target, inputs):
        return "up to date"
    from adaragct.models.tiny_lm import pretrain_tiny_lm

    log.info(
        "[4/5] pretraining model=%s on %d train documents (%s steps)",
        cfg.model.name,
        len(texts),
        cfg.tiny_lm.steps,
    )
    losses = pretrain_tiny_lm(
        texts,
        cfg.data.tokenizer_dir,
        target,
        steps=int(cfg.tiny_lm.steps),
        batch_size=int(cfg.tiny_lm.batch_size),
        lr=float(cfg.tiny_lm.lr),
        seed=int(cfg.seed),
        size=str(size),
    )
    ledger.record(f"lm_{cfg.model.name}", target, inputs, losses=losses)
    return f"built (loss {losses['first_loss']} -> {losses['last_loss']})"


def dataset_summary(checked: dict[str, Any], whole_key: str, max_reports: int = 2000) -> dict[str, Any]:
    """Counts, text variety (on up to ``max_reports`` distinct reports), the whole-embedding bottleneck and
    organ-vs-whole probe AUCs (when both splits have labels): the same figures for every data source."""
    import random

    import numpy as np

    from adaragct.analysis.bottleneck import top2_variance_share
    from adaragct.analysis.cohort import organ_probe_table, text_stats
    from adaragct.constants import ORGAN_SLOTS
    from adaragct.data.sentences import tag_unique_reports

    volumes, labels = checked["volumes"], checked["labels"]
    reports = [v.report for split in ("train", "valid") for v in volumes[split]]
    distinct = sorted(set(reports))
    sample = set(random.Random(0).sample(distinct, min(max_reports, len(distinct))))
    sampled = [r for r in reports if r in sample]
    text = text_stats(sampled, tag_unique_reports(sampled))
    text["unique_reports"] = len(distinct)
    stacked = {
        s: {k: np.stack([v.visual[k] for v in volumes[s]]) for k in ("whole_ct", *ORGAN_SLOTS)}
        for s in ("train", "valid")
    }
    summary = {
        "counts": checked["counts"],
        "text": text,
        "top2_variance_share": round(top2_variance_share(stacked["train"]["whole_ct"]), 4),
        "whole_key": whole_key,
        "organ_probe_auc": {},
    }
    if all(labels[s] is not None for s in ("train", "valid")):
        keep = {s: [i for i, v in enumerate(volumes[s]) if v.volume_id in labels[s].index] for s in labels}
        y = {s: labels[s].loc[[volumes[s][i].volume_id for i in keep[s]]].to_numpy() for s in labels}
        x = {s: {k: a[keep[s]] for k, a in stacked[s].items()} for s in stacked}
        summary["organ_probe_auc"] = organ_probe_table(
            x["train"]["whole_ct"], x["train"], y["train"], x["valid"]["whole_ct"], x["valid"], y["valid"]
        )
    return summary


def _cohort(data: dict[str, Any], force: bool) -> dict[str, Any] | None:
    """Step 1: ``data=demo``'s cohort files (its own ledger skips them when current); other sources are the
    user's files, read as they are (None)."""
    if not data.get("generator"):
        return None
    from adaragct.synthetic.writer import write_demo

    log.info("[1/5] writing the demo cohort")
    return write_demo(data, force=force)


def _summary(
    cfg: DictConfig, checked: dict[str, Any], inputs: str, ledger: Any, cohort: dict | None
) -> tuple:
    """Step 5: ``summary.json``, recomputed only when the data changed; returns (summary, status)."""
    from adaragct.io import read_json, write_json

    path = Path(cfg.data.work_dir) / "summary.json"
    if ledger.is_current("summary", path, inputs):
        return read_json(path), "up to date"
    log.info("[5/5] summary (counts, text variety, bottleneck, organ probes)")
    summary = dataset_summary(checked, cfg.data.whole_key)
    if cohort is not None:
        summary.update(label_text=cohort["label_text"], generator=cohort["generator"])
    write_json(path, summary)
    ledger.record("summary", path, inputs)
    return summary, "written"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Prepare ``cfg.data`` (the module docstring's steps); returns the summary dict (also written as
    ``<data.work_dir>/summary.json``)."""
    from adaragct.data.validate import check_dataset
    from adaragct.ledger import Ledger, fingerprint

    data = OmegaConf.to_container(cfg.data, resolve=True)
    prologue(cfg, "prepare")
    force, status = bool(cfg.get("force", False)), {}
    # 1. the demo cohort's files
    cohort = _cohort(data, force)
    if cohort is not None:
        status["cohort"] = "up to date" if cohort["skipped"] else "written"
    # 2. validate every input file and the ids across them
    log.info("[2/5] validating the %s files", data["name"])
    checked = check_dataset(data, OmegaConf.to_container(cfg.model.visual_dims, resolve=True))
    status["validate"] = "ok"
    # 3-4. model=tiny's tokenizer and pretrained LM, from the training reports
    ledger = Ledger(Path(data["work_dir"]) / "prepare_state.json", force=force)
    texts = _train_texts(cfg, checked)
    status["tokenizer"] = _tokenizer(cfg, texts, ledger)
    status[f"lm_{cfg.model.name}"] = _tiny_lm(cfg, _lm_documents(cfg, checked, texts), ledger)
    # 5. summary
    volume_ids = [v.volume_id for s in ("train", "valid") for v in checked["volumes"][s]]
    inputs = fingerprint(volume_ids, texts, cohort and cohort["inputs"])
    summary, status["summary"] = _summary(cfg, checked, inputs, ledger, cohort)
    # what later stages key their own skip logic on: the data, the tokenizer and the tiny LM as prepared
    summary = {
        **summary,
        "status": status,
        "skipped": all(s in ("ok", "up to date") or s.startswith("skipped") for s in status.values()),
        "fingerprint": fingerprint(
            inputs, *(ledger.entry(k) and ledger.sha256(k) for k in ("tokenizer", f"lm_{cfg.model.name}"))
        ),
    }
    _print(summary, data)
    return summary


def _print(summary: dict[str, Any], data: dict[str, Any]) -> None:
    print(format_summary(summary))
    print(f"prepare data={data['name']}:")
    for step, state in summary["status"].items():
        print(f"  {step:<10} {state}")
    print(f"  {'tokenizer_dir':<14} {data['tokenizer_dir']}")
    print(f"  {'summary':<14} {Path(data['work_dir']) / 'summary.json'}")


main = hydra_app("prepare", run)


if __name__ == "__main__":
    main()
