"""LLM judge: the score parser over many answer forms, and a tiny local Llama end to end."""

from __future__ import annotations

import pytest

from adaragct.eval.judge import RUBRIC, LLMJudge, parse_score


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
