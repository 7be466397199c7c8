"""Oracle and retrieved contexts: same-organ neighbour sentences, own patient excluded, release layout."""

from __future__ import annotations

from pathlib import Path

from adaragct.formats.contexts import context_key, read_contexts, write_contexts
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.contexts import QuerySentence, oracle_contexts, retrieved_contexts
from adaragct.retrieval.database import query_sentences
from adaragct.retrieval.retrievers import AdaptiveRetriever

ORGANS5 = ("lung", "heart", "esophagus", "aorta", "other")


def _neighbours(vids: list[str], order: list[str]) -> dict:
    return {v: {o: [n for n in order if n.split("_")[1] != v.split("_")[1]] for o in ORGANS5} for v in vids}


def test_oracle_contexts_are_same_organ_neighbour_sentences_without_own_patient(
    tmp_path: Path, corpus_embeddings, minilm
) -> None:
    records, emb = corpus_embeddings
    bank = SentenceBank.build(records, emb, minilm.encoder_id)
    queries = query_sentences(records)
    vids = sorted(queries)
    # even if a neighbours file wrongly listed the sibling reconstruction, it must not come back
    neighbours = {v: {o: [n for n in vids if n != v] for o in ORGANS5} for v in vids}
    oracle = oracle_contexts(queries, minilm, bank, neighbours, top_k=3, progress=False)
    by_id = {r.sentence_id: r for r in records}
    for vid, entries in oracle.items():
        for entry in entries:
            query = next(q for q in queries[vid] if q.text == entry["query_sentence"]["text"])
            got = [by_id[r["sentence_id"]] for r in entry["retrieved"]]
            assert 1 <= len(got) <= 3
            assert all(r.volume_id.split("_")[1] != vid.split("_")[1] for r in got)  # no own patient
            assert all(set(r.organs) & set(query.organs) for r in got)  # same organ
            assert len({context_key(r.text) for r in got}) == len(got)
    emph = oracle["train_1_a_1"][0]["retrieved"]
    assert emph[0]["text"] == "Centrilobular emphysema is present in the lungs."
    # the sole esophagus sentence has no other esophagus sentence to retrieve: no entry rather than an empty one
    assert all(e["query_sentence"]["text"] != "Hiatal hernia is seen." for e in oracle.get("train_3_a_1", []))
    write_contexts(tmp_path / "oracle.jsonl", oracle)
    first = (tmp_path / "oracle.jsonl").read_bytes()
    write_contexts(
        tmp_path / "oracle.jsonl", oracle_contexts(queries, minilm, bank, neighbours, top_k=3, progress=False)
    )
    assert (tmp_path / "oracle.jsonl").read_bytes() == first  # deterministic
    back = read_contexts(tmp_path / "oracle.jsonl")
    assert back["train_1_a_1"]["mild emphysema in both upper lobes"][0] == emph[0]["text"]


def test_retrieved_contexts_match_the_retriever(tmp_path: Path, corpus_embeddings, minilm) -> None:
    records, emb = corpus_embeddings
    bank = SentenceBank.build(records, emb, minilm.encoder_id)
    vids = sorted({r.volume_id for r in records})
    retriever = AdaptiveRetriever(bank, minilm, _neighbours(["valid_9_a_1"], vids))
    queries = {
        "valid_9_a_1": [
            QuerySentence("The heart is enlarged.", ("heart",)),
            QuerySentence("Emphysema in both lungs.", ("lung",)),
        ]
    }
    contexts = retrieved_contexts(queries, retriever, bank, top_k=2, progress=False)
    texts = [[r["text"] for r in e["retrieved"]] for e in contexts["valid_9_a_1"]]
    assert texts[0][0] == "The heart is enlarged." and len(texts[0]) == 2
    assert any("emphysema" in t.lower() for t in texts[1])
    write_contexts(tmp_path / "r.jsonl", contexts)
    assert read_contexts(tmp_path / "r.jsonl")["valid_9_a_1"]["the heart is enlarged"] == texts[0]
