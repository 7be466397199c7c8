"""Retrieval benchmark: FAISS exact search vs numpy brute force, per-probe latency, encoder throughput.

    make bench-retrieval          # or: python benchmarks/bench_retrieval.py

Prints one table measured in one run (ratios, not absolute promises; the machine is shared):
    1. exact inner-product top-10 over 200k x 384 for 1000 queries: FAISS IndexFlatIP vs numpy (matmul +
       argpartition in query blocks), same results checked;
    2. the mid-generation case, one probe at a time, at 100k and 1M bank sentences: the adaptive retriever
       (organ routing, neighbour candidates, cosine, MMR; probe encoding excluded) and a whole-bank FAISS search
       (text2text), median over repeated single queries; text2text also with one FAISS thread (on a busy or
       small machine OpenMP threads fight over the cores for a single query);
    3. the packaged MiniLM: sentences/s in batches of 64, and the latency of encoding one probe.
Runs in ~2-3 minutes on 2 CPU cores and needs ~4 GB of memory.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from adaragct.constants import ORGANS
from adaragct.formats.sentence_db import SentenceRecord
from adaragct.retrieval.bank import SentenceBank
from adaragct.retrieval.encoders import l2_normalise, packaged_minilm
from adaragct.retrieval.retrievers import AdaptiveRetriever, RetrievalQuery, Text2TextRetriever

DIM = 384
PHRASES = {
    "lung": [
        "Mild emphysema in both upper lobes.",
        "No pleural effusion was observed.",
        "A 4 mm nodule in the right lower lobe.",
        "Atelectasis in the left lower lobe.",
    ],
    "heart": [
        "The heart size is normal.",
        "Cardiomegaly is present.",
        "Pericardial effusion was not observed.",
    ],
    "esophagus": ["Hiatal hernia is seen.", "The esophagus is normal in calibre."],
    "aorta": ["Calcified plaques in the aortic wall.", "The thoracic aorta is of normal diameter."],
    "other": ["No lymphadenopathy.", "Degenerative changes in the thoracic spine."],
}


def random_unit(n: int, rng: np.random.Generator, block: int = 100_000) -> np.ndarray:
    """(n, DIM) random unit vectors in float32, generated in blocks (no float64 copy of the whole array)."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, block):
        out[start : start + block] = l2_normalise(
            rng.standard_normal((min(block, n - start), DIM), dtype=np.float32)
        )
    return out


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def numpy_topk(base: np.ndarray, queries: np.ndarray, k: int, block: int = 100) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ base.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start : start + block] = np.take_along_axis(part, order, axis=1)
    return out


def bench_exact(rng: np.random.Generator) -> list[tuple[str, str]]:
    import faiss

    base, queries = random_unit(200_000, rng), random_unit(1000, rng)
    index = faiss.IndexFlatIP(DIM)
    index.add(base)
    t_faiss, (_, found) = timed(lambda: index.search(queries, 10), repeat=2)
    t_numpy, expected = timed(lambda: numpy_topk(base, queries, 10), repeat=2)
    agree = float((found[:, 0] == expected[:, 0]).mean())
    return [
        ("exact top-10, 200k x 384, 1000 queries: FAISS IndexFlatIP", f"{t_faiss:.2f} s"),
        ("  numpy matmul + argpartition", f"{t_numpy:.2f} s"),
        ("  ratio numpy / FAISS (top-1 agreement)", f"{t_numpy / t_faiss:.2f}x ({agree:.3f})"),
    ]


class FixedProbeEncoder:
    """Returns precomputed probe vectors, so the latency below is retrieval alone (encoding is row 3)."""

    def __init__(self, encoder_id: str, vectors: np.ndarray) -> None:
        self.encoder_id, self.dim, self.vectors, self.calls = encoder_id, DIM, vectors, 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return self.vectors[self.calls % len(self.vectors)][None]


def synthetic_bank(n_sentences: int, rng: np.random.Generator) -> tuple[SentenceBank, list[str]]:
    """A bank shaped like CT-RATE: ~20 sentences per volume, organ shares as in reports."""
    organs = rng.choice(ORGANS, size=n_sentences, p=[0.55, 0.15, 0.05, 0.08, 0.17])
    n_volumes = n_sentences // 20
    volumes = [f"train_{v}_a_1" for v in range(n_volumes)]
    records = [
        SentenceRecord(f"s{i}", volumes[i // 20 % n_volumes], PHRASES[o][i % len(PHRASES[o])], (o,), True)
        for i, o in enumerate(organs)
    ]
    return SentenceBank.build(records, random_unit(n_sentences, rng), "bench", None), volumes


def bench_latency(
    rng: np.random.Generator, sizes: tuple[int, ...] = (100_000, 1_000_000)
) -> list[tuple[str, str]]:
    import faiss

    rows = []
    probes = random_unit(64, rng)
    for n in sizes:
        t_build, (bank, volumes) = timed(lambda n=n: synthetic_bank(n, rng))
        encoder = FixedProbeEncoder("bench", probes)
        neighbours = {"valid_1_a_1": {o: list(rng.choice(volumes, 20, replace=False)) for o in ORGANS}}
        adaptive = AdaptiveRetriever(bank, encoder, neighbours)
        text2text = Text2TextRetriever(bank, encoder)
        query = RetrievalQuery(
            "valid_1_a_1", "The lungs are clear.", "Mild emphysema in both upper lobes.", 3
        )
        threads = faiss.omp_get_max_threads()
        for name, retriever, repeat, n_threads in (
            ("adaptive", adaptive, 200, threads),
            ("text2text", text2text, 30, threads),
            ("text2text, 1 FAISS thread", text2text, 30, 1),
        ):
            faiss.omp_set_num_threads(n_threads)
            retriever.retrieve(query)  # warm-up
            times = [timed(lambda r=retriever, q=query: r.retrieve(q))[0] for _ in range(repeat)]
            rows.append(
                (
                    f"single-probe latency, {name}, {n // 1000}k sentences",
                    f"{1000 * statistics.median(times):.2f} ms (median of {repeat})",
                )
            )
        faiss.omp_set_num_threads(threads)
        rows.append((f"  bank build (flat, {n // 1000}k)", f"{t_build:.1f} s"))
        del bank, adaptive, text2text
    return rows


def bench_encoder() -> list[tuple[str, str]]:
    encoder = packaged_minilm(progress=False)
    texts = [f"{p} ({i})" for i in range(40) for group in PHRASES.values() for p in group][:512]
    encoder.encode(texts[:64])  # warm-up
    t_batch, _ = timed(lambda: encoder.encode(texts))
    single = [timed(lambda i=i: encoder.encode([texts[i]]))[0] for i in range(20)]
    return [
        ("MiniLM (packaged) throughput, batches of 64", f"{len(texts) / t_batch:.0f} sentences/s"),
        ("MiniLM single-probe encode latency", f"{1000 * statistics.median(single):.1f} ms"),
    ]


def main() -> None:
    """Run all three parts and print one table."""
    from rich.console import Console
    from rich.table import Table

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    rows = bench_exact(rng) + bench_latency(rng) + bench_encoder()
    table = Table(title=f"retrieval benchmark ({time.perf_counter() - start:.0f} s)")
    table.add_column("measurement")
    table.add_column("result", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
