"""Generation throughput: retrieval=none vs adaptive vs a re-prefill baseline, at batch 1, 8 and 16.

    make bench-generate        (needs the demo cohort and index: make index)

The model is the tiny Llama of ``model=tiny``: the demo's trained stage-rag checkpoint when it exists (it writes
report sentences and asks for context where it learned to), else random weights with a ``[RAG]`` logit bias so
that it asks at a steady rate. The retriever is the real adaptive retriever over the demo index. The baseline is what a loop without cache injection does: after every
injection it re-runs the whole sequence (prefix, text so far and contexts) for the batch. Goals (issue 6):
adaptive >= 0.8x none at batch 16; adaptive >= 3x re-prefill; batch 16 >= 5x batch 1.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from adaragct.generation import AdaptiveGenerator, GenerationSettings  # noqa: E402

N_REPORTS, MAX_NEW, BIAS = 16, 300, 2.5


class RePrefillGenerator(AdaptiveGenerator):
    """Baseline: identical decisions, but every chunk that carries an injection re-runs the whole batch's
    sequences from scratch (a fresh cache), as a loop without KV-cache injection must."""

    def generate(self, prefix_embeds, prefix_mask, volume_ids):
        self._embeds = prefix_embeds
        return super().generate(prefix_embeds, prefix_mask, volume_ids)

    def _select_rows(self, cache, index):
        super()._select_rows(cache, index)
        self._embeds = self._embeds[index]

    def _feed(self, rows, mask, cache):
        injecting = any(len(r.pending) > 1 for r in rows)
        width = max(len(r.pending) for r in rows)
        chunk = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for j, r in enumerate(rows):
            chunk[j, width - len(r.pending) :] = torch.tensor(r.pending)
        self._embeds = torch.cat([self._embeds, self.lm.get_input_embeddings()(chunk)], dim=1)
        mask, logits = super()._feed(rows, mask, cache)
        if injecting:
            from transformers import DynamicCache

            fresh = DynamicCache(config=self.lm.config)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self._forward(
                inputs_embeds=self._embeds, attention_mask=mask, position_ids=positions, cache=fresh
            )
            cache.layers = fresh.layers
        return mask, logits


def _setup():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from adaragct.retrieval.runtime import load_retriever

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("infer", overrides=[f"paths.root_dir={ROOT}", "paths.output_dir=/tmp"])
    OmegaConf.resolve(cfg)
    retriever = load_retriever(cfg.retrieval, cfg.data, cfg.encoder)
    visual = None
    if Path(cfg.ckpt).is_dir():
        from adaragct.constants import VISUAL_SLOTS
        from adaragct.data.cohort import load_split
        from adaragct.data.prompt import build_prompt
        from adaragct.infer import _prompt, load_generation_model

        model, tokenizer, ckpt_cfg = load_generation_model(cfg.ckpt, "cpu")
        ids = torch.tensor([tokenizer.encode(build_prompt(_prompt(cfg, ckpt_cfg)), add_special_tokens=False)])
        volumes = load_split(cfg.data, "valid")[:N_REPORTS]
        visual = {s: torch.tensor(np.stack([v.visual[s] for v in volumes])) for s in VISUAL_SLOTS}
        with torch.no_grad():
            embeds = model.embed(ids.expand(N_REPORTS, -1), visual)
        return (
            model.llm,
            tokenizer,
            retriever,
            embeds,
            [v.volume_id for v in volumes],
            f"trained {cfg.ckpt}",
            0.0,
        )
    from transformers import LlamaForCausalLM

    from adaragct.models.builders import load_tokenizer, tiny_config

    tokenizer = load_tokenizer(cfg.data.tokenizer_dir)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(tiny_config(len(tokenizer))).eval()
    ids = tokenizer("Findings: the lungs", return_tensors="pt", add_special_tokens=False).input_ids
    embeds = lm.get_input_embeddings()(ids).expand(N_REPORTS, -1, -1)
    return (
        lm,
        tokenizer,
        retriever,
        embeds,
        [f"valid_{1 + k}_a_1" for k in range(N_REPORTS)],
        "random init",
        BIAS,
    )


def _run(cls, setup, batch: int, mode: str) -> tuple[float, float, list]:
    lm, tokenizer, retriever, embeds, volume_ids, _, bias = setup
    settings = GenerationSettings(
        max_new_tokens=MAX_NEW,
        rag_logit_bias=bias if mode != "none" else 0.0,
        compact_cache=cls is AdaptiveGenerator,
    )
    gen = cls(lm, tokenizer, retriever if mode != "none" else None, settings)
    tokens = retrievals = 0
    outs = []
    start = time.perf_counter()
    for i in range(0, N_REPORTS, batch):
        part = embeds[i : i + batch]
        out = gen.generate(part, torch.ones(part.shape[:2], dtype=torch.long), volume_ids[i : i + batch])
        outs += out
        tokens += sum(len(o.token_ids) for o in out)
        retrievals += sum(o.retrieval_count for o in out)
    return tokens / (time.perf_counter() - start), retrievals / N_REPORTS, outs


def main() -> None:
    setup = _setup()
    rows, speed, adaptive_outs = [], {}, []
    with torch.no_grad():
        _run(AdaptiveGenerator, setup, 16, "adaptive")  # warm-up: allocator, kernels, encoder
        for batch in (1, 8, 16):
            for mode, cls in (
                ("none", AdaptiveGenerator),
                ("adaptive", AdaptiveGenerator),
                ("re-prefill", RePrefillGenerator),
            ):
                tps, rpr, outs = _run(cls, setup, batch, mode)
                speed[(mode, batch)] = tps
                same = None
                if mode == "adaptive":
                    adaptive_outs = outs
                elif mode == "re-prefill":
                    same = all(a.token_ids == b.token_ids for a, b in zip(outs, adaptive_outs, strict=True))
                rows.append((mode, batch, tps, rpr, same))
    print(
        f"generation benchmark: tiny Llama ({setup[5]}), {N_REPORTS} reports, up to {MAX_NEW} new tokens, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'mode':<12}{'batch':>6}{'tokens/s':>11}{'retr/report':>13}{'vs none':>9}  same tokens as adaptive"
    )
    for mode, batch, tps, rpr, same in rows:
        print(
            f"{mode:<12}{batch:>6}{tps:>11.0f}{rpr:>13.2f}{tps / speed[('none', batch)]:>9.2f}  "
            f"{'' if same is None else same}"
        )
    a16, n16 = speed[("adaptive", 16)], speed[("none", 16)]
    print(f"adaptive / none at batch 16: {a16 / n16:.2f}x (goal >= 0.8)")
    print(
        f"adaptive / re-prefill at batch 16: {a16 / speed[('re-prefill', 16)]:.2f}x, at batch 1: "
        f"{speed[('adaptive', 1)] / speed[('re-prefill', 1)]:.2f}x (goal >= 3)"
    )
    print(f"adaptive batch 16 / batch 1: {a16 / speed[('adaptive', 1)]:.2f}x (goal >= 5)")


if __name__ == "__main__":
    main()
