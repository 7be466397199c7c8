"""Volume-id normalisation, used by every reader so that ids from any file compare equal (SPEC 2.1).

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
