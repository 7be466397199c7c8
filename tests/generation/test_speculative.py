"""Speculative rewrite (issue 15): verifying the probe as a draft of the rewrite writes exactly what the
token-by-token loop writes, on the demo's pretrained tiny LM, a batch of 16, fixed and continuous batching."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from adaragct.data.datasets import split_reports
from adaragct.data.sentences import split_sentences
from adaragct.generation import AdaptiveGenerator, GenerationSettings
from adaragct.retrieval.retrievers import RetrievalQuery, RetrievalResult


class SentenceRetriever:
    """Report sentences of the demo cohort, chosen by the probe (the loop is under test, not retrieval); finds
    nothing for every fifth probe length, so empty retrievals (and their drafts) come up too."""

    name = "sentences"

    def __init__(self, sentences: list[str]) -> None:
        self.sentences = sentences

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        if len(query.probe) % 5 == 0:
            return RetrievalResult(organ="lung", note="nothing")
        start = (7 * len(query.probe)) % len(self.sentences)
        picked = [(start + i) % len(self.sentences) for i in range(query.top_k)]
        return RetrievalResult(
            tuple(self.sentences[i] for i in picked),
            (1.0,) * len(picked),
            tuple(map(str, picked)),
            organ="lung",
        )


@pytest.fixture(scope="module")
def demo_lm(small_demo: dict):
    """The demo's tiny LM as prepare pretrains it on the cohort's reports, its tokenizer, and report openings."""
    tokenizer = AutoTokenizer.from_pretrained(small_demo["tokenizer_dir"])
    tokenizer.padding_side = "left"
    lm = LlamaForCausalLM.from_pretrained(small_demo["tiny_lm_dir"]).eval()
    reports = list(split_reports(small_demo, "valid").values())
    sentences = sorted({s for r in split_reports(small_demo, "train").values() for s in split_sentences(r)})
    return lm, tokenizer, reports, sentences[:400]


def _generate(demo_lm, speculative: bool, probe: str, continuous: bool, **settings):
    lm, tokenizer, reports, sentences = demo_lm
    # 16 rows, each opening with the first 1-6 words of a validation report: rows ask at different positions
    prompts = [" ".join(reports[i % len(reports)].split()[: 1 + i % 6]) for i in range(16)]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    embeds = lm.get_input_embeddings()(enc.input_ids).detach()
    options = {
        "top_k": 3,
        "max_new_tokens": 70,
        "rag_logit_bias": 6.0,
        "max_retrievals": 3,
        "probe_max_tokens": 16,
    }
    options |= {"min_probe_chars": 8, "cooldown_tokens": 3, "probe": probe, "speculative": speculative}
    gen = AdaptiveGenerator(
        lm, tokenizer, SentenceRetriever(sentences), GenerationSettings(**(options | settings))
    )
    ids = [f"v{i}" for i in range(16)]
    if continuous:  # 16 reports through 5 slots
        live = enc.attention_mask.bool()
        items = [(embeds[i][live[i]], enc.attention_mask[i][live[i]], v) for i, v in enumerate(ids)]
        outputs = [o for _, o in sorted(gen.generate_stream(items, 5), key=lambda pair: pair[0])]
    else:
        outputs = gen.generate(embeds, enc.attention_mask, ids)
    return outputs, gen.stats


def _without_acceptance(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "draft_accepted"} for entry in log]


@pytest.mark.parametrize(
    ("probe", "continuous"),
    [("draft", False), ("draft", True), ("after_rag", False)],
    ids=["draft-fixed", "draft-continuous", "after_rag-fixed"],
)
def test_speculative_rewrite_writes_what_token_by_token_decoding_writes(demo_lm, probe, continuous) -> None:
    with torch.no_grad():
        plain, plain_stats = _generate(demo_lm, False, probe, continuous)
        fast, stats = _generate(demo_lm, True, probe, continuous)
    for a, b in zip(plain, fast, strict=True):
        assert a.token_ids == b.token_ids, a.volume_id
        assert a.retrieval_log == _without_acceptance(b.retrieval_log), a.volume_id
        assert (a.text, a.retrieval_count, a.stopped_on_end_token) == (
            b.text,
            b.retrieval_count,
            b.stopped_on_end_token,
        )
    events = [e for o in fast for e in o.retrieval_log if "draft_accepted" in e]
    retrieved = [e for e in events if e["action"] == "retrieved"]
    # the test means something: many injections at many positions, drafts rejected at their first token
    assert len(retrieved) >= 12 and len({e["step"] for e in retrieved}) >= 6, retrieved
    assert 0 in [e["draft_accepted"] for e in retrieved], "a draft rejected at its first token"
    assert stats["draft_accepted"] == sum(e["draft_accepted"] for e in events)
    if probe == "draft":
        assert any(e["draft_accepted"] > 0 for e in retrieved), "a draft kept in part"
        assert stats["draft_tokens"] > stats["draft_accepted"] > 0
        assert stats["forward_passes"] < plain_stats["forward_passes"]
        # an empty retrieval's draft is what plain decoding writes: kept whole (up to the row's last token)
        empty = [e for e in events if e["action"] == "empty"]
        assert empty and all(e["draft_accepted"] > 0 for e in empty)
