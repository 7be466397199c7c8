"""Prompt and context formatting (docs/method.md#model-and-training, docs/method.md#training-batches): the one place that decides what the model reads.

The chat layout is written out by hand instead of ``tokenizer.apply_chat_template`` because the tiny demo
tokenizer has no template and Llama-3.1's template inserts date lines; writing it here gives the same layout for
every model size, and tests can assert it. Targets are tokenised segment by segment so that label masks line up
exactly with the ``[RAG]`` token and the ``<|ret_start|> ... <|ret_end|>`` span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from adaragct.constants import IGNORE_INDEX, RAG_TOKEN, RET_END, RET_START, SLOT_TOKENS, TASK_TOKEN

BOS = "<|begin_of_text|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
EOT = "<|eot_id|>"


NO_FINDINGS = "no abnormality"  # what ``{findings}`` reads for a volume with none of the 18 findings


@dataclass(frozen=True)
class PromptConfig:
    """Prompt texts (``conf/prompt``). ``embeddings_sentence`` has ``{whole_ct}``, ``{lung}``, ... fields that are
    replaced by the slot placeholder tokens. ``findings_sentence`` (``None``: the paper's prompt) has a
    ``{findings}`` field: the findings read from the volume's embeddings (:mod:`adaragct.models.findings`), given
    to the LM as words (the demo's departure, docs/visual_dependence.md)."""

    system: str
    embeddings_sentence: str
    question: str
    findings_sentence: str | None = None

    def __post_init__(self) -> None:
        for slot, token in SLOT_TOKENS.items():
            if "{" + slot + "}" not in self.embeddings_sentence:
                raise ValueError(
                    f"conf/prompt: embeddings_sentence lacks the {{{slot}}} field for {token}; "
                    "every visual slot needs exactly one placeholder"
                )
        if self.findings_sentence is not None and "{findings}" not in self.findings_sentence:
            raise ValueError("conf/prompt: findings_sentence lacks its {findings} field (or set it to null)")


def _turn(role: str, text: str) -> str:
    return f"{HEADER_START}{role}{HEADER_END}\n\n{text}{EOT}"


def findings_words(findings: Sequence[str]) -> str:
    """``"emphysema, lung nodule"``: finding names in lower case, in the order given (:data:`NO_FINDINGS` if none)."""
    return ", ".join(f.lower() for f in findings) or NO_FINDINGS


def findings_line(prompt: PromptConfig, findings: Sequence[str] | None) -> str | None:
    """The prompt's findings sentence for ``findings``; ``None`` for the paper's prompt (no findings sentence)."""
    if prompt.findings_sentence is None:
        return None
    if findings is None:
        raise ValueError(
            "conf/prompt: findings_sentence is set, so every prompt needs the volume's findings (training: the "
            "labels CSV; inference: the model's finding classifier); set prompt.findings_sentence=null otherwise"
        )
    return prompt.findings_sentence.format(findings=findings_words(findings))


def user_message(prompt: PromptConfig, findings: Sequence[str] | None = None) -> str:
    """The user turn: the embeddings sentence with one placeholder per slot, the task token, the question, then
    the findings sentence (when the prompt has one: last, next to the report the findings shape)."""
    parts = (prompt.embeddings_sentence.format(**SLOT_TOKENS), TASK_TOKEN, prompt.question)
    return " ".join(p for p in (*parts, findings_line(prompt, findings)) if p is not None)


ASSISTANT = f"{HEADER_START}assistant{HEADER_END}\n\n"


def build_prompt(prompt: PromptConfig, findings: Sequence[str] | None = None) -> str:
    """Everything before the report: system and user turns, then the assistant header (Llama-3 layout).

    ``findings``: the volume's findings, needed when ``prompt.findings_sentence`` is set (ignored otherwise)."""
    user = user_message(prompt, findings)
    return f"{BOS}{_turn('system', prompt.system)}{_turn('user', user)}{ASSISTANT}"


def findings_document(prompt: PromptConfig, findings: Sequence[str], report: str) -> str:
    """A tiny-LM pretraining document for ``prompt.findings_sentence``: the prompt's last words (the findings
    sentence, the end of the user turn, the assistant header), then the report; see :mod:`adaragct.models.tiny_lm`.

    The same tokens as the end of every prompt, so what the LM learns to follow transfers to the full prompt."""
    return f"{BOS}{findings_line(prompt, findings)}{EOT}{ASSISTANT}{report.strip()}"


def with_global_context(prompt_text: str, reports: Sequence[str]) -> str:
    """The prompt with the release's global context (its ``--global-context``) in front:
    ``<|ret_start|> Reference context: {reports joined by spaces} <|ret_end|>\n`` + the prompt.

    The release prepends this to its prompt string; Llama's tokenizer opens the result with the begin-of-text
    token (its default, assumed here). Our prompt text carries that token itself, so the context goes right after
    it. No reports: the prompt as it is."""
    if not reports:
        return prompt_text
    head = BOS if prompt_text.startswith(BOS) else ""
    return f"{head}{RET_START} Reference context: {' '.join(reports)} {RET_END}\n{prompt_text[len(head) :]}"


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


def pad_examples(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad ``(input_ids, labels)`` pairs to the longest: (input_ids, attention_mask, labels) tensors, with
    padding masked in ``attention_mask`` and ignored in ``labels``."""
    length = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        n = len(ids)
        input_ids[row, :n] = torch.as_tensor(ids, dtype=torch.long)
        labels[row, :n] = torch.as_tensor(labs, dtype=torch.long)
        attention[row, :n] = 1
    return input_ids, attention, labels
