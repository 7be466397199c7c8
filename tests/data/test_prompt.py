"""The prompt (docs/method.md#model-and-training) and the findings sentence of ``prompt=findings`` (issue 20)."""

from __future__ import annotations

import pytest

from adaragct.constants import TASK_TOKEN
from adaragct.data.prompt import (
    ASSISTANT,
    BOS,
    NO_FINDINGS,
    PromptConfig,
    build_prompt,
    findings_document,
    user_message,
    with_global_context,
)
from tests.conftest import compose_config


def _prompt(name: str = "default") -> PromptConfig:
    return PromptConfig(**compose_config("train", [f"prompt={name}"], resolve=False).prompt)


def test_the_papers_prompt_is_unchanged_by_the_findings_option() -> None:
    prompt = _prompt()
    assert prompt.findings_sentence is None
    user = user_message(prompt)
    assert user.endswith(f"{TASK_TOKEN} {prompt.question}")
    assert build_prompt(prompt, ["Emphysema"]) == build_prompt(
        prompt
    )  # findings are ignored without a sentence


def test_findings_sentence_closes_the_user_turn() -> None:
    prompt = _prompt("findings")
    text = build_prompt(prompt, ["Emphysema", "Lung nodule"])
    assert "The embeddings suggest: emphysema, lung nodule.<|eot_id|>" + ASSISTANT in text
    assert text.endswith(ASSISTANT)
    assert f"suggest: {NO_FINDINGS}." in build_prompt(prompt, [])


def test_findings_prompt_needs_the_findings() -> None:
    with pytest.raises(ValueError, match="needs the volume's findings"):
        build_prompt(_prompt("findings"))
    with pytest.raises(ValueError, match="findings"):
        PromptConfig(
            system="s", embeddings_sentence=_prompt().embeddings_sentence, question="q", findings_sentence="x"
        )


def test_pretraining_document_is_the_prompts_tail_then_the_report() -> None:
    prompt = _prompt("findings")
    doc = findings_document(prompt, ["Cardiomegaly"], " The heart is enlarged. ")
    tail = build_prompt(prompt, ["Cardiomegaly"]).split(f"{prompt.question} ")[1]
    assert doc.endswith(tail + "The heart is enlarged.")


def test_global_context_goes_before_the_prompt_in_the_releases_words() -> None:
    prompt = build_prompt(_prompt())
    reports = ["Lungs are clear. No effusion.", "Mild cardiomegaly."]
    assert with_global_context(prompt, reports) == (
        f"{BOS}<|ret_start|> Reference context: Lungs are clear. No effusion. Mild cardiomegaly. <|ret_end|>\n"
        + prompt[len(BOS) :]
    )
    assert with_global_context("Write.", ["A."]) == "<|ret_start|> Reference context: A. <|ret_end|>\nWrite."
    assert with_global_context(prompt, []) == prompt  # every neighbour's report empty: no global context
