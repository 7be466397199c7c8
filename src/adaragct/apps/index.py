"""Index stage: everything retrieval needs for a dataset, in the AdaRAG-CT release layout (docs/formats.md#release-bundle, docs/method.md#retrieval).

    python -m adaragct.index data=demo
    python -m adaragct.index data=adaragct_bundle data.bundle_root=/data/adaragct_bundle

Steps:
    1. read the reports and organ embeddings (volumes without an embedding: error, or skipped by config)
    2. sentence database of the training reports    (release's, or built)  train_sentences_multi_label.json
    3. the database's sentence embeddings           (release's, or built)  train_sentence_embeds.npz
    4. per-organ FAISS sentence bank + manifest     (always built)         bank/
    5. image neighbours                             (release's, or built)  img2img_top20.json
    6. oracle contexts                              (release's, or built)  oracle_context_top{k}.jsonl
    7. retrieved contexts (cfg.retrieval)           (release's, or built)  retrieval_context_top{k}.jsonl
    8. retrieval-quality figures on the valid split, then a summary of what was used or written where.

A piece listed in ``data.precomputed`` (the release bundle's files) is used as it is when the file exists and fits:
the sentence embeddings must come from the configured encoder (same dimension, and a spot check of re-encoded
sentences agrees), the neighbours must cover every volume that needs them. Everything else is built under
``data.retrieval_dir``; ``contexts.top_k`` (k) sets the sentences per context, the built files' names and the
quality figure's precision@k (the release's context files hold 3). The ledger ``index_state.json`` there
records, per piece, the file used or written and its source; later stages find the files through it
(:func:`adaragct.data.index_files.index_file`). Reruns skip every piece that is already done from the same inputs
and code (``index.force=true`` redoes all).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from adaragct.apps._app import hydra_app, prologue

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the index stage for ``cfg.data``; returns the summary (status and path per piece, counts, quality)."""
    prologue(cfg, "index")
    from adaragct.retrieval.index_build import BUILT, IndexBuild

    build = IndexBuild(cfg)
    build.read_inputs()  # 1
    build.database()  # 2
    build.sentence_embeddings()  # 3
    build.bank()  # 4
    build.neighbours()  # 5
    build.contexts()  # 6-7
    summary = {  # 8
        "status": build.status,
        "sources": {
            p: (build.ledger.entry(p) or {}).get("source", BUILT) for p in build.status if p != "bank"
        },
        "encoder_id": build.encoder.encoder_id,
        "dim": build.encoder.dim,
        "train_volumes": len(build.ids["train"]),
        "valid_volumes": len(build.ids["valid"]),
        "sentences": len(build.records),
        "organ_counts": {o: build.bank_.count(o) for o in build.bank_.partitions},
        "paths": {k: str(p) for k, p in build.paths.items()},
    }
    if cfg.index.quality:
        summary["quality"] = _quality(cfg, build)
    _print_summary(summary)
    return summary


def _quality(cfg: DictConfig, build: Any) -> dict[str, Any]:
    """Neighbour finding agreement vs random, and precision@k (``contexts.top_k``) of the retriever with
    ground-truth probes."""
    from adaragct.formats.tables import read_labels_csv
    from adaragct.retrieval.quality import adaptive_precision, neighbour_finding_agreement

    out: dict[str, Any] = {}
    data = cfg.data
    if data.get("train_labels_csv") and Path(data.train_labels_csv).is_file():
        agreement = neighbour_finding_agreement(
            build.neighbour_ids,
            read_labels_csv(data.valid_labels_csv),
            read_labels_csv(data.train_labels_csv),
        )
        out["neighbours"] = {
            "pairs": agreement.pairs,
            "neighbour_share": agreement.neighbour_share,
            "random_share": agreement.random_share,
            "ratio": agreement.ratio,
            "per_organ": agreement.per_organ,
        }
    else:
        log.warning("no training labels CSV (data.train_labels_csv): neighbour quality not measured")
    tagged = build.valid_tagged(cfg.index.quality_max_volumes)
    precision = adaptive_precision(
        {v: [(t, n) for t, _, n in s] for v, s in tagged.items()},
        build.retriever,
        build.bank_,
        k=cfg.contexts.top_k,
    )
    out["retrieval"] = {"retriever": build.retriever.name, "k": cfg.contexts.top_k, **vars(precision)}
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    """Plain lines (no table): paths stay whole and copyable at any terminal width."""
    lines = [
        f"index: {summary['train_volumes']} train / {summary['valid_volumes']} valid volumes, "
        f"{summary['sentences']} sentences, encoder {summary['encoder_id']} ({summary['dim']}-d)"
    ]
    for key, status in summary["status"].items():
        lines.append(f"  {key:<19} {status:<44} {summary['paths'][key]}")
    lines.append(
        "  bank sentences per organ: " + ", ".join(f"{o} {n}" for o, n in summary["organ_counts"].items())
    )
    quality = summary.get("quality", {})
    if "neighbours" in quality:
        q = quality["neighbours"]
        lines.append(
            f"image neighbours, valid volumes ({q['pairs']} volume-organ pairs with a positive finding of the "
            f"organ): neighbours sharing one {q['neighbour_share']:.3f} vs random {q['random_share']:.3f} "
            f"-> ratio {q['ratio']:.2f}"
        )
        lines += [
            f"    {organ:<10} pairs {n:>4}  neighbours {ns:.3f}  random {rs:.3f}  ratio {ns / rs if rs else 0:.2f}"
            for organ, (n, ns, rs) in q["per_organ"].items()
        ]
    if "retrieval" in quality:
        q = quality["retrieval"]
        lines.append(
            f"{q['retriever']} retrieval, ground-truth sentence as probe ({q['probes']} probes, {q['empty']} "
            f"empty): precision@{q['k']} normal/abnormal flag {q['flag_precision']:.3f} (random same-organ "
            f"{q['random_flag_precision']:.3f}), flag + finding {q['finding_precision']:.3f} "
            f"(random {q['random_finding_precision']:.3f})"
        )
    print("\n".join(lines))


main = hydra_app("index", run)


if __name__ == "__main__":
    main()
