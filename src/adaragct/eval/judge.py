"""LLM judge ("LLaMA score", SPEC 6): a local causal LM grades each generated report against its reference.

Protocol of CT-CHAT's evaluation, in our own wording: a 0-10 rubric, greedy decoding, at most 256 new tokens,
one score parsed per answer. Any local causal LM directory works (nothing is downloaded). Prompts are batched with
left padding so every row's answer starts right after its prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adaragct.errors import DataError

MAX_NEW_TOKENS = 256

RUBRIC = """You are an expert thoracic radiologist reviewing an automatically written chest CT report.
Compare the GENERATED report with the REFERENCE report written by a radiologist and rate how well the generated
report agrees with the reference on a scale from 0 to 10:
- 10: the generated report agrees with the reference in every clinically relevant finding.
- 7 to 9: agreement with only minor differences (e.g. small details of size or location).
- 4 to 6: several noticeable errors, or important findings missing or misdescribed.
- 1 to 3: major errors; the important findings are largely wrong or missing.
- 0: the generated report is wrong or unrelated to the reference.
Do not lower the score because the generated report leaves out normal (negative) findings that the reference
mentions. Do lower the score for every abnormality the generated report invents that the reference does not
support.

REFERENCE report:
{reference}

GENERATED report:
{generated}

Answer with the score in the form "Score: X/10", followed by a one-sentence justification."""

_SLASH = re.compile(r"(?<![\d.])(10|\d)(?:\.\d+)?\s*/\s*10\b")
_OUT_OF = re.compile(r"(?<![\d.])(10|\d)(?:\.\d+)?\s+out\s+of\s+10\b", re.IGNORECASE)
_BARE = re.compile(r"^\s*(?:score\s*[:=]?\s*)?(10|\d)(?:\.\d+)?\s*[.!]?\s*$", re.IGNORECASE)
_ANY = re.compile(r"(?<![\d.])(10|\d)(?:\.\d+)?(?![\d])")


def parse_score(answer: str) -> float | None:
    """The 0-10 score in a judge answer, or None when there is none.

    Tried in order: ``x/10``; ``x out of 10``; the whole answer being a bare number (optionally after
    ``Score:``); else the first number between 0 and 10 in the text. Decimals are kept (``7.5/10`` -> 7.5).
    """
    text = answer or ""
    for pattern in (_SLASH, _OUT_OF, _BARE):
        match = pattern.search(text)
        if match:
            return _number_at(text, match)
    for match in _ANY.finditer(text):
        value = _number_at(text, match)
        if 0 <= value <= 10:
            return value
    return None


def _number_at(text: str, match: re.Match) -> float:
    number = re.match(r"\d+(?:\.\d+)?", text[match.start(1) :])
    value = float(number.group(0)) if number else float(match.group(1))
    return min(value, 10.0)


@dataclass
class JudgeResult:
    """Judge outcome: mean score (unparseable answers count as 0), per-sample scores and raw answers."""

    mean_score: float
    scores: list[float]
    answers: list[str]
    num_unparseable: int


def build_prompts(tokenizer, generated: Sequence[str], references: Sequence[str]) -> list[str]:
    """Rubric prompts, wrapped in the model's chat template when it has one."""
    prompts = []
    for gen, ref in zip(generated, references, strict=True):
        content = RUBRIC.format(reference=ref.strip(), generated=gen.strip() or "(empty report)")
        if getattr(tokenizer, "chat_template", None):
            content = tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        prompts.append(content)
    return prompts


class LLMJudge:
    """Score reports with a local causal LM.

    Args:
        model_path: directory of a causal LM saved with ``save_pretrained`` (tokenizer included).
        device: torch device.
        batch_size: prompts per ``generate`` call.
        max_new_tokens: answer budget (256 in the protocol).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "cpu",
        batch_size: int = 4,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ) -> None:
        model_path = Path(model_path)
        if not (model_path / "config.json").is_file():  # else transformers reads the path as a hub repo id
            problem = "has no config.json" if model_path.is_dir() else "is not a folder"
            raise DataError(
                model_path,
                "judge model",
                problem if model_path.exists() else "does not exist",
                "pass a local causal LM directory written by save_pretrained (--judge-model, judge.model_path)",
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        self.tokenizer.padding_side = "left"  # decoder-only batching: answers must start right after prompts
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = (
            AutoModelForCausalLM.from_pretrained(str(model_path), local_files_only=True).to(device).eval()
        )
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def answers(self, generated: Sequence[str], references: Sequence[str]) -> list[str]:
        """Raw judge answers, one per pair (greedy)."""
        import torch

        prompts = build_prompts(self.tokenizer, generated, references)
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(
                self.device
            )
            with torch.no_grad():
                tokens = self.model.generate(
                    **enc,
                    do_sample=False,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new = tokens[:, enc["input_ids"].shape[1] :]
            out.extend(self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return out

    def score(self, generated: Sequence[str], references: Sequence[str]) -> JudgeResult:
        """Mean score over all pairs; an unparseable answer scores 0 and is counted."""
        answers = self.answers(generated, references)
        parsed = [parse_score(a) for a in answers]
        scores = [0.0 if p is None else p for p in parsed]
        mean = sum(scores) / len(scores) if scores else float("nan")
        return JudgeResult(mean, scores, answers, sum(p is None for p in parsed))
