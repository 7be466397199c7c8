"""Volume-id normalisation, used by every reader so that ids from any file compare equal (docs/formats.md#ct-rate-layout).

CT-RATE ids look like ``split_patient_scan_recon`` (``valid_53_a_1``); files spell them as bare ids, file names
(``valid_53_a_1.nii.gz``) or paths. Reconstructions of one scan share a report, so splits and neighbour searches
group by :func:`patient_id`.
"""

from __future__ import annotations

import os

_SUFFIXES = (".nii.gz", ".nii", ".npz", ".pt")


def normalize_volume_id(raw: object) -> str:
    """Return the canonical volume id: base name without ``.nii.gz``/``.nii``, whitespace stripped.

    >>> normalize_volume_id("/data/valid/valid_53/valid_53_a/valid_53_a_1.nii.gz")
    'valid_53_a_1'
    """
    text = str(raw).strip().replace("\\", "/")
    name = os.path.basename(text)
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name


def patient_id(volume_id: str) -> str:
    """Return ``split_patient`` for a CT-RATE id (``valid_53_a_1`` -> ``valid_53``).

    Ids that do not follow the CT-RATE pattern (e.g. VLM3D accession numbers) are their own patient.
    """
    vid = normalize_volume_id(volume_id)
    parts = vid.split("_")
    if len(parts) >= 4 and parts[1].isdigit():
        return f"{parts[0]}_{parts[1]}"
    return vid


def patient_derangement(volume_ids: list[str], seed: int) -> list[int] | None:
    """A seeded permutation ``perm`` of the volumes in which no volume is paired with its own patient.

    ``perm[i]`` is the volume whose image (or labels) stands in for volume ``i`` when measuring what a model owes
    to its input: a reconstruction of the same scan would carry the same findings, so partners always come from
    another patient. ``None`` when no such permutation exists (one patient holds more than half the volumes).

    Drawn by laying the volumes out grouped by patient (groups and their members in a seeded random order) and
    pairing each with the volume ``largest group`` places further along that cycle: such a rotation never lands in
    the same group.
    """
    import numpy as np

    n = len(volume_ids)
    patients = [patient_id(v) for v in volume_ids]
    largest = max((patients.count(p) for p in set(patients)), default=0)
    if n < 2 or 2 * largest > n:
        return None
    rng = np.random.default_rng(seed)
    unique = sorted(set(patients))
    rank = dict(zip(unique, rng.permutation(len(unique)).tolist(), strict=True))
    order = sorted(rng.permutation(n).tolist(), key=lambda i: rank[patients[i]])  # grouped, shuffled
    perm = [0] * n
    for k, i in enumerate(order):
        perm[i] = order[(k + largest) % n]
    return perm
