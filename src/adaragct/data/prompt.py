"""Prompt and context formatting (SPEC 4, 2.5): the one place that decides what the model reads.

The chat layout is written out by hand instead of ``tokenizer.apply_chat_template`` because the tiny demo
tokenizer has no template and Llama-3.1's template inserts date lines; writing it here gives the same layout for
every model size, and tests can assert it. Targets are tokenised segment by segment so that label masks line up
exactly with the ``[RAG]`` token and the ``<|ret_start|> ... <|ret_end|>`` span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adaragct.constants import IGNORE_INDEX, RAG_TOKEN, RET_END, RET_START, SLOT_TOKENS, TASK_TOKEN

BOS = "<|begin_of_text|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
EOT = "<|eot_id|>"


@dataclass(frozen=True)
class PromptConfig:
    """Prompt texts (``conf/prompt``). ``embeddings_sentence`` has ``{whole_ct}``, ``{lung}``, ... fields that are
    replaced by the slot placeholder tokens."""

    system: str
    embeddings_sentence: str
    question: str

    def __post_init__(self) -> None:
        for slot, token in SLOT_TOKENS.items():
            if "{" + slot + "}" not in self.embeddings_sentence:
                raise ValueError(
                    f"conf/prompt: embeddings_sentence lacks the {{{slot}}} field for {token}; "
                    "every visual slot needs exactly one placeholder"
                )


def _turn(role: str, text: str) -> str:
    return f"{HEADER_START}{role}{HEADER_END}\n\n{text}{EOT}"


def user_message(prompt: PromptConfig) -> str:
    """The user turn: the embeddings sentence with one placeholder per slot, the task token, the question."""
    return f"{prompt.embeddings_sentence.format(**SLOT_TOKENS)} {TASK_TOKEN} {prompt.question}"


def build_prompt(prompt: PromptConfig) -> str:
    """Everything before the report: system and user turns, then the assistant header (Llama-3 layout)."""
    return f"{BOS}{_turn('system', prompt.system)}{_turn('user', user_message(prompt))}{HEADER_START}assistant{HEADER_END}\n\n"


def context_span(contexts: Sequence[str]) -> str:
    """``<|ret_start|>ctx1 ctx2 ctx3<|ret_end|>``: what is injected after ``[RAG]`` (training and generation)."""
    return f"{RET_START}{' '.join(c.strip() for c in contexts)}{RET_END}"


@dataclass(frozen=True)
class Segment:
    """A piece of the target and whether the model is trained to produce it."""

    text: str
    trained: bool


def target_segments(sentences: Sequence[str], contexts: dict[int, Sequence[str]]) -> list[Segment]:
    """Segments of a target report: each sentence, preceded by ``[RAG]`` + context span when it has contexts.

    ``[RAG]<|ret_start|>{contexts}<|ret_end|> {sentence}``: the ``[RAG]`` token is trained (the model must learn
    when to ask), the span is masked (it is given, not generated), the rewritten sentence is trained.
    The final segment is the end-of-turn token.
    """
    segments: list[Segment] = []
    for i, sentence in enumerate(sentences):
        if i in contexts:
            # [RAG] follows the previous sentence's full stop directly; the rewritten sentence keeps its leading
            # space, so the text without the span reads exactly like the plain report
            segments.append(Segment(RAG_TOKEN, trained=True))
            segments.append(Segment(context_span(contexts[i]), trained=False))
        lead = " " if i > 0 or i in contexts else ""
        segments.append(Segment(lead + sentence.strip(), trained=True))
    segments.append(Segment(EOT, trained=True))
    return segments


def encode_example(tokenizer, prompt_text: str, segments: Sequence[Segment]) -> tuple[list[int], list[int]]:
    """Token ids and labels (``-100`` over the prompt and every untrained segment)."""
    input_ids = tokenizer.encode(prompt_text, add_special_tokens=False)
    labels = [IGNORE_INDEX] * len(input_ids)
    for segment in segments:
        ids = tokenizer.encode(segment.text, add_special_tokens=False)
        input_ids.extend(ids)
        labels.extend(ids if segment.trained else [IGNORE_INDEX] * len(ids))
    return input_ids, labels
