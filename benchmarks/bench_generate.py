"""Generation throughput: retrieval=none vs adaptive vs a re-prefill baseline, at batch 1, 8 and 16 (issue 6).

    make bench-generate            # the demo's trained tiny model, this machine (needs make demo or make index)
    python benchmarks/bench_generate.py --model tiny-random paths.data_dir=/elsewhere   # + Hydra overrides
    python benchmarks/bench_generate.py --model llama8b-random --device cuda --dtype bf16 --batches 16 \\
        --random-encoder DIR --json results.json        # the GPU figure of docs/performance.md

Models (``--model``):
  trained         the demo's stage-rag checkpoint (model=tiny): it writes report sentences and asks for context
                  where it learned to. The default when ``make demo`` has run.
  tiny-random     the tiny Llama shape with random weights (the default when no checkpoint exists).
  llama8b-random  the Llama-3.1-8B shape (32 layers, hidden 4096, 128,256-token vocabulary) with random weights.
A random model knows no sentences, so its decisions follow a schedule over position ids, added to its logits:
a '.' every 14 positions and a ``[RAG]`` every 60 (rows start at different positions, so they ask at different
steps). Everything else is real: the shape's full forward (all 128,256 logits are computed; ids the demo tokenizer
lacks are dropped after), the retrieval, the cache surgery.

Retriever: the real adaptive retriever over the demo index (packaged MiniLM). ``--random-encoder DIR`` instead
builds a MiniLM-shaped encoder with random weights from DIR (config.json + tokenizer files) and re-indexes the
demo sentence database with it: same compute per probe, for machines without the packaged model. The retriever's
probe memo is cleared before every timed run, so each starts cold. Every mode runs ``--repeat`` times (3), the
modes interleaved, and the median run is reported (this is how the figures hold still on a shared laptop CPU).

Modes: ``none``; ``adaptive`` (injections run over the injecting rows alone: ``split_injections``);
``adaptive-padded`` (one padded forward per injection step; ``--modes``); ``re-prefill``, the baseline of a loop
without KV-cache injection: identical decisions, but after every injection the whole batch's sequences (prefix,
text so far, contexts) are re-run from scratch. ``none-dynamic-cache`` / ``adaptive-dynamic-cache`` run the loop
on transformers' ``DynamicCache`` (a copy of the whole cache per step) instead of our in-place ``GrowingLayer``.
``--continuous`` streams the reports through the batch slots (continuous batching; not for ``re-prefill``).

Columns: ``out tok/s`` counts report tokens (what a user gets); ``dec tok/s`` adds the probe tokens decoded after
``[RAG]`` and rolled back, i.e. everything the model decoded; ``s/report`` is wall time per report; ``same
tokens`` compares a variant's tokens with its base mode's (``none`` for ``none-*``, else ``adaptive``). The
*ceiling* line is what adaptive would reach if every decoded token cost what a plain one does and only retrieval
came on top (no injection forwards, no longer caches, no waiting for a batch's slowest row). Goals (issue 6):
adaptive >= 0.8x none at batch 16; adaptive >= 3x re-prefill; batch 16 >= 5x batch 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from adaragct import CONF_DIR  # noqa: E402
from adaragct.constants import RAG_TOKEN  # noqa: E402
from adaragct.generation import AdaptiveGenerator, GenerationSettings  # noqa: E402
from adaragct.generation.batch import ChunkFeeder  # noqa: E402

DOT_EVERY, RAG_EVERY = 14, 60  # random models: a sentence end / a context request every this many positions


class RePrefillFeeder(ChunkFeeder):
    """Baseline: identical decisions, but every chunk that carries an injection re-runs the whole batch's
    sequences from scratch (a fresh cache), as a loop without KV-cache injection must. Fixed batches only (the
    whole batch is admitted at once)."""

    def __init__(self, lm) -> None:
        super().__init__(split_injections=True)
        self.embed = lm.get_input_embeddings()

    def prefill(self, forward, embeds, mask, positions, cache):
        self.embeds = embeds
        return super().prefill(forward, embeds, mask, positions, cache)

    def select(self, index):
        self.embeds = self.embeds[index]

    def feed(self, forward, ids, mask, chunk_mask, positions, cache, keep, config):
        self.embeds = torch.cat([self.embeds, self.embed(ids)], dim=1)
        logits = super().feed(forward, ids, mask, chunk_mask, positions, cache, keep, config)
        if ids.shape[1] > 1:  # an injection: everything again from scratch
            from transformers import DynamicCache

            fresh, full = DynamicCache(config=config), torch.cat([mask, chunk_mask], dim=1)
            positions = (full.cumsum(-1) - 1).clamp(min=0)
            logits = forward(
                keep, inputs_embeds=self.embeds, attention_mask=full, position_ids=positions, cache=fresh
            )
            cache.layers = fresh.layers
        return logits


def _dynamic_cache(config):
    """transformers' ``DynamicCache`` (a copy of the whole cache per step) instead of our in-place
    ``GrowingLayer``: modes ``*-dynamic-cache`` measure what the latter buys."""
    from transformers import DynamicCache

    return DynamicCache(config=config)


@dataclass
class Setup:
    lm: torch.nn.Module
    tokenizer: object
    retriever: object
    embeds: torch.Tensor  # (n_reports, prefix_len, hidden), left-padded
    mask: torch.Tensor  # (n_reports, prefix_len)
    volume_ids: list[str]
    label: str


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("infer", overrides=[f"paths.root_dir={ROOT}", "paths.output_dir=/tmp", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def _trained(cfg, n: int, device: str, dtype: torch.dtype) -> Setup:
    import numpy as np

    from adaragct.apps.infer import _prompt, load_generation_model
    from adaragct.constants import VISUAL_SLOTS
    from adaragct.data.datasets import load_split
    from adaragct.generation.cache import pad_left
    from adaragct.generation.prefixes import prompt_prefixes
    from adaragct.retrieval.runtime import load_retriever

    model, tokenizer, ckpt_cfg = load_generation_model(
        cfg.ckpt, device, allow_base_mismatch=bool(cfg.allow_base_mismatch)
    )
    model = model.to(dtype)
    volumes = load_split(cfg.data, "valid")[:n]
    visual = {
        s: torch.tensor(np.stack([v.visual[s] for v in volumes]), device=device, dtype=dtype)
        for s in VISUAL_SLOTS
    }
    prefixes = prompt_prefixes(model, tokenizer, _prompt(cfg, ckpt_cfg), visual)  # left-padded to one length
    width = max(len(m) for _, m in prefixes)
    embeds = torch.stack([pad_left(e[None], width, 1)[0] for e, _ in prefixes])
    mask = torch.stack([pad_left(m[None], width, 1)[0] for _, m in prefixes])
    retriever = load_retriever(cfg.retrieval, cfg.data, cfg.encoder)
    return Setup(
        model.llm,
        tokenizer,
        retriever,
        embeds,
        mask,
        [v.volume_id for v in volumes],
        f"trained {cfg.ckpt}",
    )


def _random_lm(shape: str, vocab: int, layers: int | None, device: str, dtype: torch.dtype):
    from transformers import LlamaForCausalLM

    from adaragct.models.builders import llama3_1_8b_config, tiny_config

    config = tiny_config(vocab) if shape == "tiny" else llama3_1_8b_config()
    if layers:
        config.num_hidden_layers = layers
    if config.vocab_size < vocab:
        raise ValueError(f"{shape}: vocabulary {config.vocab_size} < tokenizer {vocab}")
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # initialised where it runs: an 8B init on the CPU takes minutes
            lm = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return lm


class ScheduledLM(torch.nn.Module):
    """A random LM whose '.' and ``[RAG]`` win at scheduled positions (see the module docstring); the logits of
    ids the tokenizer lacks are computed, then dropped."""

    def __init__(self, lm, vocab: int, dot_id: int, rag_id: int) -> None:
        super().__init__()
        self.lm, self.config, self.vocab, self.dot_id, self.rag_id = lm, lm.config, vocab, dot_id, rag_id

    def get_input_embeddings(self):
        return self.lm.get_input_embeddings()

    def forward(self, position_ids, **inputs):
        out = self.lm(position_ids=position_ids, **inputs)
        logits = out.logits[..., : self.vocab].clone()
        kept = position_ids[:, -logits.shape[1] :]  # every position whose logits are kept (drafts: several)
        logits[..., self.dot_id] += 1e4 * (kept % DOT_EVERY == DOT_EVERY - 1)
        logits[..., self.rag_id] += 2e4 * (kept % RAG_EVERY == RAG_EVERY // 2)
        out.logits = logits
        return out


def _random_encoder_retriever(cfg, encoder_dir: Path, device: str):
    """A MiniLM-shaped encoder with random weights and the demo sentence database indexed with it."""
    from transformers import AutoConfig, BertModel

    from adaragct.data.index_files import index_file
    from adaragct.formats.neighbours import read_image_neighbours
    from adaragct.formats.sentence_db import read_sentence_database
    from adaragct.retrieval.bank import SentenceBank
    from adaragct.retrieval.encoders import HFEncoder
    from adaragct.retrieval.retrievers import build_retriever

    work = Path(tempfile.mkdtemp(prefix="random-encoder-"))
    for f in encoder_dir.iterdir():
        if f.is_file() and f.suffix in (".json", ".txt"):
            shutil.copy(f, work / f.name)
    torch.manual_seed(1)
    BertModel(AutoConfig.from_pretrained(str(encoder_dir))).save_pretrained(str(work))
    encoder = HFEncoder(work, pooling="mean", device=device, name="minilm-shaped-random", batch_size=256)
    records = read_sentence_database(index_file(cfg.data, "database"))
    start = time.perf_counter()
    bank = SentenceBank.build(records, encoder.encode([r.text for r in records]), encoder.encoder_id)
    print(
        f"re-indexed {len(records)} sentences with {encoder.encoder_id} in {time.perf_counter() - start:.1f} s"
    )
    neighbours = read_image_neighbours(index_file(cfg.data, "neighbours"))
    return build_retriever(cfg.retrieval, bank=bank, encoder=encoder, neighbours=neighbours)


def _random(cfg, args, device: str, dtype: torch.dtype) -> Setup:
    from adaragct.models.builders import load_tokenizer
    from adaragct.retrieval.runtime import load_retriever

    tokenizer = load_tokenizer(cfg.data.tokenizer_dir)
    shape = "tiny" if args.model == "tiny-random" else "8b"
    lm = _random_lm(shape, len(tokenizer), args.layers, device, dtype)
    if args.random_encoder:
        retriever = _random_encoder_retriever(cfg, Path(args.random_encoder), device)
    else:
        retriever = load_retriever(cfg.retrieval, cfg.data, cfg.encoder)
    volume_ids = [v for v in sorted(retriever.neighbours) if v.startswith("valid")][: args.reports]
    embeds, mask = _random_prefixes(lm, tokenizer, len(volume_ids), device)
    dot, rag = tokenizer.convert_tokens_to_ids([".", RAG_TOKEN])
    scheduled = ScheduledLM(lm, len(tokenizer), dot, rag)
    label = f"{args.model} (random init)"
    return Setup(scheduled, tokenizer, retriever, embeds, mask, volume_ids, label)


def _random_prefixes(lm, tokenizer, n: int, device: str, slots: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per report: ``slots`` to ``slots + 6`` random vectors at the embedding scale (standing in for projected
    visual tokens; the varying count staggers the rows' positions), then a fixed prompt; left-padded."""
    table = lm.get_input_embeddings()
    ids = tokenizer("Findings: the lungs", return_tensors="pt", add_special_tokens=False).input_ids.to(device)
    generator = torch.Generator().manual_seed(0)
    width = slots + 6 + ids.shape[1]
    embeds = torch.zeros((n, width, table.embedding_dim), dtype=table.weight.dtype, device=device)
    mask = torch.zeros((n, width), dtype=torch.long, device=device)
    scale = table.weight.float().std().item()
    with torch.no_grad():
        prompt = table(ids)[0]
        for i in range(n):
            k = slots + i % 7
            visual = torch.randn((k, table.embedding_dim), generator=generator) * scale
            embeds[i, width - k - len(prompt) :] = torch.cat([visual.to(prompt), prompt])
            mask[i, width - k - len(prompt) :] = 1
    return embeds, mask


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class TimedRetriever:
    """The setup's retriever, with the wall time of its ``retrieve`` calls added up."""

    def __init__(self, retriever) -> None:
        self.retriever, self.name, self.seconds = retriever, getattr(retriever, "name", ""), 0.0

    def retrieve(self, query):
        start = time.perf_counter()
        try:
            return self.retriever.retrieve(query)
        finally:
            self.seconds += time.perf_counter() - start


@dataclass
class Result:
    mode: str
    batch: int
    seconds: float
    out_tokens: int
    probe_tokens: int
    retrievals: int
    memo_hit_rate: float | None
    outputs: list
    retrieval_seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def per_second(self, decoded: bool = False) -> float:
        return (self.out_tokens + (self.probe_tokens if decoded else 0)) / self.seconds

    def per_token(self, stat: str) -> float:
        """A hardware-independent cost per output token: ``forward_passes`` or ``row_steps``."""
        return self.stats[stat] / self.out_tokens

    @property
    def acceptance(self) -> float | None:
        drafted = self.stats.get("draft_tokens", 0)
        return self.stats["draft_accepted"] / drafted if drafted else None


def _generator(setup: Setup, mode: str, settings: GenerationSettings, retriever) -> AdaptiveGenerator:
    """The generator a mode names: ``none``, ``adaptive`` or ``re-prefill``, then any of the suffixes
    ``-speculative`` (verify the probe as a draft), ``-padded`` (one padded forward per injection step) and
    ``-dynamic-cache`` (transformers' cache); the other settings are ``generation.*``."""
    base, *flags = (
        mode.replace("re-prefill", "reprefill").replace("-dynamic-cache", "-dynamic_cache").split("-")
    )
    unknown = set(flags) - {"speculative", "padded", "dynamic_cache"}
    if base not in ("none", "adaptive", "reprefill") or unknown:
        raise SystemExit(f"unknown mode {mode!r}")
    prefill = base == "reprefill"
    settings = dataclasses.replace(
        settings,
        compact_cache=not prefill,
        split_injections="padded" not in flags,
        speculative="speculative" in flags,
    )
    return AdaptiveGenerator(
        setup.lm,
        setup.tokenizer,
        retriever if base != "none" else None,
        settings,
        feeder=RePrefillFeeder(setup.lm) if prefill else None,
        cache_factory=_dynamic_cache if "dynamic_cache" in flags else None,
    )


def _run(setup: Setup, batch: int, mode: str, args, continuous: bool = False) -> Result:
    memo = getattr(setup.retriever, "encoder", None)
    if hasattr(memo, "clear"):
        memo.clear()
    retriever = TimedRetriever(setup.retriever)
    gen = _generator(setup, mode, args.settings, retriever)
    n = len(setup.volume_ids)
    outs = []
    _sync(args.device)
    start = time.perf_counter()
    if continuous:  # one stream: a finished row's slot goes to the next report at once
        live = setup.mask.bool()
        items = [
            (setup.embeds[i][live[i]], setup.mask[i][live[i]], v) for i, v in enumerate(setup.volume_ids)
        ]
        outs = [out for _, out in sorted(gen.generate_stream(items, batch), key=lambda pair: pair[0])]
    else:
        for i in range(0, n, batch):
            outs += gen.generate(
                setup.embeds[i : i + batch], setup.mask[i : i + batch], setup.volume_ids[i : i + batch]
            )
    _sync(args.device)
    seconds = time.perf_counter() - start
    lookups = (memo.hits + memo.misses) if hasattr(memo, "hits") else 0
    return Result(
        mode,
        batch,
        seconds,
        sum(len(o.token_ids) for o in outs),
        gen.stats["probe_tokens"],
        sum(o.retrieval_count for o in outs),
        memo.hits / lookups if lookups and not mode.startswith("none") else None,
        outs,
        retriever.seconds,
        dict(gen.stats),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", choices=["auto", "trained", "tiny-random", "llama8b-random"], default="auto"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batches", default="1,8,16", help="comma-separated batch sizes")
    parser.add_argument("--reports", type=int, default=16)
    parser.add_argument("--max-new", type=int, default=300, help="generation.max_new_tokens")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per mode and batch; the median one is reported"
    )
    parser.add_argument("--layers", type=int, default=None, help="random models: override the layer count")
    parser.add_argument(
        "--modes",
        default="none,adaptive,re-prefill",
        help="none, adaptive or re-prefill, with any of the suffixes -speculative, -padded, -dynamic-cache "
        "(e.g. adaptive-speculative-padded)",
    )

    parser.add_argument(
        "--continuous",
        action="store_true",
        help="continuous batching: stream all reports through the batch slots (use --reports > batch)",
    )
    parser.add_argument("--random-encoder", default=None, help="dir with a MiniLM config + tokenizer files")
    parser.add_argument("--json", default=None, help="write the figures here too")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of conf/infer.yaml, e.g. paths.data_dir=D"
    )
    args = parser.parse_args(argv)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    batches = [int(b) for b in args.batches.split(",")]
    cfg = _compose(args.overrides)
    from omegaconf import OmegaConf

    generation = OmegaConf.to_container(cfg.generation, resolve=True)
    args.settings = GenerationSettings(**{**generation, "max_new_tokens": args.max_new})
    model = args.model
    if model == "auto":
        model = "trained" if Path(cfg.ckpt).is_dir() else "tiny-random"
    args.model = model
    setup = (
        _trained(cfg, args.reports, args.device, dtype)
        if model == "trained"
        else _random(cfg, args, args.device, dtype)
    )
    modes = args.modes.split(",")
    if not {"none", "adaptive"} <= set(modes):
        parser.error("--modes must include none and adaptive (the ratios are against them)")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.continuous and "re-prefill" in modes:
        parser.error("--continuous: the re-prefill baseline runs fixed batches only; drop it from --modes")
    results: dict[tuple[str, int], Result] = {}
    with torch.no_grad():
        for mode in ("none", "adaptive"):  # warm-up at full length: kernels, and the allocator's cache sizes
            _run(setup, max(batches), mode, args, args.continuous)
        for batch in batches:
            runs: dict[str, list[Result]] = {mode: [] for mode in modes}
            for _ in range(args.repeat):  # modes interleaved, so a drift in the machine's speed hits them all
                for mode in modes:
                    runs[mode].append(_run(setup, batch, mode, args, args.continuous))
            for mode in modes:
                timed = sorted(runs[mode], key=lambda r: r.seconds)
                results[(mode, batch)] = timed[(len(timed) - 1) // 2]  # the median run (lower one if even)
                spread = ", ".join(f"{r.seconds:.2f}" for r in runs[mode])
                print(f"  {mode} batch {batch}: {spread} s", flush=True)
    _report(args, setup, batches, modes, results)


def _report(args, setup: Setup, batches, modes, results) -> None:
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"generation benchmark: {setup.label}, {args.dtype}, {device}; {len(setup.volume_ids)} reports, "
        f"up to {args.max_new} new tokens; {'continuous batching' if args.continuous else 'fixed batches'}; "
        f"median of {args.repeat} run(s)"
    )
    print(
        f"{'mode':<24}{'batch':>6}{'out tok/s':>11}{'dec tok/s':>11}{'s/report':>10}{'retr/rep':>10}"
        f"{'memo hit':>10}{'vs none':>9}{'fwd/tok':>9}{'steps/tok':>10}{'accept':>8}  same tokens"
    )
    rows = []
    for batch in batches:
        for mode in modes:
            r, none = results[(mode, batch)], results[("none", batch)]
            same = None
            if mode not in ("none", "adaptive"):  # variants that must decide as their base mode does
                base = "none" if mode.startswith("none") else "adaptive"
                same = [o.token_ids for o in r.outputs] == [
                    o.token_ids for o in results[(base, batch)].outputs
                ]
            n = len(r.outputs)
            hit = "" if r.memo_hit_rate is None else f"{r.memo_hit_rate:.2f}"
            accept = "" if r.acceptance is None else f"{r.acceptance:.2f}"
            print(
                f"{mode:<24}{batch:>6}{r.per_second():>11.0f}{r.per_second(True):>11.0f}{r.seconds / n:>10.3f}"
                f"{r.retrievals / n:>10.2f}{hit:>10}{r.per_second() / none.per_second():>9.2f}"
                f"{r.per_token('forward_passes'):>9.4f}{r.per_token('row_steps'):>10.3f}{accept:>8}  "
                f"{'' if same is None else same}"
            )
            rows.append(
                {
                    "mode": mode,
                    "batch": batch,
                    "seconds": r.seconds,
                    "reports": n,
                    "out_tokens": r.out_tokens,
                    "probe_tokens": r.probe_tokens,
                    "retrievals": r.retrievals,
                    "memo_hit_rate": r.memo_hit_rate,
                    "retrieval_seconds": r.retrieval_seconds,
                    "same_tokens": same,
                    "forward_calls_per_token": r.per_token("forward_passes"),
                    "row_steps_per_token": r.per_token("row_steps"),
                    "draft_acceptance": r.acceptance,
                    "stats": r.stats,
                }
            )
    top = max(batches)
    a, n = results[("adaptive", top)], results[("none", top)]
    print(
        f"adaptive / none at batch {top}: {a.per_second() / n.per_second():.2f}x output tokens/s, "
        f"{a.per_second(True) / n.per_second():.2f}x decoded tokens/s (goal >= 0.8)"
    )
    # what adaptive could reach if injections, rollbacks and cache surgery were free and rows never waited for
    # each other: every decoded token (kept or probe) at none's cost per token, plus the measured retrieval time
    per_token = n.seconds / n.out_tokens
    ceiling = (a.out_tokens + a.probe_tokens) * per_token + a.retrieval_seconds
    print(
        f"adaptive at batch {top}: retrieval {a.retrieval_seconds:.2f} s of {a.seconds:.2f} s; probes "
        f"{a.probe_tokens / (a.out_tokens + a.probe_tokens):.0%} of decoded tokens; ceiling (decoded tokens at "
        f"none's cost + retrieval): {a.out_tokens / ceiling / n.per_second():.2f}x output, "
        f"{(a.out_tokens + a.probe_tokens) / ceiling / n.per_second():.2f}x decoded"
    )
    for mode in modes:
        if "speculative" in mode:
            _report_speculative(results, top, mode)
    if "re-prefill" in modes:
        p = results[("re-prefill", top)]
        line = f"adaptive / re-prefill at batch {top}: {a.per_second() / p.per_second():.2f}x"
        if 1 in batches and top != 1:
            b1 = results[("adaptive", 1)].per_second() / results[("re-prefill", 1)].per_second()
            line += f", at batch 1: {b1:.2f}x"
        print(line + " (goal >= 3)")
    if 1 in batches and top != 1:
        b1 = results[("adaptive", 1)]
        print(
            f"adaptive batch {top} / batch 1: {a.per_second() / b1.per_second():.2f}x "
            f"(none: {n.per_second() / results[('none', 1)].per_second():.2f}x) (goal >= 5)"
        )
    peak = None
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory allocated: {peak:.1f} GiB")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"label": setup.label, "device": device, "dtype": args.dtype, "peak_gib": peak, "rows": rows},
                indent=1,
            )
        )


def _report_speculative(results, batch: int, mode: str) -> None:
    """What the speculative rewrite saves, in costs that do not depend on the hardware (issue 15)."""
    rows = {m: results[(m, batch)] for m in ("none", "adaptive", mode)}
    fwd = {m: r.per_token("forward_passes") for m, r in rows.items()}
    steps = {m: r.per_token("row_steps") for m, r in rows.items()}
    print(
        f"forward calls per output token at batch {batch}: none {fwd['none']:.4f}, adaptive {fwd['adaptive']:.4f} "
        f"({fwd['adaptive'] / fwd['none']:.2f}x none), {mode} {fwd[mode]:.4f} "
        f"({fwd[mode] / fwd['none']:.2f}x none; goal <= 1.25x)"
    )
    spec = rows[mode]
    print(
        f"row-steps per output token at batch {batch}: none {steps['none']:.3f}, adaptive {steps['adaptive']:.3f}, "
        f"{mode} {steps[mode]:.3f}; draft tokens accepted {spec.stats['draft_accepted']}/"
        f"{spec.stats['draft_tokens']} ({spec.acceptance or 0:.2f})"
    )


if __name__ == "__main__":
    main()
