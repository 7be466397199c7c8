"""Where each ``[RAG]`` of a generated report happened, as a character of ``generated_text``.

A retrieval trace entry's ``step`` counts written tokens, not characters. Three ways to a character, best first:

1. ``recorded``: the entry's ``char_offset`` (the generator records it since issue 22: the length of the report's
   text at the retrieval, :meth:`adaragct.generation.policy.RowPolicy.char_offset`). Exact.
2. ``tokenizer``: older traces, with the checkpoint's tokenizer (``--tokenizer``): the report is encoded again and
   the first ``step`` tokens decoded. Exact when the encoding has ``num_generated_tokens`` tokens (greedy BPE text
   re-encodes to the tokens that wrote it almost always; a mismatch, e.g. a written ``[RAG]`` dropped from the
   text, falls through to 3).
3. ``estimate``: older traces without a tokenizer: ``step / num_generated_tokens`` of the text's length, moved to
   the nearest sentence start (``[RAG]`` fires between sentences). Marked approximate in the viewer; on the demo's
   95 reports it picks the tokenizer's sentence for 336 of 370 retrievals.

The mark goes at the start of the sentence being rewritten: the sentence (the generator's own sentence-end rule,
:data:`adaragct.data.sentences.SENTENCE_END`) that holds the first character written after the retrieval.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaragct.data.sentences import SENTENCE_END

RECORDED, TOKENIZER, ESTIMATE = "recorded", "tokenizer", "estimate"
_PIECE = re.compile(r"\w+|[^\w\s]")  # a token count proxy when a record does not say how many it wrote


@dataclass(frozen=True)
class RagPoint:
    """One retrieval placed in the report text.

    Attributes:
        offset: the character of ``generated_text`` where the retrieval happened (what was written before it).
        start: where the rewritten sentence starts (the mark's place).
        end: where that sentence ends (``start == end`` when the retrieval came at the end of the text).
        method: ``recorded``, ``tokenizer`` or ``estimate`` (module docstring).
    """

    offset: int
    start: int
    end: int
    method: str


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``: whitespace between sentences belongs to none; a trailing
    fragment without an end mark is a sentence too."""
    spans, start = [], _skip_space(text, 0)
    for match in SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = _skip_space(text, match.end())
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _skip_space(text: str, offset: int) -> int:
    while offset < len(text) and text[offset].isspace():
        offset += 1
    return offset


def sentence_at(text: str, offset: int, spans: Sequence[tuple[int, int]] | None = None) -> tuple[int, int]:
    """The sentence that the first character written at or after ``offset`` belongs to; ``(len, len)`` when
    nothing but whitespace follows ``offset``."""
    spans = sentence_spans(text) if spans is None else spans
    first = _skip_space(text, offset)
    if first >= len(text) or not spans:
        return len(text), len(text)
    i = max(0, bisect.bisect_right([s for s, _ in spans], first) - 1)
    return spans[i]


def _estimated(text: str, steps: Sequence[int], total: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """Offsets in proportion to the tokens written, each moved to the nearest sentence start (or the end)."""
    starts = [s for s, _ in spans] + [len(text)]
    out = []
    for step in steps:
        guess = round(min(step, total) / max(total, 1) * len(text))
        out.append(min(starts, key=lambda s, g=guess: (abs(s - g), s)))
    return out


def _tokenized(text: str, steps: Sequence[int], total: int | None, tokenizer: Any) -> list[int] | None:
    """Offsets from the text re-encoded with the tokenizer that wrote it; None when the encoding does not have
    the number of tokens the generator wrote (then it is not the same token sequence)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if total is None or len(ids) != total:
        return None
    return [len(tokenizer.decode(ids[:step], skip_special_tokens=True).lstrip()) for step in steps]


def place_retrievals(record: Mapping[str, Any], tokenizer: Any = None) -> list[RagPoint]:
    """A :class:`RagPoint` per entry of ``record["retrieval_log"]`` (every action, in trace order).

    Args:
        record: a prediction record (``generated_text``, ``retrieval_log``, ideally ``num_generated_tokens``).
        tokenizer: the tokenizer of the checkpoint that wrote the record, for traces without ``char_offset``.

    Raises:
        ValueError: a recorded ``char_offset`` outside the text (the caller names the file and line).
    """
    text, log = record["generated_text"], record.get("retrieval_log") or []
    if not log:
        return []
    spans = sentence_spans(text)
    steps = [int(entry["step"]) for entry in log]
    total = record.get("num_generated_tokens")
    if all("char_offset" in entry for entry in log):
        offsets, method = [int(entry["char_offset"]) for entry in log], RECORDED
        bad = [o for o in offsets if not 0 <= o <= len(text)]
        if bad:
            raise ValueError(f"char_offset {bad[0]} is outside the {len(text)}-character generated_text")
    else:
        offsets = _tokenized(text, steps, total, tokenizer) if tokenizer is not None else None
        method = TOKENIZER
        if offsets is None:
            count = total if total is not None else len(_PIECE.findall(text))
            offsets, method = _estimated(text, steps, count, spans), ESTIMATE
    return [RagPoint(o, *sentence_at(text, o, spans), method) for o in offsets]
