"""What one row of the adaptive loop does with each token it decodes (docs/method.md#adaptive-generation), without a model or a cache.

A row is in one of four modes:

* ``normal``: tokens are written to the report. A ``[RAG]`` the row may act on starts a probe.
* ``probe``: a look-ahead sentence is decoded (up to ``probe_max_tokens``, until a sentence end or the end
  token). It then ends: the batch rolls the probe out of the cache, and the retriever gets its text. A probe under
  ``min_probe_chars`` cancels: a space is written instead and the row cools down.
* ``hold``: the retriever found nothing for this sentence: the row takes the token it would have taken without
  ``[RAG]``, and may not ask again until the sentence ends (it would ask again a few tokens later).
* ``cooldown``: a probe was cancelled: no ``[RAG]`` for ``cooldown_tokens`` written tokens.

Where the probe is decoded (``probe``): ``draft`` decodes it exactly as plain decoding would continue (the token
the row would take without ``[RAG]``, then on), so the probe is a draft of the sentence; ``after_rag`` feeds
``[RAG]`` first and decodes after it (the paper's loop; a model trained with the context span after ``[RAG]``
never learned what follows ``[RAG]`` alone).

After a retrieval the row feeds ``[RAG]`` + ``<|ret_start|>ctx<|ret_end|>`` and rewrites the sentence. With
``speculative`` the probe rides along in the same chunk as a draft of the rewrite: the batch checks each draft
token against the token this policy would choose at that position, keeps the agreeing prefix and continues from
the first token that differs, so the text is the one token-by-token decoding writes, in fewer forwards.

The policy only sees token ids and the decisions of the batch; it returns what the batch must do next.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adaragct.data.sentences import ends_sentence, first_sentence_end


class Mode(enum.Enum):
    NORMAL = "normal"
    PROBE = "probe"
    HOLD = "hold"
    COOLDOWN = "cooldown"


@dataclass(frozen=True)
class Feed:
    """Feed ``tokens`` into the row's cache. ``probe``: they are probe columns (rolled back when it ends);
    ``draft``: the last ``len(draft)`` tokens are a draft to verify against the logits at their positions."""

    tokens: tuple[int, ...]
    probe: bool = False
    draft: tuple[int, ...] = ()
    decoded: int | None = None  # the token just decoded (written or probed): the repetition penalty counts it


@dataclass(frozen=True)
class EndProbe:
    """The probe ended: roll it out of the cache, then call :meth:`RowPolicy.after_probe` with the retrieval
    result for ``probe_text`` (None when the probe is too short to ask with)."""

    probe_text: str
    ask: bool


@dataclass(frozen=True)
class Finish:
    """The row is done (end token or ``max_new_tokens``); nothing more is fed."""


Action = Feed | EndProbe | Finish


@dataclass(frozen=True)
class Tokens:
    """The ids a policy needs: ``[RAG]``, the end token and a space (written when a probe cancels)."""

    rag: int
    end: int
    space: int


@dataclass
class RowPolicy:
    """The state machine of one row.

    Args:
        settings: the decoding settings (:class:`adaragct.generation.adaptive.GenerationSettings`).
        tokens: special token ids.
        decode: token ids -> text (the tokenizer's decode without special tokens).
        can_retrieve: False for plain decoding (no retriever).
    """

    settings: Any
    tokens: Tokens
    decode: Callable[[list[int]], str]
    can_retrieve: bool
    mode: Mode = Mode.NORMAL
    output: list[int] = field(default_factory=list)
    probe: list[int] = field(default_factory=list)
    cooldown: int = 0
    retrievals: int = 0
    alt: int | None = None  # the token the row would have taken instead of the [RAG] that started the probe
    log: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    hit_end: bool = False

    # -------------------------------------------------------- what the scorer needs
    @property
    def may_retrieve(self) -> bool:
        return (
            self.can_retrieve and self.mode is Mode.NORMAL and self.retrievals < self.settings.max_retrievals
        )

    @property
    def rag_barred(self) -> bool:
        """Whether ``[RAG]`` may not be chosen at all (in a probe; when it cannot be acted on and is suppressed)."""
        return self.mode is Mode.PROBE or (self.settings.ignored_rag == "suppress" and not self.may_retrieve)

    def choose(self, best: int, rag_wins_biased: bool, rag_wins: bool) -> int:
        """The greedy token given the best non-``[RAG]`` token and whether ``[RAG]`` beats it (with the bias / without)."""
        if self.rag_barred:
            return best
        # rag_logit_bias is added to [RAG] exactly when the row may act on it
        return self.tokens.rag if (rag_wins_biased if self.may_retrieve else rag_wins) else best

    # ------------------------------------------------------------------ transitions
    def on_token(self, token: int, alt: int) -> Action:
        """The batch chose ``token`` (``alt``: its choice with ``[RAG]`` excluded); what happens next."""
        if self.mode is Mode.PROBE:
            return self._probe_token(token)
        if token == self.tokens.end:
            self.done = self.hit_end = True
            return Finish()
        if token == self.tokens.rag and self.may_retrieve:
            self.mode, self.probe, self.alt = Mode.PROBE, [], alt
            if self.settings.probe == "after_rag":
                return Feed((self.tokens.rag,), probe=True)
            return self._probe_token(alt)
        return self._write(token)

    def _write(self, token: int) -> Action:
        self.output.append(token)
        if len(self.output) >= self.settings.max_new_tokens:
            self.done = True
            return Finish()
        if self.mode is Mode.COOLDOWN:
            self.cooldown -= 1
            if self.cooldown <= 0:
                self.mode = Mode.NORMAL
        elif self.mode is Mode.HOLD and ends_sentence(
            self.decode(self.output[-2:-1]), self.decode(self.output[-2:])
        ):
            self.mode = Mode.NORMAL
        return Feed((token,), decoded=token)

    def _probe_token(self, token: int) -> Action:
        ended = token == self.tokens.end
        if not ended:
            self.probe.append(token)
        text = self.decode(self.probe)
        end = first_sentence_end(text)
        if not (ended or end is not None or len(self.probe) >= self.settings.probe_max_tokens):
            return Feed((token,), probe=True, decoded=token)
        probe_text = (text[:end] if end is not None else text).strip()
        return EndProbe(probe_text, ask=len(probe_text) >= self.settings.min_probe_chars)

    def after_probe(
        self, probe_text: str, result: Any | None, span: tuple[int, ...] = (), preview: str = ""
    ) -> Action:
        """The probe was rolled back; ``result`` is the retriever's answer (None: cancelled); when it found
        something, ``span`` holds the token ids of ``<|ret_start|>ctx<|ret_end|>`` and ``preview`` its text."""
        self.mode = Mode.NORMAL
        entry: dict[str, Any] = {
            "step": len(self.output),
            "char_offset": self.char_offset(),
            "probe_text": probe_text,
        }
        self.log.append(entry)
        if result is None:
            entry["action"] = "cancelled"
            action = self._write(self.tokens.space)
            if not self.done and self.settings.cooldown_tokens > 0:
                self.mode, self.cooldown = Mode.COOLDOWN, self.settings.cooldown_tokens
            return action
        speculative = self.settings.speculative
        if len(result) == 0:
            entry.update(action="empty", organ=result.organ, note=result.note)
            self.mode = Mode.HOLD
            action = self.on_token(self.alt, self.alt)
            # the probe continues the alternative token (probe=draft): the rest of it is a draft of this sentence
            draft = tuple(self.probe[1:]) if speculative and self.probe[:1] == [self.alt] else ()
            if isinstance(action, Feed) and draft:
                entry["draft_accepted"] = 0
                return Feed(action.tokens + draft, draft=draft, decoded=action.decoded)
            return action
        self.retrievals += 1
        entry.update(
            action="retrieved",
            organ=result.organ,
            sentence_ids=list(result.sentence_ids),
            scores=[round(float(s), 6) for s in result.scores],
            context=list(result.texts),
            ctx_preview=preview,
        )
        draft = tuple(self.probe) if speculative else ()
        if draft:
            entry["draft_accepted"] = 0
        return Feed((self.tokens.rag, *span, *draft), draft=draft)

    def char_offset(self) -> int:
        """Where the report's text stands now: the length of the written tokens' text as the final report will
        hold it (``[RAG]`` dropped, leading whitespace stripped, as the generator's text is), so that the trace
        says at which character of ``generated_text`` a retrieval happened (``step`` counts tokens)."""
        return len(self.decode([t for t in self.output if t != self.tokens.rag]).lstrip())

    def accepted(self, n: int) -> None:
        """The batch kept ``n`` tokens of the last draft (the trace records it)."""
        self.log[-1]["draft_accepted"] = n
