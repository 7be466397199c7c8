"""LLM judge: the score parser over many answer forms, the rubric as configuration, and a tiny local Llama end to
end (batching in length order, input order kept, device_map, dtype, progress and the resumable answer cache)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

from adaragct.errors import DataError, UsageError
from adaragct.eval.judge import (
    RUBRIC,
    JudgeSettings,
    LLMJudge,
    Rubric,
    build_prompts,
    chat_prompt,
    parse_score,
)
from adaragct.eval.judge_cache import model_fingerprint

# sha256 of our default rubric's text: a change to it changes every default score, so it must be deliberate
DEFAULT_RUBRIC_SHA256 = "7ccf47c1651a537a4633f58a0530fcb18150fbbf8a31c4a44668380be1cf50d9"
# a question that ends with the generated report, so that a random tiny model's answer depends on the pair
SHORT_QUESTION = "reference {reference} generated {generated}"
GEN = [
    "no pleural effusion .",
    "nodule in the right lung the heart is normal . no pleural effusion .",
    "the heart is normal .",
    "score 7",
    "compare reports",
    "nodule",
]
REF = [
    "the heart is normal .",
    "nodule in the right lung",
    "no pleural effusion .",
    "0 1 2",
    "no",
    "reference",
]
USER_ONLY = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}<|assistant|>"
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}<|assistant|>"
)
DROPS_SYSTEM = (
    "{% for m in messages %}{% if m['role'] != 'system' %}<|{{ m['role'] }}|>{{ m['content'] }}{% endif %}"
    "{% endfor %}<|assistant|>"
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Score: 7/10. Minor differences in nodule size.", 7.0),
        ("8 / 10", 8.0),
        ("I would give this 10/10", 10.0),
        ("Score 7.5/10", 7.5),
        ("The report deserves 6 out of 10 because it misses the effusion.", 6.0),
        ("9 OUT OF 10", 9.0),
        ("5", 5.0),
        ("  Score: 3.  ", 3.0),
        ("0", 0.0),
        ("Comparing 2 reports, I find several errors; overall 4/10.", 4.0),  # x/10 wins over the first number
        (
            "Two findings are wrong, 14 mm nodule missed, rating 3",
            3.0,
        ),  # 14 is out of range: first 0-10 number
        ("The reports agree well.", None),
        ("", None),
        ("Score: 15", None),
    ],
)
def test_parse_score(answer: str, expected: float | None) -> None:
    assert parse_score(answer) == expected


def test_rubric_covers_the_protocol() -> None:
    text = RUBRIC.lower()
    for phrase in ("0 to 10", "7 to 9", "4 to 6", "1 to 3", "invents", "normal (negative) findings"):
        assert phrase in text


@pytest.fixture
def tokenizer(tmp_path: Path):
    """The tiny WordLevel tokenizer (no chat template of its own)."""
    from tests.eval.conftest import build_tokenizer

    return build_tokenizer(tmp_path)


def test_default_prompt_text_is_unchanged(tokenizer) -> None:
    """The configurable rubric's default must prompt exactly as the fixed rubric did (same default scores)."""
    assert hashlib.sha256(RUBRIC.encode()).hexdigest() == DEFAULT_RUBRIC_SHA256
    rubric = JudgeSettings().rubric()
    assert rubric == Rubric(system="", question=RUBRIC) and rubric.is_default
    gen, ref = [" nodule in the right lung\n", ""], ["the heart is normal .", " no effusion "]
    # the fixed rubric's prompts: str.format of the stripped texts, empty -> "(empty report)", one user message
    before = [
        RUBRIC.format(reference=r.strip(), generated=g.strip() or "(empty report)")
        for g, r in zip(gen, ref, strict=True)
    ]
    assert build_prompts(tokenizer, gen, ref, rubric) == before == build_prompts(tokenizer, gen, ref)
    tokenizer.chat_template = USER_ONLY
    templated = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": b}], tokenize=False, add_generation_prompt=True
        )
        for b in before
    ]
    assert build_prompts(tokenizer, gen, ref, rubric) == templated
    assert templated[0].startswith("<|user|>You are an expert thoracic radiologist")


def test_template_placeholders_are_replaced_once_and_other_braces_kept() -> None:
    rubric = Rubric(system="", question='Reply as JSON {"score": N}.\nREF: {reference}\nGEN: {generated}')
    text = rubric.user_message(generated="says {reference} literally", reference=" a {generated} b ")
    assert text == 'Reply as JSON {"score": N}.\nREF: a {generated} b\nGEN: says {reference} literally'


def test_settings_refuse_what_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"judge\.question: .*lacks \{generated\}"):
        JudgeSettings(question="Compare with {reference}.")
    with pytest.raises(UsageError, match=r"lacks \{reference\}, \{generated\}"):
        JudgeSettings(question="Rate the report.")
    file = tmp_path / "q.txt"
    file.write_text("Only {generated} here\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"judge\.question_file=.*q\.txt: .*lacks \{reference\}"):
        JudgeSettings(question_file=file).rubric()
    with pytest.raises(UsageError, match=r"judge\.question and judge\.question_file: are both set"):
        JudgeSettings(question=SHORT_QUESTION, question_file=file)
    with pytest.raises(UsageError, match=r"judge\.system_prompt and judge\.system_prompt_file"):
        JudgeSettings(system_prompt="x", system_prompt_file=file)
    with pytest.raises(DataError, match=r"missing\.txt: judge\.system_prompt_file: does not exist"):
        JudgeSettings(system_prompt_file=tmp_path / "missing.txt").rubric()
    with pytest.raises(UsageError, match=r"judge\.dtype=fp8"):
        JudgeSettings(dtype="fp8")
    with pytest.raises(UsageError, match=r"judge\.device_map=cuda:1"):
        JudgeSettings(device_map="cuda:1")
    with pytest.raises(UsageError, match=r"judge\.batch_size=0"):
        JudgeSettings(batch_size=0)


def test_prompt_files_are_read_as_written_but_the_final_newline(tmp_path: Path) -> None:
    """The release's llama_score.py text pasted into files: all of it counts but an editor's last newline."""
    (tmp_path / "system.txt").write_text("You grade reports.\n\n", encoding="utf-8")
    (tmp_path / "question.txt").write_bytes(b"Ref: {reference}\r\nGen: {generated}\r\nScore?\r\n")
    rubric = JudgeSettings(
        system_prompt_file=tmp_path / "system.txt", question_file=tmp_path / "question.txt"
    ).rubric()
    assert rubric.system == "You grade reports.\n"
    assert rubric.question == "Ref: {reference}\nGen: {generated}\nScore?"  # Windows line ends read as \\n
    assert not rubric.is_default
    same_text = JudgeSettings(system_prompt="You grade reports.\n", question=rubric.question).rubric()
    assert same_text.sha256 == rubric.sha256  # the hash is of the text, wherever it came from
    assert rubric.sha256 != JudgeSettings().rubric().sha256
    assert (
        rubric.sha256 != JudgeSettings(question=rubric.question).rubric().sha256
    )  # the system prompt counts


@pytest.mark.parametrize(
    ("template", "system_message"),
    [(USER_ONLY, True), (NO_SYSTEM, False), (DROPS_SYSTEM, False), (None, False)],
    ids=["system-role", "template-raises", "template-drops-it", "no-template"],
)
def test_system_prompt_is_a_system_message_or_put_before_the_question(
    tokenizer, template: str | None, system_message: bool
) -> None:
    tokenizer.chat_template = template
    rubric = Rubric(system="You grade CT reports.", question=SHORT_QUESTION)
    prompt = chat_prompt(tokenizer, rubric, "reference a generated b")
    if system_message:
        assert prompt == "<|system|>You grade CT reports.</s><|user|>reference a generated b</s><|assistant|>"
    elif template is None:
        assert prompt == "You grade CT reports.\n\nreference a generated b"
    else:
        assert prompt == "<|user|>You grade CT reports.\n\nreference a generated b<|assistant|>"


def test_tiny_llama_judge_batched_equals_unbatched(tiny_llama_dir) -> None:
    model_dir = tiny_llama_dir
    gen = ["no pleural effusion .", "nodule in the right lung", "the heart is normal ."]
    ref = ["the heart is normal .", "nodule in the right lung", "no pleural effusion ."]
    batched = LLMJudge(model_dir, batch_size=3, max_new_tokens=12)
    single = LLMJudge(model_dir, batch_size=1, max_new_tokens=12)
    result = batched.score(gen, ref)
    assert batched.answers(gen, ref) == single.answers(gen, ref)  # left padding does not change answers
    assert len(result.scores) == 3 and len(result.answers) == 3
    expected = [parse_score(a) for a in result.answers]
    assert result.num_unparseable == sum(e is None for e in expected)
    assert result.scores == [0.0 if e is None else e for e in expected]
    assert result.mean_score == pytest.approx(sum(result.scores) / 3)
    assert result.default_rubric and result.rubric_sha256 == Rubric("", RUBRIC).sha256
    assert result.num_cached == 0


def _count_generate(judge: LLMJudge, fail_after: int | None = None) -> list[int]:
    """Wrap the real ``generate`` to record each call's batch size; raise after ``fail_after`` calls (a kill).
    ``judge.prompt_lengths`` gets each call's prompt lengths in tokens."""
    calls: list[int] = []
    judge.prompt_lengths = []
    real = judge.model.generate

    def generate(*args, **kwargs):
        if fail_after is not None and len(calls) == fail_after:
            raise KeyboardInterrupt("stopped by the test")
        calls.append(int(kwargs["input_ids"].shape[0]))
        judge.prompt_lengths.append(kwargs["attention_mask"].sum(dim=1).tolist())
        return real(*args, **kwargs)

    judge.model.generate = generate
    return calls


def test_answers_come_back_in_input_order_after_length_sorting(tiny_llama_dir) -> None:
    judge = LLMJudge(tiny_llama_dir, batch_size=2, max_new_tokens=6, question=SHORT_QUESTION, progress=False)
    prompts = build_prompts(judge.tokenizer, GEN, REF, judge.rubric)
    lengths = [len(ids) for ids in judge.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    assert lengths != sorted(lengths, reverse=True)  # the batches really are formed in another order
    one_by_one = [judge.answers([g], [r])[0] for g, r in zip(GEN, REF, strict=True)]
    assert len(set(one_by_one)) >= 4  # answers differ by pair, so a permutation would show
    calls = _count_generate(judge)
    assert judge.answers(GEN, REF) == one_by_one
    assert calls == [2, 2, 2]
    batched = [n for call in judge.prompt_lengths for n in call]
    assert batched == sorted(lengths, reverse=True)  # longest first


def test_a_repeated_pair_is_generated_once(tiny_llama_dir) -> None:
    judge = LLMJudge(tiny_llama_dir, batch_size=4, max_new_tokens=6, question=SHORT_QUESTION, progress=False)
    calls = _count_generate(judge)
    result = judge.score([GEN[0], GEN[1], GEN[0]], [REF[0], REF[1], REF[0]])
    assert calls == [2] and result.answers[0] == result.answers[2] and len(result.scores) == 3


def test_progress_bar_counts_reports_and_can_be_turned_off(tiny_llama_dir, capsys) -> None:
    judge = LLMJudge(tiny_llama_dir, batch_size=2, max_new_tokens=2, question=SHORT_QUESTION)
    capsys.readouterr()
    judge.answers(GEN[:3], REF[:3])
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("LLM judge: 100%") and "3/3" in last and "report/s" in last
    quiet = LLMJudge(tiny_llama_dir, max_new_tokens=2, question=SHORT_QUESTION, progress=False)
    quiet.answers(GEN[:3], REF[:3])
    assert "LLM judge" not in capsys.readouterr().err


def test_killed_run_resumes_from_the_cache_with_identical_scores(
    tiny_llama_dir, tmp_path: Path, caplog
) -> None:
    settings = JudgeSettings(batch_size=2, max_new_tokens=6, question=SHORT_QUESTION, progress=False)
    uninterrupted = LLMJudge(tiny_llama_dir, settings).score(GEN, REF)
    cache = tmp_path / "judge_cache.jsonl"
    killed = LLMJudge(tiny_llama_dir, settings, cache_path=cache)
    _count_generate(killed, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        killed.score(GEN, REF)
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 4  # two finished batches of two

    rerun = LLMJudge(tiny_llama_dir, settings, cache_path=cache)
    calls = _count_generate(rerun)
    resumed = rerun.score(GEN, REF)
    assert calls == [2]  # only the two missing prompts
    assert resumed.num_cached == 4
    assert (resumed.answers, resumed.scores, resumed.mean_score, resumed.num_unparseable) == (
        uninterrupted.answers,
        uninterrupted.scores,
        uninterrupted.mean_score,
        uninterrupted.num_unparseable,
    )
    records = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6 and {r["answer"] for r in records} == set(uninterrupted.answers)
    assert all(r["score"] == parse_score(r["answer"]) for r in records)

    # killed in the middle of a write: the last record loses its tail; the rerun warns, repairs, redoes one
    text = cache.read_text(encoding="utf-8")
    cache.write_text(text[: text.rstrip("\n").rfind("\n") + 1] + text.splitlines()[-1][:25], encoding="utf-8")
    again = LLMJudge(tiny_llama_dir, settings, cache_path=cache)
    calls = _count_generate(again)
    with caplog.at_level(logging.WARNING, logger="adaragct.eval.judge_cache"):
        repaired = again.score(GEN, REF)
    assert "last line is incomplete" in caplog.text
    assert calls == [1] and repaired.num_cached == 5 and repaired.answers == uninterrupted.answers
    assert cache.read_text(encoding="utf-8").endswith("\n")
    assert len([json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]) == 6

    done = LLMJudge(tiny_llama_dir, settings, cache_path=cache)
    calls = _count_generate(done)
    assert done.score(GEN, REF).answers == uninterrupted.answers and calls == []


def test_cache_is_not_reused_when_the_budget_or_the_model_changes(tiny_llama_dir, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "judge_cache.jsonl"
    settings = JudgeSettings(
        batch_size=3, max_new_tokens=4, question=SHORT_QUESTION, progress=False, cache_path=cache
    )
    LLMJudge(tiny_llama_dir, settings).score(GEN[:3], REF[:3])
    longer = LLMJudge(tiny_llama_dir, settings, max_new_tokens=5)
    calls = _count_generate(longer)
    assert longer.score(GEN[:3], REF[:3]).num_cached == 0 and calls == [3]

    copy = shutil.copytree(tiny_llama_dir, tmp_path / "copy")
    assert model_fingerprint(copy) == model_fingerprint(tiny_llama_dir)  # same files, another folder
    other = tmp_path / "other"
    model = AutoModelForCausalLM.from_pretrained(str(copy), local_files_only=True)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.01)  # another fine-tune of one architecture: same sizes, other bytes
    model.save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(copy / name, other / name)
    assert model_fingerprint(other) != model_fingerprint(tiny_llama_dir)
    assert LLMJudge(copy, settings).score(GEN[:3], REF[:3]).num_cached == 3
    assert LLMJudge(other, settings).score(GEN[:3], REF[:3]).num_cached == 0


def test_a_malformed_cache_line_names_the_line(tiny_llama_dir, tmp_path: Path) -> None:
    cache = tmp_path / "judge_cache.jsonl"
    cache.write_text('{"format": 1, "key": "a", "answer": "7/10", "score": 7}\nnot json\n{"key": "b"}\n')
    judge = LLMJudge(tiny_llama_dir, max_new_tokens=2, progress=False, cache_path=cache)
    with pytest.raises(DataError, match=r"judge_cache\.jsonl: line 2: not a judge answer record"):
        judge.score(GEN[:1], REF[:1])


def test_device_map_auto_and_dtype(tiny_llama_dir) -> None:
    """With a device map the inputs go where the model's embeddings are, whatever judge.device says."""
    import torch

    pytest.importorskip("accelerate", reason="device_map needs accelerate")
    first = "cuda:0" if torch.cuda.is_available() else "cpu"
    plain = LLMJudge(
        tiny_llama_dir, batch_size=2, max_new_tokens=6, question=SHORT_QUESTION, progress=False, device=first
    )
    mapped = LLMJudge(
        tiny_llama_dir,
        batch_size=2,
        max_new_tokens=6,
        question=SHORT_QUESTION,
        progress=False,
        device="cuda:7",  # unused under a device map (there is no such GPU here)
        device_map="auto",
    )
    assert mapped.input_device == torch.device(first)
    assert mapped.answers(GEN, REF) == plain.answers(GEN, REF)
    bf16 = LLMJudge(tiny_llama_dir, max_new_tokens=2, dtype="bfloat16", progress=False)
    assert bf16.model.dtype == torch.bfloat16 and plain.model.dtype == torch.float32


def test_device_map_without_accelerate_is_a_usage_error(tiny_llama_dir, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "accelerate", None)  # what an environment without the package looks like
    with pytest.raises(UsageError, match=r"judge\.device_map=auto: needs the accelerate package"):
        LLMJudge(tiny_llama_dir, device_map="auto")
