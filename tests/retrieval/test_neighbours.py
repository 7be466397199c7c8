"""Image neighbours: exact cosine top-k per organ, never the query's own patient."""

from __future__ import annotations

import numpy as np

from adaragct.constants import ORGAN_SLOTS, ORGANS
from adaragct.ids import patient_id
from adaragct.retrieval.neighbours import image_neighbours, neighbour_ids, organ_vectors, training_means


def _cohort(n_patients: int, seed: int = 0) -> tuple[list[str], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    ids = []
    for p in range(n_patients):
        ids += [f"train_{p}_a_{r}" for r in range(1, 1 + (3 if p % 4 == 0 else 1))]
    base = {o: rng.normal(size=(n_patients, 8)).astype(np.float32) for o in ORGAN_SLOTS}
    # reconstructions of one patient are near-duplicates: the nearest volume is always a sibling
    arrays = {
        o: np.stack([base[o][int(v.split("_")[1])] + 0.01 * rng.normal(size=8) for v in ids]).astype(
            np.float32
        )
        for o in ORGAN_SLOTS
    }
    return ids, arrays


def test_neighbours_exclude_self_and_same_patient_and_match_brute_force() -> None:
    ids, arrays = _cohort(40)
    vec = organ_vectors(arrays, other_source="organs")
    found = neighbour_ids(image_neighbours(ids, vec, ids, vec, k=20, progress=False))
    assert set(found) == set(ids)
    for qi, vid in enumerate(ids):
        assert set(found[vid]) == set(ORGANS)
        for organ in ORGANS:
            got = found[vid][organ]
            assert len(got) == 20 and len(set(got)) == 20
            assert all(patient_id(n) != patient_id(vid) for n in got)
            sims = vec[organ] @ vec[organ][qi]
            allowed = [j for j in np.argsort(-sims, kind="stable") if patient_id(ids[j]) != patient_id(vid)]
            assert got == [ids[j] for j in allowed[:20]]


def test_other_organ_sources_and_scores() -> None:
    ids, arrays = _cohort(10)
    whole = np.random.default_rng(1).normal(size=(len(ids), 5)).astype(np.float32)
    concat = organ_vectors(arrays, other_source="organs")["other"]
    assert concat.shape == (len(ids), 32)
    # cosine of the concatenation of normalised organ vectors = mean of the four organ cosines
    per_organ = organ_vectors(arrays, other_source="organs")
    mean_cos = np.mean([per_organ[o][0] @ per_organ[o][1] for o in ORGAN_SLOTS])
    assert np.isclose(concat[0] @ concat[1], mean_cos, atol=1e-6)
    np.testing.assert_allclose(
        organ_vectors(arrays, whole, "whole")["other"],
        whole / np.linalg.norm(whole, axis=1, keepdims=True),
        atol=1e-6,
    )
    np.testing.assert_array_equal(organ_vectors(arrays, other_source="lung")["other"], per_organ["lung"])
    raw = image_neighbours(ids[:2], per_organ, ids, per_organ, k=3, progress=False)
    scores = [n["score"] for n in raw[ids[0]]["heart"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_centering_uses_the_training_means_for_queries_too() -> None:
    _ids, arrays = _cohort(12)
    offset = {o: a + 50.0 for o, a in arrays.items()}  # a large common offset makes every raw cosine ~1
    means = training_means(offset)
    centred = organ_vectors(offset, other_source="lung", means=means)
    expected = arrays["heart"] - arrays["heart"].mean(0)
    np.testing.assert_allclose(
        centred["heart"], expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-4
    )
    raw = organ_vectors(offset, other_source="lung")
    assert (raw["heart"] @ raw["heart"].T).min() > 0.99 > (centred["heart"] @ centred["heart"].T).min()
