"""The per-row policy of the adaptive loop, without a model: modes, actions, the trace (issue 15); and the
greedy choice and draft penalty it relies on."""

from __future__ import annotations

import pytest
import torch

from adaragct.generation import GenerationSettings
from adaragct.generation.penalty import SeenTokens, greedy_candidates
from adaragct.generation.policy import EndProbe, Feed, Finish, Mode, RowPolicy, Tokens
from adaragct.retrieval.retrievers import RetrievalResult

# a toy vocabulary: ids are list positions; "<e>" is the end token, "[RAG]" the retrieval token
VOCAB = [
    "<e>",
    "[RAG]",
    " ",
    "The",
    " lungs",
    " are",
    " clear",
    ".",
    " 1",
    ".5",
    " cm",
    " Heart",
    " normal",
    "x",
]
ID = {text: i for i, text in enumerate(VOCAB)}
TOKENS = Tokens(rag=ID["[RAG]"], end=ID["<e>"], space=ID[" "])


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids if i not in (TOKENS.rag, TOKENS.end))


def policy(**settings) -> RowPolicy:
    options = {
        "top_k": 3,
        "max_new_tokens": 30,
        "cooldown_tokens": 2,
        "min_probe_chars": 5,
        "probe_max_tokens": 6,
    }
    options["probe"] = "draft"  # the probe starts with the token given as ``alt`` with [RAG]
    return RowPolicy(GenerationSettings(**(options | settings)), TOKENS, decode, can_retrieve=True)


def write(p: RowPolicy, *words: str) -> list:
    return [p.on_token(ID[w], ID[w]) for w in words]


FOUND = RetrievalResult(("Lungs clear.",), (0.9,), ("s1",), organ="lung")


def test_writing_and_finishing() -> None:
    p = policy(max_new_tokens=3)
    assert write(p, "The", " lungs") == [
        Feed((ID["The"],), decoded=ID["The"]),
        Feed((ID[" lungs"],), decoded=4),
    ]
    assert isinstance(p.on_token(ID[" are"], ID[" are"]), Finish) and p.done and not p.hit_end
    q = policy()
    assert isinstance(q.on_token(TOKENS.end, TOKENS.end), Finish) and q.hit_end and q.output == []


@pytest.mark.parametrize("where", ["after_rag", "draft"])
def test_a_probe_ends_at_the_sentence_end_and_the_retrieval_is_injected(where: str) -> None:
    p = policy(probe=where)
    write(p, "The")
    start = p.on_token(TOKENS.rag, ID[" lungs"])
    assert p.mode is Mode.PROBE and p.rag_barred and not p.may_retrieve
    if where == "after_rag":  # [RAG] goes into the cache first, the probe is decoded after it
        assert start == Feed((TOKENS.rag,), probe=True)
        start = p.on_token(ID[" lungs"], ID[" lungs"])
    # draft: the probe starts with the token the row would have taken instead of [RAG]
    assert start == Feed((ID[" lungs"],), probe=True, decoded=ID[" lungs"])
    assert write(p, " are", " clear")[-1] == Feed((ID[" clear"],), probe=True, decoded=ID[" clear"])
    end = p.on_token(ID["."], ID["."])
    assert end == EndProbe("lungs are clear.", ask=True) and p.output == [ID["The"]]
    inject = p.after_probe(end.probe_text, FOUND, span=(90, 91), preview="Lungs clear.")
    draft = (ID[" lungs"], ID[" are"], ID[" clear"], ID["."])
    assert inject == Feed((TOKENS.rag, 90, 91, *draft), draft=draft)
    assert p.retrievals == 1 and p.mode is Mode.NORMAL
    entry = p.log[-1]
    assert entry["action"] == "retrieved" and entry["step"] == 1 and entry["context"] == ["Lungs clear."]
    assert entry["draft_accepted"] == 0 and entry["ctx_preview"] == "Lungs clear."
    p.accepted(3)
    assert p.log[-1]["draft_accepted"] == 3


def test_the_trace_says_at_which_character_of_the_report_each_retrieval_happened() -> None:
    """``char_offset`` counts characters of the report as the generator writes it ([RAG] dropped, stripped), so a
    viewer can mark the sentence rewritten after each retrieval; ``step`` counts tokens."""
    p = policy(probe="after_rag", ignored_rag="feed")
    write(p, " ", "The")  # a leading space: stripped from the report
    p.on_token(TOKENS.rag, ID["x"])
    p.on_token(ID["x"], ID["x"])
    end = p.on_token(ID["."], ID["."])  # "x." is too short to ask with: cancelled, a space written
    p.after_probe(end.probe_text, None)
    write(p, "[RAG]", " lungs", " are", " clear", ".")  # in the cooldown a [RAG] is written, not shown
    p.on_token(TOKENS.rag, ID[" Heart"])
    for word in (" Heart", " normal"):
        p.on_token(ID[word], ID[word])
    end = p.on_token(ID["."], ID["."])
    p.after_probe(end.probe_text, FOUND, span=(90,))
    write(p, " Heart", " normal", ".")
    text = decode(p.output).strip()  # AdaptiveGenerator._text
    assert text == "The  lungs are clear. Heart normal."
    cancelled, retrieved = p.log
    assert cancelled["action"] == "cancelled" and (cancelled["step"], cancelled["char_offset"]) == (2, 3)
    assert retrieved["step"] == 8 and text[: retrieved["char_offset"]] == "The  lungs are clear."
    assert text[retrieved["char_offset"] :] == " Heart normal."


def test_without_speculation_the_rewrite_starts_after_the_context() -> None:
    p = policy(speculative=False)
    p.on_token(TOKENS.rag, ID["The"])
    for word in (" lungs", " are", " clear"):
        p.on_token(ID[word], ID[word])
    end = p.on_token(ID["."], ID["."])
    assert p.after_probe(end.probe_text, FOUND, span=(90,)) == Feed((TOKENS.rag, 90))
    assert "draft_accepted" not in p.log[-1]


def test_decimals_do_not_end_a_probe_and_long_probes_stop() -> None:
    p = policy(probe_max_tokens=4)
    p.on_token(TOKENS.rag, ID[" 1"])
    assert p.on_token(ID[".5"], ID[".5"]).probe  # "1.5" goes on
    assert p.on_token(ID[" cm"], ID[" cm"]).probe
    assert p.on_token(ID[" Heart"], ID[" Heart"]) == EndProbe("1.5 cm Heart", ask=True)  # 4 tokens


def test_a_short_probe_cancels_writes_a_space_and_cools_down() -> None:
    p = policy(cooldown_tokens=2)
    p.on_token(TOKENS.rag, ID["x"])
    end = p.on_token(ID["."], ID["."])
    assert end == EndProbe("x.", ask=False)
    assert p.after_probe(end.probe_text, None) == Feed((TOKENS.space,), decoded=TOKENS.space)
    assert p.mode is Mode.COOLDOWN and p.log[-1]["action"] == "cancelled"
    assert p.rag_barred and p.choose(best=3, rag_wins_biased=True, rag_wins=True) == 3
    write(p, "The")
    assert p.mode is Mode.COOLDOWN
    write(p, " lungs")
    assert p.mode is Mode.NORMAL and p.may_retrieve
    assert p.choose(best=3, rag_wins_biased=True, rag_wins=False) == TOKENS.rag  # the bias applies again
    fed = policy(ignored_rag="feed", cooldown_tokens=2)  # a [RAG] it may not act on is written, then dropped
    fed.on_token(TOKENS.rag, ID["x"])
    fed.after_probe("x", None)
    assert fed.choose(best=3, rag_wins_biased=True, rag_wins=True) == TOKENS.rag
    assert fed.on_token(TOKENS.rag, 3) == Feed((TOKENS.rag,), decoded=TOKENS.rag)


@pytest.mark.parametrize("where", ["after_rag", "draft"])
def test_an_empty_retrieval_holds_until_the_sentence_ends(where: str) -> None:
    p = policy(probe=where)
    p.on_token(TOKENS.rag, ID[" Heart"])
    probe = [ID[" Heart"], ID[" normal"], ID["."]] if where == "draft" else [ID["The"], ID[" lungs"], ID["."]]
    for token in probe[int(where == "draft") :]:
        action = p.on_token(token, token)
    assert isinstance(action, EndProbe)
    follow = p.after_probe(action.probe_text, RetrievalResult(organ="heart", note="none"))
    # the row writes what it would have without [RAG]; in draft mode the rest of the probe is a draft of it
    if where == "draft":
        assert follow == Feed(
            (ID[" Heart"], ID[" normal"], ID["."]), draft=(ID[" normal"], ID["."]), decoded=11
        )
    else:
        assert follow == Feed((ID[" Heart"],), decoded=ID[" Heart"])
    assert p.mode is Mode.HOLD and p.rag_barred and p.log[-1]["action"] == "empty"
    write(p, " normal")
    assert p.mode is Mode.HOLD
    write(p, ".")
    assert p.mode is Mode.NORMAL and p.retrievals == 0


def test_retrievals_stop_at_the_maximum() -> None:
    p = policy(max_retrievals=1)
    p.on_token(TOKENS.rag, ID["The"])
    for word in (" lungs", " are", " clear"):
        p.on_token(ID[word], ID[word])
    end = p.on_token(ID["."], ID["."])
    p.after_probe(end.probe_text, FOUND, span=(90,))
    assert not p.may_retrieve and p.rag_barred  # suppressed from now on
    assert (
        policy().may_retrieve
        and not RowPolicy(GenerationSettings(top_k=3), TOKENS, decode, False).may_retrieve
    )


def test_greedy_candidates_reproduce_argmax_for_every_state() -> None:
    """Best non-[RAG] token and whether [RAG] wins, with ties broken towards the lower id as argmax does."""
    torch.manual_seed(0)
    scores = torch.randint(-3, 3, (200, 6)).float()  # many ties
    rag, bias = 2, 1.0
    for row, (best, wins_biased, wins) in zip(scores, greedy_candidates(scores, rag, bias), strict=True):
        barred = row.clone()
        barred[rag] = float("-inf")
        biased = row.clone()
        biased[rag] += bias
        assert best == int(barred.argmax())
        assert (rag if wins_biased else best) == int(biased.argmax())
        assert (rag if wins else best) == int(row.argmax())


def test_the_draft_penalty_counts_the_draft_tokens_before_each_position() -> None:
    seen = SeenTokens(2, 8, torch.device("cpu"))
    seen.add(1, 5)
    logits = torch.randn(4, 8)
    draft = (3, 6, 3)
    window = seen.apply_draft(1, logits, draft, 1.3)
    for i in range(4):
        step = SeenTokens(1, 8, torch.device("cpu"))
        step.reset_row(0, [5, *draft[:i]])
        torch.testing.assert_close(window[i], step.apply(logits[i : i + 1], 1.3)[0], rtol=0, atol=0)


def test_one_sentence_end_rule_for_probes_holds_and_retrievers() -> None:
    from adaragct.data.sentences import ends_sentence, first_sentence_end
    from adaragct.retrieval.retrievers import current_sentence

    assert first_sentence_end("lungs 1.5 cm") is None and first_sentence_end("at T12. Lungs") == 7
    assert first_sentence_end("clear.") == 6 and not ends_sentence("size 1", "size 1.")
    assert (
        current_sentence("Heart normal. Nodule of 1.5 cm in", "the lung.") == "Nodule of 1.5 cm in the lung."
    )
    assert current_sentence("Level T12. Lungs", "clear.") == "Lungs clear."
