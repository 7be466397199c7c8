"""Index stage: build everything retrieval needs for a dataset, in the AdaRAG-CT release layout (SPEC 2.2, 3).

    python -m adaragct.index data=demo

Steps (each skipped when its output is already built from the same inputs, see ``index_state.json``):
    1. read reports and organ embeddings (volumes without an embedding: error, or skipped by config)
    2. sentence database of the training reports   -> retrieval/database/train_sentences_multi_label.json
    3. sentence embeddings (cached per encoder)     -> retrieval/database/train_sentence_embeds.npz
    4. per-organ FAISS sentence bank + manifest     -> retrieval/bank/
    5. image neighbours, valid and train volumes    -> retrieval/img2img_top20.json
    6. oracle contexts (train + valid sentences)    -> data.oracle_contexts
    7. retrieved contexts (cfg.retrieval)           -> data.retrieved_contexts
    8. retrieval-quality figures on the valid split, then a summary of what was written where.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from adaragct.retrieval.runtime import BANK_DIR, NEIGHBOURS_JSON

log = logging.getLogger(__name__)


def _sha(path: str | Path) -> str:
    from adaragct.retrieval.bank import sha256_file

    return sha256_file(path)


def _build_bank(
    cfg: DictConfig, bank_dir: Path, records: list, emb: Any, encoder_id: str, force: bool
) -> tuple[Any, str]:
    """Reopen the bank when its manifest matches this corpus, encoder and index settings; else rebuild it."""
    from adaragct.errors import DataError
    from adaragct.retrieval.bank import IndexConfig, SentenceBank, read_manifest

    config = IndexConfig(**OmegaConf.to_container(cfg.bank, resolve=True))
    if not force:
        try:
            if read_manifest(bank_dir)["index"] == config.structure():
                return SentenceBank.load(
                    bank_dir, records, emb, encoder_id=encoder_id, dim=emb.shape[1], device=config.device
                ), "up to date"
            log.info("bank settings changed: rebuilding %s", bank_dir)
        except DataError as err:
            log.info("rebuilding the sentence bank: %s", err)
    bank = SentenceBank.build(records, emb, encoder_id, config)
    bank.save(bank_dir)
    return bank, "built"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the index stage for ``cfg.data``; returns the summary (paths, counts, quality figures)."""
    from hydra.utils import instantiate

    import adaragct.data.sentences as sentences
    from adaragct.data.bundle import (
        VISD_BOOST_KEYS,
        align_volumes,
        read_embeddings_npz,
        read_image_neighbours,
        read_sentence_database,
    )
    from adaragct.data.ctrate import read_reports_csv
    from adaragct.io import write_json
    from adaragct.retrieval import contexts as ctx
    from adaragct.retrieval import database as db
    from adaragct.retrieval.bank import read_corpus
    from adaragct.retrieval.cache import CachedEncoder
    from adaragct.retrieval.neighbours import image_neighbours, organ_vectors, training_means
    from adaragct.retrieval.retrievers import build_retriever
    from adaragct.retrieval.state import IndexState, fingerprint

    data, progress = cfg.data, bool(cfg.index.progress)
    out_dir = Path(data.retrieval_dir)
    state = IndexState(out_dir / "index_state.json", force=bool(cfg.index.force))
    status: dict[str, str] = {}
    tagger = _sha(sentences.__file__)  # a change of the sentence tagger rebuilds what depends on it

    # 1. reports and embeddings ------------------------------------------------------------------------------
    train_reports = read_reports_csv(data.train_reports_csv)["report"]
    valid_reports = read_reports_csv(data.valid_reports_csv)["report"]
    other = cfg.neighbours.other_source
    emb_files = {
        s: [data.organ_embeddings[s]] + ([data.whole_embeddings[s]] if other == "whole" else [])
        for s in ("train", "valid")
    }
    loaded = {
        s: [
            read_embeddings_npz(p, VISD_BOOST_KEYS if i == 0 else [data.whole_key])
            for i, p in enumerate(files)
        ]
        for s, files in emb_files.items()
    }
    train_ids = align_volumes(sorted(train_reports.index), loaded["train"], data.missing_embedding)
    valid_ids = align_volumes(sorted(valid_reports.index), loaded["valid"], data.missing_embedding)

    # 2. sentence database -----------------------------------------------------------------------------------
    db_json, db_npz = out_dir / db.DATABASE_JSON, out_dir / db.DATABASE_NPZ
    inputs = fingerprint(_sha(data.train_reports_csv), train_ids, tagger)
    if state.is_current("database", db_json, inputs):
        status["database"] = "up to date"
    else:
        tagged = db.tag_reports({v: train_reports[v] for v in train_ids}, progress, "tag train sentences")
        db.write_database(db_json, db.database_records(tagged))
        state.record("database", db_json, inputs)
        status["database"] = "built"

    # 3. sentence embeddings ----------------------------------------------------------------------------------
    log.info("encoder <%s>", cfg.encoder._target_)
    encoder = CachedEncoder(instantiate(cfg.encoder), cfg.paths.cache_dir)
    inputs = fingerprint(state.sha256("database"), encoder.encoder_id)
    if state.is_current("embeddings", db_npz, inputs):
        status["embeddings"] = "up to date"
    else:
        records = read_sentence_database(db_json)
        db.write_sentence_embeddings(db_npz, records, encoder.encode([r.text for r in records]))
        state.record("embeddings", db_npz, inputs)
        status["embeddings"] = f"built ({encoder.n_encoded} encoded, {encoder.n_cached} cached)"
    records, emb = read_corpus(db_json, db_npz, dim=encoder.dim)  # read back through the release readers

    # 4. sentence bank ----------------------------------------------------------------------------------------
    bank, status["bank"] = _build_bank(
        cfg, out_dir / BANK_DIR, records, emb, encoder.encoder_id, bool(cfg.index.force)
    )

    # 5. image neighbours -------------------------------------------------------------------------------------
    nb_path = out_dir / NEIGHBOURS_JSON
    inputs = fingerprint(
        [_sha(p) for files in emb_files.values() for p in files],
        train_ids,
        valid_ids,
        OmegaConf.to_container(cfg.neighbours, resolve=True),
    )
    if state.is_current("neighbours", nb_path, inputs):
        status["neighbours"] = "up to date"
    else:

        def arrays(split: str, ids: list[str]) -> tuple[dict, Any]:
            whole = loaded[split][1].rows(data.whole_key, ids) if other == "whole" else None
            return {k: loaded[split][0].rows(k, ids) for k in VISD_BOOST_KEYS}, whole

        means = training_means(*arrays("train", train_ids)) if cfg.neighbours.center else None

        def vectors(split: str, ids: list[str]) -> dict:
            return organ_vectors(*arrays(split, ids), other_source=other, means=means)

        train_vec = vectors("train", train_ids)
        found = image_neighbours(
            valid_ids, vectors("valid", valid_ids), train_ids, train_vec, cfg.neighbours.k, progress
        )
        found.update(image_neighbours(train_ids, train_vec, train_ids, train_vec, cfg.neighbours.k, progress))
        write_json(nb_path, found, indent=None)
        state.record("neighbours", nb_path, inputs)
        status["neighbours"] = "built"
    neighbours = read_image_neighbours(nb_path)

    # 6-7. contexts (train sentences from the database, valid sentences tagged from their reports) ------------
    valid_tagged = db.tag_reports({v: valid_reports[v] for v in valid_ids}, progress, "tag valid sentences")
    queries = db.query_sentences(records)
    queries.update({v: [ctx.QuerySentence(t, o) for t, o, _ in s] for v, s in valid_tagged.items()})
    base = [bank.encoder_id, _sha(db_npz), state.sha256("neighbours"), _sha(data.valid_reports_csv), tagger]
    oracle_path = Path(data.oracle_contexts)
    inputs = fingerprint(base, OmegaConf.to_container(cfg.contexts, resolve=True))
    if state.is_current("oracle_contexts", oracle_path, inputs):
        status["oracle_contexts"] = "up to date"
    else:
        oracle = ctx.oracle_contexts(
            queries, encoder, bank, neighbours, cfg.contexts.top_k, cfg.contexts.n_neighbours, progress
        )
        ctx.write_contexts(oracle_path, oracle)
        state.record("oracle_contexts", oracle_path, inputs)
        status["oracle_contexts"] = "built"
    retriever = build_retriever(cfg.retrieval, bank=bank, encoder=encoder, neighbours=neighbours)
    if retriever.name not in ("adaptive", "text2text"):
        raise ValueError(f"retrieved contexts need retrieval=adaptive or text2text, not {retriever.name!r}")
    retrieved_path = Path(data.retrieved_contexts)
    inputs = fingerprint(base, cfg.contexts.top_k, OmegaConf.to_container(cfg.retrieval, resolve=True))
    if state.is_current("retrieved_contexts", retrieved_path, inputs):
        status["retrieved_contexts"] = "up to date"
    else:
        encoder.encode([q.text for qs in queries.values() for q in qs])  # probes: all cached after this
        ctx.write_contexts(
            retrieved_path, ctx.retrieved_contexts(queries, retriever, bank, cfg.contexts.top_k, progress)
        )
        state.record("retrieved_contexts", retrieved_path, inputs)
        status["retrieved_contexts"] = "built"

    # 8. quality and summary ----------------------------------------------------------------------------------
    summary = {
        "status": status,
        "encoder_id": encoder.encoder_id,
        "dim": encoder.dim,
        "train_volumes": len(train_ids),
        "valid_volumes": len(valid_ids),
        "sentences": len(records),
        "organ_counts": {o: bank.count(o) for o in bank.partitions},
        "paths": {
            "database": str(db_json),
            "embeddings": str(db_npz),
            "bank": str(out_dir / BANK_DIR),
            "neighbours": str(nb_path),
            "oracle_contexts": str(oracle_path),
            "retrieved_contexts": str(retrieved_path),
        },
    }
    if cfg.index.quality:
        summary["quality"] = _quality(cfg, neighbours, valid_tagged, bank, retriever)
    _print_summary(summary)
    return summary


def _quality(
    cfg: DictConfig, neighbours: dict, valid_tagged: dict, bank: Any, retriever: Any
) -> dict[str, Any]:
    """Neighbour finding agreement vs random, and precision@3 of the retriever with ground-truth probes."""
    from adaragct.data.ctrate import read_labels_csv
    from adaragct.retrieval.quality import adaptive_precision, neighbour_finding_agreement

    out: dict[str, Any] = {}
    data = cfg.data
    if "train_labels_csv" in data and Path(data.train_labels_csv).is_file():
        agreement = neighbour_finding_agreement(
            neighbours, read_labels_csv(data.valid_labels_csv), read_labels_csv(data.train_labels_csv)
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
    volumes = sorted(valid_tagged)[: cfg.index.quality_max_volumes]
    precision = adaptive_precision(
        {v: [(t, n) for t, _, n in valid_tagged[v]] for v in volumes}, retriever, bank, k=cfg.contexts.top_k
    )
    out["retrieval"] = {"retriever": retriever.name, **vars(precision)}
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    """Plain lines (no table): paths stay whole and copyable at any terminal width."""
    lines = [
        f"index: {summary['train_volumes']} train / {summary['valid_volumes']} valid volumes, "
        f"{summary['sentences']} sentences, encoder {summary['encoder_id']} ({summary['dim']}-d)"
    ]
    for key, status in summary["status"].items():
        lines.append(f"  {key:<19} {status:<36} {summary['paths'][key]}")
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
            f"empty): precision@3 normal/abnormal flag {q['flag_precision']:.3f} (random same-organ "
            f"{q['random_flag_precision']:.3f}), flag + finding {q['finding_precision']:.3f} "
            f"(random {q['random_finding_precision']:.3f})"
        )
    print("\n".join(lines))


@hydra.main(version_base="1.3", config_path="../../conf", config_name="index")
def main(cfg: DictConfig) -> None:
    """Console entry point: ``python -m adaragct.index data=demo``."""
    run(cfg)


if __name__ == "__main__":
    main()
