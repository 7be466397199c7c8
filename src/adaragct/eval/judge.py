"""LLM judge ("LLaMA score", docs/evaluation.md): a local causal LM grades each generated report against its reference.

Protocol of CT-CHAT's evaluation, in our own wording: a 0-10 rubric, greedy decoding, at most 256 new tokens,
one score parsed per answer, unparseable answers counted and scored 0. Any local causal LM directory works
(nothing is downloaded).

The rubric is configuration (:class:`JudgeSettings`): a system prompt (empty: no system message) and a question
template with ``{reference}`` and ``{generated}``, as text or read from files. The default is our own wording
(:data:`RUBRIC`, no system prompt). The paper's LLaMA score (Llama-3-70B-Instruct) used the release's
``llama_score.py`` prompt, which this project does not ship: a score is comparable to the paper's only when the
user supplies that text, and every result carries the rubric's sha256 and whether it is our default, so a
metrics file says which rubric made it.

Prompts are sorted by token length and batched with left padding (each row's answer starts right after its
prompt); answers come back in input order. A model too large for one device loads with ``device_map="auto"``
(accelerate). With ``cache_path`` each answer is appended to a JSONL file as its batch finishes, keyed by the
prompt text, the model and the decoding settings, so a killed run resumes where it stopped::

    judge = LLMJudge("/models/Llama-3-70B-Instruct", JudgeSettings(device_map="auto", dtype="bfloat16",
                     question_file="llama_score_question.txt", cache_path="outputs/judge_cache.jsonl"))
    result = judge.score(generated, references)   # result.mean_score, result.rubric_sha256, ...
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adaragct.errors import DataError, UsageError
from adaragct.eval.judge_cache import AnswerCache, model_fingerprint
from adaragct.io import read_text_utf8
from adaragct.ledger import fingerprint

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256
PLACEHOLDERS = ("reference", "generated")
DTYPES = ("auto", "bfloat16", "float16", "float32")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's placement strategies

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
_PLACEHOLDER = re.compile(r"\{(reference|generated)\}")


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


@dataclass(frozen=True)
class Rubric:
    """The judge's prompt text: a system prompt ("" = no system message) and a question template.

    ``question`` holds ``{reference}`` and ``{generated}``. They are replaced in one pass (a report that contains
    ``{generated}`` is not substituted again) and every other brace is kept as written: a pasted prompt's JSON
    example needs no ``{{``.
    """

    system: str
    question: str

    @property
    def sha256(self) -> str:
        """Hash of the system prompt and the template: two runs with equal hashes prompted alike."""
        return hashlib.sha256(json.dumps([self.system, self.question]).encode()).hexdigest()

    @property
    def is_default(self) -> bool:
        """True for our own wording (:data:`RUBRIC`, no system prompt), which is not the release's prompt."""
        return self.system == "" and self.question == RUBRIC

    def user_message(self, generated: str, reference: str) -> str:
        values = {"reference": reference.strip(), "generated": generated.strip() or "(empty report)"}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.question)


@dataclass
class JudgeSettings:
    """How the judge prompts, loads and decodes (the keys of ``judge:`` in conf/evaluate.yaml but model_path).

    Attributes:
        system_prompt: system message text; None or "" sends none. When the tokenizer's chat template has no
            system role (it raises, or drops the text), the system prompt is put before the question, separated
            by a blank line, in the one user message, as it is for a tokenizer without a chat template.
        question: user message template with ``{reference}`` and ``{generated}``; None: our :data:`RUBRIC`.
        system_prompt_file: UTF-8 file holding the system prompt (instead of ``system_prompt``).
        question_file: UTF-8 file holding the question template (instead of ``question``). A file's one final
            newline is dropped (editors add it) and Windows line ends read as ``\n``; all other text is used
            exactly as written.
        max_new_tokens: answer budget (256 in the protocol).
        batch_size: prompts per ``generate`` call (prompts are sorted by length first).
        device: torch device of the model when ``device_map`` is None; unused otherwise.
        device_map: None loads the model on ``device``; ``auto`` (or ``balanced``, ``balanced_low_0``,
            ``sequential``) spreads its layers over every visible GPU, then CPU, with accelerate: a 70B judge.
        dtype: weights' dtype: ``auto`` (the checkpoint's, as saved), ``bfloat16``, ``float16``, ``float32``.
        progress: show a progress bar over the reports.
        cache_path: JSONL file of finished answers (None: no cache). A rerun with the same file reuses every
            answer whose prompt, model and decoding settings are unchanged, and generates only the rest.
    """

    system_prompt: str | None = None
    question: str | None = None
    system_prompt_file: str | Path | None = None
    question_file: str | Path | None = None
    max_new_tokens: int = MAX_NEW_TOKENS
    batch_size: int = 4
    device: str = "cpu"
    device_map: str | None = None
    dtype: str = "auto"
    progress: bool = True
    cache_path: str | Path | None = None

    def __post_init__(self) -> None:
        for text, file in (("system_prompt", "system_prompt_file"), ("question", "question_file")):
            if getattr(self, text) is not None and getattr(self, file) is not None:
                raise UsageError(
                    f"judge.{text} and judge.{file}", "are both set", "give the text or the file, not both"
                )
        for name in ("batch_size", "max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"judge.{name}={getattr(self, name)}", "is below 1", "pass a positive count")
        if self.dtype not in DTYPES:
            raise UsageError(f"judge.dtype={self.dtype}", "is not a known dtype", f"use one of {DTYPES}")
        if self.device_map is not None and self.device_map not in DEVICE_MAPS:
            raise UsageError(
                f"judge.device_map={self.device_map}",
                "is not a placement strategy",
                f"use null (one device: judge.device) or one of {DEVICE_MAPS}",
            )
        if self.question is not None:
            check_template(self.question, "judge.question")

    def rubric(self) -> Rubric:
        """The prompt text these settings name (files read now); a template without a placeholder is an error."""
        system = self.system_prompt or ""
        if self.system_prompt_file is not None:
            system = _read_prompt_file(self.system_prompt_file, "judge.system_prompt_file")
        question = RUBRIC if self.question is None else self.question
        if self.question_file is not None:
            question = _read_prompt_file(self.question_file, "judge.question_file")
            check_template(question, f"judge.question_file={self.question_file}")
        return Rubric(system=system, question=question)


def check_template(template: str, option: str) -> None:
    """A question template must hold ``{reference}`` and ``{generated}``, else the judge sees neither report."""
    missing = [name for name in PLACEHOLDERS if "{" + name + "}" not in template]
    if missing:
        raise UsageError(
            option,
            f"the question template lacks {', '.join('{' + m + '}' for m in missing)}",
            "write {reference} where the reference report goes and {generated} where the generated one goes",
        )


def _read_prompt_file(path: str | Path, option: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, option, "does not exist", "give the path of a UTF-8 text file with the prompt")
    return read_text_utf8(path).removesuffix("\n")


@dataclass
class JudgeResult:
    """Judge outcome.

    Attributes:
        mean_score: mean over all pairs; an unparseable answer counts as 0.
        scores: per-pair scores in input order.
        answers: raw answers in input order.
        num_unparseable: answers without a 0-10 score.
        rubric_sha256: :attr:`Rubric.sha256` of the prompt text used.
        default_rubric: True when the rubric is our own wording, so the score is not comparable to the paper's
            LLaMA score (which needs the release's llama_score.py prompt).
        num_cached: answers taken from the cache file instead of generated.
    """

    mean_score: float
    scores: list[float]
    answers: list[str]
    num_unparseable: int
    rubric_sha256: str = ""
    default_rubric: bool = True
    num_cached: int = 0


def chat_prompt(tokenizer, rubric: Rubric, user: str) -> str:
    """One prompt: the chat template with the system message when there is one (see JudgeSettings)."""
    from jinja2.exceptions import TemplateError

    template = getattr(tokenizer, "chat_template", None)
    if rubric.system and template:
        messages = [{"role": "system", "content": rubric.system}, {"role": "user", "content": user}]
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError:  # the template's raise_exception("System role not supported"), e.g. Gemma
            text = None
        if text is not None and rubric.system.strip() in text:  # some templates drop the system message
            return text
    if rubric.system:
        user = f"{rubric.system}\n\n{user}"
    if template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
    return user


def build_prompts(
    tokenizer, generated: Sequence[str], references: Sequence[str], rubric: Rubric | None = None
) -> list[str]:
    """Rubric prompts (default: our :data:`RUBRIC`), wrapped in the model's chat template when it has one."""
    rubric = rubric or Rubric(system="", question=RUBRIC)
    return [
        chat_prompt(tokenizer, rubric, rubric.user_message(gen, ref))
        for gen, ref in zip(generated, references, strict=True)
    ]


def _load_model(model_path: Path, settings: JudgeSettings):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = settings.dtype if settings.dtype == "auto" else getattr(torch, settings.dtype)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if settings.device_map is None:
        return AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs).to(settings.device).eval()
    if importlib.util.find_spec("accelerate") is None:
        raise UsageError(
            f"judge.device_map={settings.device_map}",
            "needs the accelerate package, which is not installed",
            "pip install accelerate, or set judge.device_map=null to load the judge on judge.device",
        )
    model = AutoModelForCausalLM.from_pretrained(str(model_path), device_map=settings.device_map, **kwargs)
    return model.eval()


class LLMJudge:
    """Score reports with a local causal LM.

    Args:
        model_path: directory of a causal LM saved with ``save_pretrained`` (tokenizer included).
        settings: rubric, decoding, placement and cache (:class:`JudgeSettings`; None: its defaults).
        **changes: fields of :class:`JudgeSettings` to override (``LLMJudge(path, batch_size=8)``).
    """

    def __init__(self, model_path: str | Path, settings: JudgeSettings | None = None, **changes: Any) -> None:
        model_path = Path(model_path)
        if not (model_path / "config.json").is_file():  # else transformers reads the path as a hub repo id
            problem = "has no config.json" if model_path.is_dir() else "is not a folder"
            raise DataError(
                model_path,
                "judge model",
                problem if model_path.exists() else "does not exist",
                "pass a local causal LM directory written by save_pretrained (--judge-model, judge.model_path)",
            )
        self.settings = replace(settings or JudgeSettings(), **changes)
        self.rubric = self.settings.rubric()  # a bad prompt file fails before the model loads
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        self.tokenizer.padding_side = "left"  # decoder-only batching: answers must start right after prompts
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = _load_model(model_path, self.settings)
        self._fingerprint: str | None = None

    @property
    def input_device(self):
        """Where the inputs go: the device of the input embeddings (the first layer under a device map)."""
        return self.model.get_input_embeddings().weight.device

    def cache_key(self, prompt: str) -> str:
        """Key of one answer in the cache: the prompt text, the model and the decoding settings."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model_path)
        return fingerprint(prompt, self._fingerprint, self.settings.max_new_tokens, self.settings.dtype)

    def answers(self, generated: Sequence[str], references: Sequence[str]) -> list[str]:
        """Raw judge answers, one per pair, in input order (greedy)."""
        return self._judge(build_prompts(self.tokenizer, generated, references, self.rubric))[0]

    def _judge(self, prompts: list[str]) -> tuple[list[str], int]:
        """Answers in the order of ``prompts`` and how many came from the cache."""
        from tqdm import tqdm

        cache = AnswerCache.open(self.settings.cache_path) if self.settings.cache_path is not None else None
        keys = {p: self.cache_key(p) for p in prompts} if cache is not None else {}
        done = {p: cache.answers[keys[p]] for p in prompts if cache is not None and keys[p] in cache.answers}
        num_cached = sum(p in done for p in prompts)
        uses = Counter(prompts)
        todo = list(dict.fromkeys(p for p in prompts if p not in done))  # each distinct prompt once
        if todo:  # longest first: similar lengths share a batch (less padding), and memory peaks at once
            lengths = self.tokenizer(todo, add_special_tokens=False)["input_ids"]
            todo = [p for _, p in sorted(zip(lengths, todo, strict=True), key=lambda x: -len(x[0]))]
        size = self.settings.batch_size
        with tqdm(
            total=len(prompts),
            initial=num_cached,
            desc="LLM judge",
            unit="report",
            disable=not self.settings.progress,
        ) as bar:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                answers = self._generate(batch)
                done.update(zip(batch, answers, strict=True))
                if cache is not None:
                    cache.append([(keys[p], a, parse_score(a)) for p, a in zip(batch, answers, strict=True)])
                bar.update(sum(uses[p] for p in batch))
        return [done[p] for p in prompts], num_cached

    def _generate(self, batch: list[str]) -> list[str]:
        import torch

        enc = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.input_device
        )
        with torch.no_grad():
            tokens = self.model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=self.settings.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return self.tokenizer.batch_decode(tokens[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    def score(self, generated: Sequence[str], references: Sequence[str]) -> JudgeResult:
        """Mean score over all pairs; an unparseable answer scores 0 and is counted."""
        answers, num_cached = self._judge(build_prompts(self.tokenizer, generated, references, self.rubric))
        parsed = [parse_score(a) for a in answers]
        scores = [0.0 if p is None else p for p in parsed]
        mean = sum(scores) / len(scores) if scores else float("nan")
        result = JudgeResult(
            mean,
            scores,
            answers,
            sum(p is None for p in parsed),
            rubric_sha256=self.rubric.sha256,
            default_rubric=self.rubric.is_default,
            num_cached=num_cached,
        )
        log.info(
            "LLM judge: mean %.3f over %d reports (%d unparseable, %d answers from %s); rubric %s%s",
            mean,
            len(scores),
            result.num_unparseable,
            num_cached,
            self.settings.cache_path or "no cache",
            result.rubric_sha256[:12],
            " (adaragct's default wording, not the release's llama_score.py prompt)"
            if result.default_rubric
            else "",
        )
        return result
