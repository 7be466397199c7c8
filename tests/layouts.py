"""Small datasets in the layouts users bring, written by the tests from our own generator's sentences.

* :func:`write_release_bundle`: the AdaRAG-CT release bundle (docs/formats.md#release-bundle) with the release's quirks: context files
  that are ONE JSON object despite the ``.jsonl`` name, ``.nii.gz`` ids in the ViSD-Boost NPZ and in the sentence
  database, string sentence ids (``"0"``, ``"1"``, ...), three pooled CT-CLIP keys, validation references only in
  ``valid_organ_reports.json``, validation labels only, 256-d sentence embeddings (a projected MiniLM standing in
  for the paper's CXR-BERT), image neighbours of the validation volumes only, by raw (uncentred) cosine. With
  ``object_ids=True`` the id arrays of every NPZ (``sample_ids``, ``sentence_ids``) are object arrays of str, as
  the release's are when written from a pandas column (the release reads them with ``allow_pickle=True``).
* :func:`write_tiny_visd_boost`: a ViSD-Boost E2E checkpoint in the release's key layout around a tiny random BERT
  (the text tower of ``encoder=visd_boost``), and the BERT directory (config + tokenizer) it needs.
* :func:`write_ctrate_layout`: CT-RATE's own folders (reports and labels CSVs) plus the bundle's embeddings, and
  no retrieval piece: the index stage builds them all.

No file here is a mock: the readers, the index, training and inference treat them as they would a user's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import compose_config

PROJECTION_DIM = 256


def small_cohort(n_train: int = 40, n_valid: int = 10, seed: int = 7) -> dict[str, Any]:
    """Train and valid splits of the demo generator at a small size (in memory)."""
    from omegaconf import OmegaConf

    from adaragct.synthetic.generate import generate_cohort

    cfg = compose_config(
        "prepare",
        [
            f"data.generator.n_train_patients={n_train}",
            f"data.generator.n_valid_patients={n_valid}",
            f"data.generator.seed={seed}",
            "paths.output_dir=unused",  # nothing is written: the cohort is drawn in memory
        ],
    )
    return generate_cohort(OmegaConf.to_container(cfg.data.generator))


def write_projection(path: Path, seed: int = 0) -> Path:
    """A seeded (256, 384) linear map: MiniLM through it gives 256-d embeddings like the release's."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, (rng.standard_normal((PROJECTION_DIM, 384)) / np.sqrt(384)).astype(np.float32))
    return path


def tiny_bert_files(folder: Path, words: list[str], **config: Any):
    """A WordPiece tokenizer of ``words`` saved in ``folder``, and the 2-layer, 32-wide BertConfig that fits it."""
    from transformers import BertConfig, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    tokenizer.save_pretrained(folder)
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **config,
    )


def write_tiny_visd_boost(
    root: Path, texts: list[str], seed: int = 0, blip_style: bool = False
) -> tuple[Path, Path, Any, Any]:
    """``root/best_e2e.pth`` + ``root/bert`` (config and WordPiece tokenizer of ``texts``' words, no weights).

    The checkpoint is ``{'model': {'text_encoder.<BERT keys>', 'text_proj.weight'/'bias' (256, 32),
    'image_encoder.*', 'vision_proj.*', 'temp'}, 'epoch': 3}``, as the release's. ``blip_style`` writes what a
    BLIP-style XBert adds or lacks: cross-attention tensors, the ``position_ids`` buffer, no token-type embeddings
    (zeroed in the returned model, so it computes what the checkpoint means). Returns the checkpoint, the BERT
    directory, and the BertModel and Linear whose weights it holds.
    """
    import re

    import torch
    from transformers import BertModel

    bert_dir = root / "bert"
    bert_dir.mkdir(parents=True, exist_ok=True)
    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())})
    # large random weights: sentences get clearly different CLS states
    config = tiny_bert_files(bert_dir, words, initializer_range=0.5)
    config.save_pretrained(bert_dir)  # config and tokenizer only: the weights are the checkpoint's
    torch.manual_seed(seed)
    bert, proj = BertModel(config, add_pooling_layer=False).eval(), torch.nn.Linear(32, PROJECTION_DIM).eval()
    text = dict(bert.state_dict())
    if blip_style:
        with torch.no_grad():
            bert.embeddings.token_type_embeddings.weight.zero_()
        del text["embeddings.token_type_embeddings.weight"]
        text["embeddings.position_ids"] = torch.arange(64)[None]
        for layer in range(2):
            text[f"encoder.layer.{layer}.crossattention.self.query.weight"] = torch.randn(32, 32)
    state = {f"text_encoder.{k}": v for k, v in text.items()}
    state.update({f"text_proj.{k}": v for k, v in proj.state_dict().items()})
    state.update(
        {
            "image_encoder.conv.weight": torch.randn(4, 1, 3, 3, 3),
            "vision_proj.weight": torch.randn(PROJECTION_DIM, 4),
            "temp": torch.tensor(0.07),
        }
    )
    checkpoint = root / "best_e2e.pth"
    torch.save({"model": state, "epoch": 3}, checkpoint)
    return checkpoint, bert_dir, bert, proj


def _write_embeddings(root: Path, splits: Mapping[str, Any]) -> None:
    from adaragct.synthetic.writer import write_npz

    for name, split in splits.items():
        ids = np.array(split.volume_ids)
        write_npz(root / f"embeddings/ct_clip/{name}_embeds.npz", {"sample_ids": ids, **split.whole})
        nii = np.array([f"{v}.nii.gz" for v in split.volume_ids])
        write_npz(root / f"embeddings/visd_boost/{name}_embeds.npz", {"sample_ids": nii, **split.organs})


def write_ctrate_layout(root: Path, splits: Mapping[str, Any]) -> tuple[Path, Path]:
    """CT-RATE folders under ``root/ctrate`` and the bundle's embeddings under ``root/bundle``."""
    from adaragct.synthetic.writer import labels_frame, reports_frame, write_csv

    ctrate, bundle = root / "ctrate", root / "bundle"
    for name, csv in (("train", "train_reports.csv"), ("valid", "validation_reports.csv")):
        write_csv(ctrate / "radiology_text_reports" / csv, reports_frame(splits[name]))
        labels = ctrate / "multi_abnormality_labels" / f"{name}_predicted_labels.csv"
        write_csv(labels, labels_frame(splits[name]))
    _write_embeddings(bundle, splits)
    return ctrate, bundle


def _release_database(split: Any, encoder: Any) -> tuple[dict, list, np.ndarray]:
    """The sentence database with string ids and ``.nii.gz`` image ids, its records and embeddings."""
    from adaragct.formats.sentence_db import SentenceRecord
    from adaragct.retrieval import database as db

    reports = dict(zip(split.volume_ids, split.volume_reports(), strict=True))
    ours = db.database_records(db.tag_reports(reports, progress=False))
    records = [SentenceRecord(str(i), r.volume_id, r.text, r.organs, r.normal) for i, r in enumerate(ours)]
    database: dict[str, list[dict]] = {}
    for r in records:
        entry = {"sentence_id": r.sentence_id, "text": r.text, "organs": list(r.organs), "normal": r.normal}
        database.setdefault(f"{r.volume_id}.nii.gz", []).append(entry)
    # rounded through float16: the spot check still agrees (cosine > 0.999), but a re-encode would not give
    # these exact bits, so a test can tell the release's embeddings from recomputed ones
    emb = encoder.encode([r.text for r in records]).astype(np.float16).astype(np.float32)
    return database, records, emb


def _release_contexts(contexts: Mapping[str, list[dict]]) -> dict[str, list[dict]]:
    """Our context entries in the release's form: query text and retrieved texts only."""
    return {
        vid: [
            {
                "query_sentence": {"text": e["query_sentence"]["text"]},
                "retrieved": [{"text": r["text"]} for r in e["retrieved"]],
            }
            for e in entries
        ]
        for vid, entries in contexts.items()
    }


def rewrite_ids_as_objects(root: Path) -> list[Path]:
    """Rewrite the id arrays (``sample_ids``, ``sentence_ids``) of every NPZ under ``root`` as object arrays of
    str, as ``np.savez`` writes a pandas column (pickled inside the ``.npy``); returns the files rewritten."""
    rewritten = []
    for path in sorted(root.rglob("*.npz")):
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        for key in ("sample_ids", "sentence_ids"):
            if key in arrays:
                arrays[key] = np.array([str(s) for s in arrays[key]], dtype=object)
        np.savez(path, **arrays)
        rewritten.append(path)
    return rewritten


def write_release_bundle(
    root: Path, splits: Mapping[str, Any], encoder: Any, object_ids: bool = False
) -> Path:
    """Every file of the release bundle under ``root`` (see the module docstring); returns ``root``."""
    from adaragct.data.sentences import tag_unique_reports
    from adaragct.io import write_json
    from adaragct.retrieval.bank import SentenceBank
    from adaragct.retrieval.contexts import QuerySentence, oracle_contexts
    from adaragct.retrieval.neighbours import image_neighbours, organ_vectors
    from adaragct.synthetic.writer import labels_frame, organ_reports_entries, reports_frame, write_csv

    train, valid = splits["train"], splits["valid"]
    _write_embeddings(root, splits)
    write_csv(root / "annotations/train_reports.csv", reports_frame(train))
    write_csv(root / "annotations/valid_predicted_labels.csv", labels_frame(valid))
    tagged = tag_unique_reports(valid.volume_reports())
    write_json(root / "annotations/valid_organ_reports.json", organ_reports_entries(valid, tagged))
    database, records, emb = _release_database(train, encoder)
    write_json(root / "retrieval/database/train_sentences_multi_label.json", database, indent=None)
    sentence_ids = np.array([r.sentence_id for r in records])
    np.savez(root / "retrieval/database/train_sentence_embeds.npz", embeddings=emb, sentence_ids=sentence_ids)
    # neighbours by raw cosine (the release did not centre); the file holds the validation volumes only
    vectors = {name: organ_vectors(s.organs, s.whole["ct_clip_max"]) for name, s in splits.items()}
    found = image_neighbours(
        valid.volume_ids, vectors["valid"], train.volume_ids, vectors["train"], 20, False
    )
    train_found = image_neighbours(
        train.volume_ids, vectors["train"], train.volume_ids, vectors["train"], 20, False
    )
    write_json(
        root / "retrieval/img2img_top20.json",
        {
            f"{v}.nii.gz": {o: [{"image_id": f"{n['image_id']}.nii.gz"} for n in per[o]] for o in per}
            for v, per in found.items()
        },
    )
    bank = SentenceBank.build(records, emb, encoder.encoder_id)
    queries: dict[str, list] = {}
    for r in records:
        queries.setdefault(r.volume_id, []).append(QuerySentence(r.text, r.organs))
    for vid, report in zip(valid.volume_ids, valid.volume_reports(), strict=True):
        queries[vid] = [QuerySentence(s, t.organs) for s, t in tagged[report]]
    neighbours = {
        v: {o: [n["image_id"] for n in per[o]] for o in per} for v, per in {**found, **train_found}.items()
    }
    for name, n in (("oracle/oracle_context_top3.jsonl", 20), ("retrieval/retrieval_context_top3.jsonl", 5)):
        contexts = oracle_contexts(queries, encoder, bank, neighbours, 3, n, progress=False)
        write_json(root / name, _release_contexts(contexts), indent=None)  # one object, as the release
    if object_ids:
        rewrite_ids_as_objects(root)
    return root


def main() -> None:
    """Write both layouts to a folder, to try the README's commands on them by hand.

    python -m tests.layouts /tmp/fixtures   -> /tmp/fixtures/release/bundle (+ encoder/projection.npy),
                                               /tmp/fixtures/ctrate/{ctrate,bundle}
    """
    import sys

    from adaragct.retrieval.encoders import packaged_minilm

    out = Path(sys.argv[1])
    cohort = small_cohort()
    projection = write_projection(out / "release/encoder/projection.npy")
    write_release_bundle(
        out / "release/bundle", cohort, packaged_minilm(progress=False, projection=projection)
    )
    write_ctrate_layout(out / "ctrate", cohort)
    print(f"release bundle: {out / 'release/bundle'} (sentence embeddings by MiniLM + {projection})")
    print(f"CT-RATE layout: {out / 'ctrate/ctrate'} with embeddings in {out / 'ctrate/bundle'}")


if __name__ == "__main__":
    main()
