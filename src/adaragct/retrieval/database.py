"""The training-sentence database built from report text (docs/method.md#retrieval): sentences split, tagged
and numbered; the files are read and written by :mod:`adaragct.formats.sentence_db` (docs/formats.md#release-bundle).

Sentence ids are ``<volume_id>_s<index>``: unique, stable across runs, and they say where a retrieved sentence
came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from adaragct.data.index_files import DATABASE_JSON, DATABASE_NPZ  # noqa: F401  (where the index stage writes them)
from adaragct.formats.sentence_db import SentenceRecord
from adaragct.retrieval.contexts import QuerySentence

_SENTENCE_ID = re.compile(r"(.+)_s\d+")


def tag_reports(
    reports: Mapping[str, str], progress: bool = True, desc: str = "tag sentences"
) -> dict[str, list[tuple[str, tuple[str, ...], bool]]]:
    """Split and tag every report: ``{volume_id: [(sentence, organs, normal), ...]}`` in report order."""
    from tqdm.auto import tqdm

    from adaragct.data.sentences import tag_report

    return {
        vid: [(text, tag.organs, tag.normal) for text, tag in tag_report(reports[vid])]
        for vid in tqdm(sorted(reports), desc=desc, unit="report", disable=not progress)
    }


def sentence_id(volume_id: str, index: int) -> str:
    """The id of a volume's ``index``-th report sentence: ``<volume_id>_s<index>``."""
    return f"{volume_id}_s{index:03d}"


def source_volume(sentence_id: str) -> str | None:
    """The training volume a sentence id names (:func:`sentence_id`'s inverse); None for another id layout."""
    match = _SENTENCE_ID.fullmatch(sentence_id)
    return match.group(1) if match else None


def database_records(
    tagged: Mapping[str, Sequence[tuple[str, tuple[str, ...], bool]]],
) -> list[SentenceRecord]:
    """Records of the sentence database, volumes sorted, sentences in report order."""
    return [
        SentenceRecord(sentence_id(vid, j), vid, text, tuple(organs), bool(normal))
        for vid in sorted(tagged)
        for j, (text, organs, normal) in enumerate(tagged[vid])
    ]


def query_sentences(records: Sequence[SentenceRecord]) -> dict[str, list[QuerySentence]]:
    """Group database records into context queries per volume (report order kept)."""
    out: dict[str, list[QuerySentence]] = {}
    for rec in records:
        out.setdefault(rec.volume_id, []).append(QuerySentence(rec.text, rec.organs))
    return out
