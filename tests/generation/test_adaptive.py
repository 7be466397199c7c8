"""The adaptive decoding loop on a real tiny Llama: equivalence with HF generate, injection correctness,
batch invariance (issue 6)."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from adaragct.constants import RAG_TOKEN
from adaragct.data.prompt import EOT
from adaragct.generation import AdaptiveGenerator, GenerationSettings
from adaragct.retrieval.retrievers import RetrievalQuery, RetrievalResult

PROMPTS = [
    "The heart is normal.",
    "Lungs:",
    "Mediastinum",
    "No pleural effusion was observed. The aorta",
    "Bilateral",
    "A nodule of 5 mm",
    "Trachea and both main bronchi are open. There is",
    "Impression:",
]


class TableRetriever:
    """A deterministic retriever over a fixed sentence list (the loop is under test here, not retrieval):
    returns top_k sentences chosen by the probe's length, with ids and scores for the trace."""

    name = "table"

    def __init__(self, sentences: list[str]) -> None:
        self.sentences = sentences

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        start = len(query.probe) % len(self.sentences)
        picked = [(start + i) % len(self.sentences) for i in range(query.top_k)]
        return RetrievalResult(
            tuple(self.sentences[i] for i in picked),
            tuple(1.0 / (i + 1) for i in range(len(picked))),
            tuple(str(i) for i in picked),
            organ="lung",
        )


@pytest.fixture(scope="module")
def tokenizer(small_demo: dict):
    tok = AutoTokenizer.from_pretrained(small_demo["tokenizer_dir"])
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def lm(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger weights than the default init, so greedy decoding is not a flat argmax
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return model


def _prefix(lm, tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return lm.get_input_embeddings()(enc.input_ids), enc.attention_mask


def _strip(ids: list[int], end: int, pad: int) -> list[int]:
    out = []
    for t in ids:
        if t == end:
            break
        out.append(t)
    return out


def _hf_generate(lm, tokenizer, embeds, mask, penalty: float, suppress_rag: bool = True) -> list[list[int]]:
    """HF greedy decoding; [RAG] suppressed as our loop does when it may not retrieve (retrieval=none)."""
    end = tokenizer.convert_tokens_to_ids(EOT)
    suppress = [tokenizer.convert_tokens_to_ids(RAG_TOKEN)] if suppress_rag else None
    out = lm.generate(
        inputs_embeds=embeds,
        attention_mask=mask,
        max_new_tokens=40,
        do_sample=False,
        repetition_penalty=penalty,
        eos_token_id=end,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=suppress,
    )
    return [_strip(row.tolist(), end, tokenizer.pad_token_id) for row in out]


def test_retrieval_none_equals_hf_generate(lm, tokenizer) -> None:
    embeds, mask = _prefix(lm, tokenizer, PROMPTS)
    ids = [str(i) for i in range(8)]
    # no penalty: HF's batched generate is the reference
    ours = AdaptiveGenerator(
        lm, tokenizer, None, GenerationSettings(top_k=3, max_new_tokens=40, repetition_penalty=1.0)
    )
    assert [o.token_ids for o in ours.generate(embeds, mask, ids)] == _hf_generate(
        lm, tokenizer, embeds, mask, 1.0
    )
    # penalty 1.2: transformers 5.24 skips the first <left-padding> generated tokens of a padded row when it
    # penalises after `inputs_embeds` (it mistakes them for prompt padding), so its per-row, unpadded run is the
    # faithful reference; our batch of 8 must equal every one of them
    ours = AdaptiveGenerator(
        lm, tokenizer, None, GenerationSettings(top_k=3, max_new_tokens=40, repetition_penalty=1.2)
    )
    batched = ours.generate(embeds, mask, ids)
    for row, out in enumerate(batched):
        alone = embeds[row][mask[row].bool()][None]
        assert (
            out.token_ids
            == _hf_generate(lm, tokenizer, alone, torch.ones(alone.shape[:2], dtype=torch.long), 1.2)[0]
        ), f"row {row}"
    assert sum(len(o.token_ids) for o in batched) > 8 * 10


def test_feeding_ignored_rag_equals_raw_greedy(lm, tokenizer) -> None:
    embeds, mask = _prefix(lm, tokenizer, PROMPTS)
    rag = tokenizer.convert_tokens_to_ids(RAG_TOKEN)
    settings = GenerationSettings(
        top_k=3, max_new_tokens=40, repetition_penalty=1.0, rag_logit_bias=3.0, ignored_rag="feed"
    )
    ours = AdaptiveGenerator(lm, tokenizer, None, settings).generate(embeds, mask, [str(i) for i in range(8)])
    hf = _hf_generate(lm, tokenizer, embeds, mask, 1.0, suppress_rag=False)
    plain = AdaptiveGenerator(
        lm,
        tokenizer,
        None,
        GenerationSettings(top_k=3, max_new_tokens=40, repetition_penalty=1.0, ignored_rag="feed"),
    )
    assert [o.token_ids for o in plain.generate(embeds, mask, [str(i) for i in range(8)])] == hf
    # the bias only applies when the row may retrieve: with retrieval=none it changes nothing
    assert [o.token_ids for o in ours] == hf
    assert any(rag in ids for ids in hf), (
        "the raw model must emit [RAG] somewhere for this test to mean anything"
    )
    assert all(RAG_TOKEN not in o.text for o in ours)


def _generator(lm, tokenizer, on_forward=None, **kwargs) -> AdaptiveGenerator:
    options = {
        "top_k": 3,
        "max_new_tokens": 48,
        "rag_logit_bias": 30.0,
        "max_retrievals": 2,
        "probe_max_tokens": 12,
        "min_probe_chars": 3,
        "cooldown_tokens": 4,
    } | kwargs
    retriever = TableRetriever(
        ["The lungs are clear.", "Heart size is normal.", "No effusion.", "Aorta normal."]
    )
    return AdaptiveGenerator(lm, tokenizer, retriever, GenerationSettings(**options), on_forward=on_forward)


def _adaptive(lm, tokenizer, prompts, **kwargs):
    records = []
    gen = _generator(lm, tokenizer, on_forward=lambda fed, lg: records.append((fed, lg)), **kwargs)
    embeds, mask = _prefix(lm, tokenizer, prompts)
    outputs = gen.generate(embeds, mask, [f"v{i}" for i in range(len(prompts))])
    return outputs, records, embeds, mask, gen.stats


def _visible_sequence(
    output: list[int], log: list[dict], spans: list[tuple[int, ...]], upto: int
) -> list[int]:
    """What a row's cache holds after its ``upto``-th injection: output tokens with the injected spans
    (``[RAG]`` + context) spliced in at their steps; probes are gone (rolled back)."""
    steps = [e["step"] for e in log if e["action"] == "retrieved"]
    seq, last = [], 0
    for step, span in zip(steps[: upto + 1], spans[: upto + 1], strict=True):
        seq += output[last:step] + list(span)
        last = step
    return seq


@pytest.mark.parametrize("split", [True, False], ids=["split-injections", "padded-injections"])
def test_injection_logits_equal_a_fresh_forward(lm, tokenizer, split: bool) -> None:
    outputs, records, embeds, mask, stats = _adaptive(
        lm, tokenizer, PROMPTS, rag_logit_bias=4.0, split_injections=split
    )
    rag = tokenizer.convert_tokens_to_ids(RAG_TOKEN)
    by_id = {o.volume_id: (i, o) for i, o in enumerate(outputs)}
    spans: dict[str, list[tuple[int, ...]]] = {}
    checked, positions = 0, set()
    for fed, logits in records:
        for j, (vid, tokens) in enumerate(fed):
            if len(tokens) < 3 or tokens[0] != rag:  # an injection is [RAG] + <|ret_start|> ... <|ret_end|>
                continue
            row, out = by_id[vid]
            spans.setdefault(vid, []).append(tokens)
            seq = _visible_sequence(out.token_ids, out.retrieval_log, spans[vid], len(spans[vid]) - 1)
            prefix = embeds[row][mask[row].bool()]
            fresh_in = torch.cat([prefix, lm.get_input_embeddings()(torch.tensor(seq))], 0)[None]
            with torch.no_grad():
                fresh = lm(inputs_embeds=fresh_in).logits[0, -1]
            torch.testing.assert_close(logits[j], fresh, atol=1e-4, rtol=1e-4)
            checked += 1
            positions.add(len(prefix) + len(seq))
    assert checked >= 4 and len(positions) >= 3, (checked, positions)
    assert stats["dropped_columns"] > 0, "the test must cover cache repacking after rollbacks"
    if split:
        assert stats["split_forwards"] > 0, "the test must cover injections beside single-token rows"
    else:
        assert stats["split_forwards"] == 0


def test_adaptive_batch_equals_rows_alone(lm, tokenizer) -> None:
    batched, *_ = _adaptive(lm, tokenizer, PROMPTS, rag_logit_bias=4.0)
    assert sum(o.retrieval_count for o in batched) >= 4
    for i, prompt in enumerate(PROMPTS):
        alone, *_ = _adaptive(lm, tokenizer, [prompt], rag_logit_bias=4.0)
        assert alone[0].token_ids == batched[i].token_ids, f"row {i}"
        assert [{k: v for k, v in e.items()} for e in alone[0].retrieval_log] == batched[i].retrieval_log
        assert alone[0].text == batched[i].text
    padded, *_ = _adaptive(lm, tokenizer, PROMPTS, rag_logit_bias=4.0, split_injections=False)
    assert [o.token_ids for o in padded] == [o.token_ids for o in batched]
    assert [o.retrieval_log for o in padded] == [o.retrieval_log for o in batched]


def test_the_trace_places_each_retrieval_in_the_report_text(lm, tokenizer) -> None:
    """``char_offset`` (issue 22): the report's text before each retrieval ends there, on a real tokenizer."""
    outputs, *_ = _adaptive(lm, tokenizer, PROMPTS, rag_logit_bias=4.0)
    rag = tokenizer.convert_tokens_to_ids(RAG_TOKEN)
    inside = 0
    for out in outputs:
        for entry in out.retrieval_log:
            written = [t for t in out.token_ids[: entry["step"]] if t != rag]
            before = tokenizer.decode(written, skip_special_tokens=True).lstrip()
            assert entry["char_offset"] == len(before) and out.text.startswith(before.rstrip()), out.volume_id
            inside += 0 < entry["char_offset"] < len(out.text)
    assert inside >= 4, "retrievals inside the text are what the offsets are for"


def test_rag_tokens_never_reach_the_text(lm, tokenizer) -> None:
    outputs, *_ = _adaptive(lm, tokenizer, PROMPTS)
    assert all(RAG_TOKEN not in o.text and "<|ret_start|>" not in o.text for o in outputs)
    assert all(o.retrieval_count <= 2 for o in outputs)


def test_continuous_batching_equals_rows_alone(lm, tokenizer) -> None:
    embeds, mask = _prefix(lm, tokenizer, PROMPTS)
    # items of different prefix lengths, as a stream; 3 slots for 8 reports
    items = [(embeds[i][mask[i].bool()], mask[i][mask[i].bool()], f"v{i}") for i in range(len(PROMPTS))]
    gen = _generator(lm, tokenizer, rag_logit_bias=4.0, max_new_tokens=40)
    streamed = list(gen.generate_stream(items, batch_size=3))
    order = [i for i, _ in streamed]
    assert sorted(order) == list(range(len(PROMPTS)))
    assert gen.stats["admissions"] > 3, "rows must join a running batch, not only refill an empty one"
    assert sum(out.retrieval_count for _, out in streamed) >= 4
    fixed = _generator(lm, tokenizer, rag_logit_bias=4.0, max_new_tokens=40)
    in_fixed_batches = dict(fixed.generate_stream(items, batch_size=3, refill=False))
    assert fixed.stats["admissions"] == 3
    for i, out in streamed:
        alone = _generator(lm, tokenizer, rag_logit_bias=4.0, max_new_tokens=40).generate(
            embeds[i][mask[i].bool()][None], mask[i][mask[i].bool()][None], [f"v{i}"]
        )[0]
        assert out.token_ids == alone.token_ids == in_fixed_batches[i].token_ids, f"row {i}"
        assert out.retrieval_log == alone.retrieval_log == in_fixed_batches[i].retrieval_log
        assert out.volume_id == f"v{i}" and out.text == alone.text


class SometimesEmpty(TableRetriever):
    """Finds nothing for probes of odd length (an oracle without a context for that sentence), else the table."""

    def retrieve(self, query: RetrievalQuery) -> RetrievalResult:
        if len(query.probe) % 2 or not self.sentences:
            return RetrievalResult(organ="heart", note="nothing for this sentence")
        return super().retrieve(query)


def test_an_empty_retrieval_leaves_the_sentence_to_the_model(lm, tokenizer) -> None:
    """A retrieval that finds nothing writes what plain decoding writes, and asks once per sentence."""
    embeds, mask = _prefix(lm, tokenizer, PROMPTS)
    ids = [f"v{i}" for i in range(len(PROMPTS))]
    settings = GenerationSettings(
        top_k=3, max_new_tokens=100, rag_logit_bias=4.0, cooldown_tokens=2, min_probe_chars=1
    )
    never = AdaptiveGenerator(lm, tokenizer, SometimesEmpty([]), settings).generate(embeds, mask, ids)
    plain = AdaptiveGenerator(lm, tokenizer, None, settings).generate(embeds, mask, ids)
    assert [o.token_ids for o in never] == [o.token_ids for o in plain]
    events = [e for o in never for e in o.retrieval_log]
    assert len(events) >= 8 and {e["action"] for e in events} == {"empty"}
    assert events[0]["note"] == "nothing for this sentence" and events[0]["organ"] == "heart"
    pairs = 0
    for o in never:  # between two questions the row finished a sentence
        steps = [e["step"] for e in o.retrieval_log]
        pairs += len(steps) - 1
        for a, b in itertools.pairwise(steps):
            assert re.search(r"[.?!]", tokenizer.decode(o.token_ids[a:b])), (o.volume_id, a, b)
    assert pairs >= 4, "rows must ask again after a sentence for this to mean anything"
    # mixed empty and found contexts: a batch still equals its rows decoded alone
    retriever = SometimesEmpty(["The lungs are clear.", "Heart size is normal.", "No effusion."])
    batch = AdaptiveGenerator(lm, tokenizer, retriever, settings).generate(embeds, mask, ids)
    actions = {e["action"] for o in batch for e in o.retrieval_log}
    assert {"empty", "retrieved"} <= actions, actions
    for i in range(len(PROMPTS)):
        alone = AdaptiveGenerator(lm, tokenizer, retriever, settings).generate(
            embeds[i : i + 1, mask[i].bool()], mask[i : i + 1, mask[i].bool()], [ids[i]]
        )[0]
        assert (alone.token_ids, alone.retrieval_log) == (batch[i].token_ids, batch[i].retrieval_log), i


def test_growing_cache_equals_dynamic_cache_across_growths(lm, tokenizer) -> None:
    """The batch cache writes steps in place into spare columns; 150 steps (several regrowths) give the logits
    of transformers' concatenating DynamicCache, and the spare room stays bounded."""
    from transformers import DynamicCache

    from adaragct.generation import cache as kv

    embeds, mask = _prefix(lm, tokenizer, PROMPTS)
    growing, dynamic = kv.new_cache(lm.config), DynamicCache(config=lm.config)
    assert all(type(layer) is kv.GrowingLayer for layer in growing.layers)
    capacities = set()
    with torch.no_grad():
        outs = [
            lm(inputs_embeds=embeds, attention_mask=mask, cache=c, use_cache=True) for c in (growing, dynamic)
        ]
        step_mask = mask
        for _ in range(150):
            torch.testing.assert_close(outs[0].logits[:, -1], outs[1].logits[:, -1], atol=1e-6, rtol=0)
            ids = outs[1].logits[:, -1:].argmax(-1)
            step_mask = torch.cat([step_mask, torch.ones_like(ids)], dim=1)
            positions = step_mask.sum(1, keepdim=True) - 1
            outs = [
                lm(input_ids=ids, attention_mask=step_mask, position_ids=positions, cache=c, use_cache=True)
                for c in (growing, dynamic)
            ]
            capacities.add(growing.layers[0]._keys.shape[2])
    layer = growing.layers[0]
    assert torch.equal(layer.keys, dynamic.layers[0].keys) and torch.equal(
        layer.values, dynamic.layers[0].values
    )
    assert kv.supported(growing) and len(capacities) >= 3, capacities  # it regrew more than once
    assert layer._keys.shape[2] <= layer.length + max(64, layer.length // 4)


def test_widening_in_place_equals_the_copying_path() -> None:
    """``widen_last_column`` on a growing layer (in place) leaves what it leaves on a plain DynamicLayer (copy),
    and the layer keeps growing correctly afterwards."""
    from transformers import DynamicCache, LlamaConfig

    from adaragct.generation import cache as kv

    config = LlamaConfig(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, hidden_size=8)
    torch.manual_seed(0)
    growing, dynamic = kv.new_cache(config), DynamicCache(config=config)
    states = [(torch.randn(4, 2, 30, 4), torch.randn(4, 2, 30, 4)) for _ in range(2)]
    for cache in (growing, dynamic):
        for i, (k, v) in enumerate(states):
            cache.layers[i].update(k.clone(), v.clone())
    rows, width = torch.tensor([1, 3]), 7
    sub = kv.sub_cache(dynamic, rows, config)
    for layer in sub.layers:
        layer.update(torch.randn(2, 2, width, 4), torch.randn(2, 2, width, 4))
    for cache in (growing, dynamic):
        kv.widen_last_column(cache, rows, sub, width)
    after = [(torch.randn(4, 2, 50, 4), torch.randn(4, 2, 50, 4)) for _ in range(2)]  # past the spare columns
    for cache in (growing, dynamic):
        for i, (k, v) in enumerate(after):
            cache.layers[i].update(k, v)
    for mine, theirs in zip(growing.layers, dynamic.layers, strict=True):
        assert mine.keys.shape == theirs.keys.shape == (4, 2, 30 - 1 + width + 50, 4)
        assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)
