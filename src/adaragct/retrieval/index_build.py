"""The index stage's steps, one method each, over a dataset config (docs/formats.md#release-bundle, docs/method.md#retrieval); see :mod:`adaragct.apps.index`.

Each retrieval piece is either the data's own (``data.precomputed``: the release bundle's files, validated and
used as they are) or built under ``data.retrieval_dir``; :class:`IndexBuild` records which in the ledger
``index_state.json``, and skips a piece whose inputs did not change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from adaragct.data.index_files import INDEX_LEDGER
from adaragct.ledger import Ledger

log = logging.getLogger(__name__)

RELEASE = "release"
BUILT = "built"
SPOT_CHECK_SENTENCES = 32
SPOT_CHECK_MIN_COSINE = 0.99


class IndexBuild:
    """One run of the index stage: the config, the ledger, and what each step produced."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.data = cfg, cfg.data
        self.progress = bool(cfg.index.progress)
        self.out_dir = Path(cfg.data.retrieval_dir)
        self.ledger = Ledger(self.out_dir / INDEX_LEDGER, force=bool(cfg.index.force))
        self.status: dict[str, str] = {}
        self.paths: dict[str, Path] = {}

    # ---------------------------------------------------------------------------------------------- helpers
    def release_file(self, piece: str) -> Path | None:
        """The release's file of ``piece`` when ``data.precomputed`` names one that exists."""
        path = (self.data.get("precomputed") or {}).get(piece)
        if not path:
            return None
        if not Path(path).is_file():
            log.info("%s: no release file at %s, building it", piece, path)
            return None
        return Path(path)

    def use_release(self, piece: str, path: Path, read: Any, note: Any = None) -> Any:
        """Validate the release's file with ``read`` and record it as the piece's file; returns what was read.

        ``note(value)`` adds a remark to the log line (e.g. how many volumes a context file covers).
        """
        from adaragct.ledger import fingerprint

        inputs = fingerprint(RELEASE, str(path))
        current = self.ledger.is_current(piece, path, inputs)
        value = read(path)
        if not current:
            self.ledger.record(piece, path, inputs, source=RELEASE)
        remark = f"; {note(value)}" if note else ""
        self.done(piece, path, f"{'up to date' if current else 'used as is'} (release{remark})")
        return value

    def build(self, piece: str, inputs: str, write: Any, why: str = "") -> Path:
        """Write ``piece`` with ``write(path)`` unless the ledger says it is current; returns the path."""
        from adaragct.data.index_files import built_path

        count = self.cfg.neighbours.k if piece == "neighbours" else self.cfg.contexts.top_k
        path = built_path(self.data, piece, count)
        if self.ledger.is_current(piece, path, inputs):
            self.done(piece, path, "up to date")
            return path
        extra = write(path)
        self.ledger.record(piece, path, inputs, source=BUILT)
        self.done(piece, path, f"built{f' ({extra})' if extra else ''}{f'; {why}' if why else ''}")
        return path

    def done(self, piece: str, path: Path, status: str) -> None:
        self.paths[piece], self.status[piece] = path, status
        log.info("%-19s %s  %s", piece, status, path)

    # ------------------------------------------------------------------------------------------------- steps
    def read_inputs(self) -> None:
        """1. reports of both splits (CSV, or the bundle's organ-reports JSON) and the embeddings, aligned."""
        from adaragct.data.datasets import split_reports
        from adaragct.formats.embeddings import VISD_BOOST_KEYS, align_volumes, read_embeddings_npz

        data, other = self.data, self.cfg.neighbours.other_source
        self.reports = {s: split_reports(data, s) for s in ("train", "valid")}
        self.emb_files = {
            s: [data.organ_embeddings[s]] + ([data.whole_embeddings[s]] if other == "whole" else [])
            for s in ("train", "valid")
        }
        self.embeddings = {
            s: [
                read_embeddings_npz(p, VISD_BOOST_KEYS if i == 0 else [data.whole_key])
                for i, p in enumerate(files)
            ]
            for s, files in self.emb_files.items()
        }
        self.ids = {
            s: align_volumes(sorted(self.reports[s]), self.embeddings[s], data.missing_embedding)
            for s in ("train", "valid")
        }

    def database(self) -> None:
        """2. the training-sentence database: the release's, or split and tagged from the training reports."""
        from adaragct.formats.sentence_db import read_sentence_database, write_sentence_database
        from adaragct.ledger import code_fingerprint, fingerprint
        from adaragct.retrieval import database as db

        release = self.release_file("database")
        if release is not None:
            records = self.use_release("database", release, read_sentence_database)
            self._check_database_volumes(release, records)
            return
        train = self.ids["train"]
        inputs = fingerprint([self.reports["train"][v] for v in train], train, code_fingerprint(db.__name__))

        def write(path: Path) -> None:
            tagged = db.tag_reports(
                {v: self.reports["train"][v] for v in train}, self.progress, "tag train sentences"
            )
            write_sentence_database(path, db.database_records(tagged))

        self.build("database", inputs, write)

    def _check_database_volumes(self, path: Path, records: list) -> None:
        volumes = {r.volume_id for r in records}
        extra = volumes - set(self.ids["train"])
        if extra:
            log.warning(
                "%s: %d of %d volumes have no training report/embedding (e.g. %s); their sentences are in the bank "
                "but no image neighbour leads to them",
                path,
                len(extra),
                len(volumes),
                sorted(extra)[:3],
            )

    def sentence_embeddings(self) -> None:
        """3. embeddings of the database: the release's when the configured encoder made them, else encoded."""
        from hydra.utils import instantiate

        from adaragct.formats.sentence_db import (
            read_sentence_database,
            read_sentence_embeddings,
            write_sentence_embeddings,
        )
        from adaragct.ledger import fingerprint
        from adaragct.retrieval.cache import CachedEncoder

        log.info("encoder <%s>", self.cfg.encoder._target_)
        self.encoder = CachedEncoder(instantiate(self.cfg.encoder), self.cfg.paths.cache_dir)
        release = (
            self.release_file("embeddings") if self.ledger.entry("database")["source"] == RELEASE else None
        )
        why = ""
        if release is not None:
            why = self._release_embeddings_unusable(release)
            if not why:
                self.use_release(
                    "embeddings", release, lambda p: read_sentence_embeddings(p, self.encoder.dim)
                )
                return
            log.warning("embeddings: %s", why)
        inputs = fingerprint(self.ledger.sha256("database"), self.encoder.encoder_id)

        def write(path: Path) -> str:
            records = read_sentence_database(self.paths["database"])
            write_sentence_embeddings(path, records, self.encoder.encode([r.text for r in records]))
            return f"{self.encoder.n_encoded} encoded, {self.encoder.n_cached} cached"

        self.build("embeddings", inputs, write, why)

    def _release_embeddings_unusable(self, path: Path) -> str:
        """Why the release's sentence embeddings cannot serve the configured encoder ('' when they can)."""
        import numpy as np

        from adaragct.errors import DataError
        from adaragct.retrieval.bank import read_corpus
        from adaragct.retrieval.encoders import l2_normalise

        records, emb = read_corpus(self.paths["database"], path)  # every database sentence has a row
        if emb.shape[1] != self.encoder.dim:
            return (
                f"the release's sentence embeddings are {emb.shape[1]}-d, the configured encoder "
                f"{self.encoder.encoder_id} gives {self.encoder.dim}-d (probes must be encoded by the encoder "
                "that made the bank): re-encoded with it"
            )
        if self.cfg.index.release_embeddings == "rebuild":
            return "index.release_embeddings=rebuild: re-encoded with the configured encoder"
        picks = np.random.default_rng(0).choice(
            len(records), min(SPOT_CHECK_SENTENCES, len(records)), replace=False
        )
        picks.sort()
        ours = self.encoder.encoder.encode([records[i].text for i in picks])
        cosine = float(np.mean(np.sum(ours * l2_normalise(emb[picks]), axis=1)))
        if cosine < SPOT_CHECK_MIN_COSINE:
            raise DataError(
                path,
                "array 'embeddings'",
                f"not made by the configured encoder {self.encoder.encoder_id} (mean cosine {cosine:.3f} between "
                f"stored and re-encoded embeddings of {len(picks)} sentences)",
                "configure the encoder that made them (the release's: encoder=visd_boost, ViSD-Boost's text tower "
                "from best_e2e.pth, see docs/formats.md#release-bundle), or set index.release_embeddings=rebuild to re-encode the database",
            )
        return ""

    def bank(self) -> None:
        """4. the per-organ FAISS bank over the database (reopened when its manifest still matches)."""
        from adaragct.data.index_files import BANK_DIR
        from adaragct.errors import DataError
        from adaragct.retrieval.bank import IndexConfig, SentenceBank, read_corpus, read_manifest

        self.records, emb = read_corpus(
            self.paths["database"], self.paths["embeddings"], dim=self.encoder.dim
        )
        bank_dir, enc = self.out_dir / BANK_DIR, self.encoder.encoder_id
        config = IndexConfig(**OmegaConf.to_container(self.cfg.bank, resolve=True))
        if not self.cfg.index.force:
            try:
                if read_manifest(bank_dir)["index"] == config.structure():
                    self.bank_ = SentenceBank.load(
                        bank_dir, self.records, emb, encoder_id=enc, dim=emb.shape[1], device=config.device
                    )
                    self.done("bank", bank_dir, "up to date")
                    return
                log.info("bank settings changed: rebuilding %s", bank_dir)
            except DataError as err:
                log.info("rebuilding the sentence bank: %s", err)
        self.bank_ = SentenceBank.build(self.records, emb, enc, config)
        self.bank_.save(bank_dir)
        self.done("bank", bank_dir, "built")

    def contexts_to_build(self) -> list[str]:
        return [p for p in ("oracle_contexts", "retrieved_contexts") if self.release_file(p) is None]

    def neighbours(self) -> None:
        """5. image neighbours: the release's when they cover every volume that needs them, else built."""
        from adaragct.formats.neighbours import read_image_neighbours

        needed = set(self.ids["valid"]) | (set(self.ids["train"]) if self.contexts_to_build() else set())
        release, why = self.release_file("neighbours"), ""
        if release is not None:
            found = read_image_neighbours(release)
            missing_valid = [v for v in self.ids["valid"] if v not in found]
            if missing_valid:
                self._neighbours_error(release, missing_valid)
            if needed <= set(found):
                self.neighbour_ids = self.use_release("neighbours", release, read_image_neighbours)
                return
            why = "the release's neighbours cover the validation volumes only; the contexts to build need the training volumes' too"
            log.info("neighbours: %s", why)
        self._build_neighbours(why)

    def _neighbours_error(self, path: Path, missing: list[str]) -> None:
        from adaragct.errors import DataError

        raise DataError(
            path,
            "volume ids",
            f"{len(missing)} validation volumes have no image neighbours, first: {missing[:3]}",
            "use the neighbours file of the same release, or drop data.precomputed.neighbours to build them "
            "from the organ embeddings",
        )

    def _build_neighbours(self, why: str) -> None:
        from adaragct.formats.embeddings import VISD_BOOST_KEYS
        from adaragct.formats.neighbours import read_image_neighbours, write_image_neighbours
        from adaragct.ledger import code_fingerprint, fingerprint, sha256_file
        from adaragct.retrieval import neighbours as nb
        from adaragct.retrieval.neighbours import image_neighbours, organ_vectors, training_means

        settings, other = (
            OmegaConf.to_container(self.cfg.neighbours, resolve=True),
            self.cfg.neighbours.other_source,
        )
        files = [sha256_file(p) for split in self.emb_files.values() for p in split]
        inputs = fingerprint(
            files, self.ids["train"], self.ids["valid"], settings, code_fingerprint(nb.__name__)
        )

        def arrays(split: str) -> tuple[dict, Any]:
            ids, loaded = self.ids[split], self.embeddings[split]
            whole = loaded[1].rows(self.data.whole_key, ids) if other == "whole" else None
            return {k: loaded[0].rows(k, ids) for k in VISD_BOOST_KEYS}, whole

        def write(path: Path) -> None:
            means = training_means(*arrays("train")) if self.cfg.neighbours.center else None
            vectors = {
                s: organ_vectors(*arrays(s), other_source=other, means=means) for s in ("train", "valid")
            }
            train, k = self.ids["train"], self.cfg.neighbours.k
            found = image_neighbours(
                self.ids["valid"], vectors["valid"], train, vectors["train"], k, self.progress
            )
            found.update(image_neighbours(train, vectors["train"], train, vectors["train"], k, self.progress))
            write_image_neighbours(path, found)

        path = self.build("neighbours", inputs, write, why)
        self.neighbour_ids = read_image_neighbours(path)

    def contexts(self) -> None:
        """6-7. oracle and retrieved contexts: the release's files, or precomputed from the bank."""
        from adaragct.formats.contexts import read_contexts
        from adaragct.retrieval.retrievers import build_retriever

        self.retriever = build_retriever(
            self.cfg.retrieval, bank=self.bank_, encoder=self.encoder, neighbours=self.neighbour_ids
        )
        if self.retriever.name not in ("adaptive", "text2text"):
            raise ValueError(
                f"retrieved contexts need retrieval=adaptive or text2text, not {self.retriever.name!r}"
            )
        for piece in ("oracle_contexts", "retrieved_contexts"):
            release = self.release_file(piece)
            if release is not None:
                self.use_release(piece, release, read_contexts, self._coverage)
            else:
                self._build_contexts(piece)

    def _coverage(self, contexts: dict) -> str:
        return ", ".join(
            f"{sum(v in contexts for v in self.ids[s])}/{len(self.ids[s])} {s} volumes"
            for s in ("train", "valid")
        )

    def queries(self) -> dict:
        """Context queries: training sentences from the database, validation sentences tagged from the reports."""
        from adaragct.retrieval import contexts as ctx
        from adaragct.retrieval import database as db

        if not hasattr(self, "queries_"):
            queries = db.query_sentences(self.records)
            queries.update(
                {v: [ctx.QuerySentence(t, o) for t, o, _ in s] for v, s in self.valid_tagged().items()}
            )
            self.queries_ = queries
        return self.queries_

    def valid_tagged(self, limit: int | None = None) -> dict:
        """Validation reports split and tagged (all, or the first ``limit`` volumes); tagged once per run."""
        from adaragct.retrieval import database as db

        ids = self.ids["valid"][:limit] if limit else self.ids["valid"]
        done = getattr(self, "valid_tagged_", {})
        if not set(ids) <= set(done):
            todo = {v: self.reports["valid"][v] for v in ids if v not in done}
            self.valid_tagged_ = {**done, **db.tag_reports(todo, self.progress, "tag valid sentences")}
        return {v: self.valid_tagged_[v] for v in ids}

    def _build_contexts(self, piece: str) -> None:
        from adaragct.formats.contexts import write_contexts
        from adaragct.ledger import code_fingerprint, fingerprint
        from adaragct.retrieval import contexts as ctx
        from adaragct.retrieval import database as db

        valid_refs = [self.reports["valid"][v] for v in self.ids["valid"]]
        embeddings, neighbours = self.ledger.sha256("embeddings"), self.ledger.sha256("neighbours")
        # the code: the contexts, the tagging of the validation queries, the configured retriever's module
        code = code_fingerprint(ctx.__name__, db.__name__, type(self.retriever).__module__)
        base = [self.bank_.encoder_id, embeddings, neighbours, valid_refs, code]
        top_k, settings = self.cfg.contexts.top_k, OmegaConf.to_container(self.cfg.contexts, resolve=True)
        if piece == "oracle_contexts":
            inputs = fingerprint(base, settings)

            def write(path: Path) -> None:
                found = ctx.oracle_contexts(
                    self.queries(),
                    self.encoder,
                    self.bank_,
                    self.neighbour_ids,
                    top_k,
                    self.cfg.contexts.n_neighbours,
                    self.progress,
                )
                write_contexts(path, found)
        else:
            inputs = fingerprint(base, top_k, OmegaConf.to_container(self.cfg.retrieval, resolve=True))

            def write(path: Path) -> None:
                self.encoder.encode(
                    [q.text for qs in self.queries().values() for q in qs]
                )  # cache every probe
                write_contexts(
                    path,
                    ctx.retrieved_contexts(self.queries(), self.retriever, self.bank_, top_k, self.progress),
                )

        self.build(piece, inputs, write)
