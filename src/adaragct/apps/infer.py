"""The infer stage: write a report (and its retrieval trace) for every volume of a split.

    python -m adaragct.infer model=tiny data=demo retrieval=adaptive ckpt=outputs/train/demo_tiny_rag/last
    torchrun --nproc-per-node 8 -m adaragct.infer experiment=adaragct_8b data=ctrate   # shards volumes per GPU

Steps: 1. load the checkpoint (adapters merged for speed) 2. load the split's volumes 3. build the retriever (and
the global context, when ``global_context.top_k`` is set) from the index stage's files 4. skip volumes already in
the predictions file 5. decode batch by batch, appending one line per volume 6. merge rank shards (multi-process)
and print a summary.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from adaragct import artifacts
from adaragct.apps._app import hydra_app, prologue

log = logging.getLogger(__name__)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    return name


def _rank_world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def load_generation_model(
    ckpt: str,
    device: str,
    base: str | None = None,
    dtype: str = "float32",
    allow_base_mismatch: bool = False,
):
    """(ReportModel with merged adapters, tokenizer, checkpoint config) for decoding: a checkpoint of ours (on
    the base weights it was trained on, unless ``allow_base_mismatch``), or the release's AdaRAG step directory
    (its base from ``base`` or its adapter config) or base directory."""
    from adaragct.models.loading import load_for_inference

    model, tokenizer, ckpt_cfg = load_for_inference(
        ckpt, base=base, device=device, dtype=dtype, allow_base_mismatch=allow_base_mismatch
    )
    # plain forwards are faster than LoRA-wrapped ones; but merging a LoRA into 4-bit weights re-quantizes them
    # and changes the model (on a tiny model it moved logits by ~1 and flipped greedy tokens), so a QLoRA
    # checkpoint decodes with its adapters as trained
    if hasattr(model.llm, "merge_and_unload") and not getattr(model.llm, "is_quantized", False):
        model.llm = model.llm.merge_and_unload()
    return model.to(device).eval(), tokenizer, ckpt_cfg


def _prompt(cfg: DictConfig, ckpt_cfg: dict[str, Any]):
    """The prompt the model was trained with (from the checkpoint) unless the user overrides ``prompt.*``."""
    from adaragct.data.prompt import PromptConfig

    trained = ckpt_cfg.get("prompt")
    if ckpt_cfg.get("release"):
        log.warning(
            "a release checkpoint: the prompt texts come from conf/prompt; they must be the release's exact "
            "strings (conf/prompt/default.yaml says how to set them)"
        )
    asked = OmegaConf.to_container(cfg.prompt, resolve=True)
    if trained and trained != asked:
        log.warning("prompt differs from the one the checkpoint was trained with; using the checkpoint's")
    return PromptConfig(**(trained or asked))


def generate_split(
    cfg: DictConfig, model, tokenizer, prompt, volumes, retriever, writer, progress: bool, global_context=None
) -> dict:
    """Decode ``volumes`` with ``cfg.batch_size`` rows at a time (a finished row's slot goes to the next volume
    when ``cfg.continuous_batching``), appending each prediction as it finishes; returns throughput figures.
    ``global_context`` (:class:`adaragct.retrieval.global_context.GlobalContext`): reports before each prompt."""
    from tqdm.auto import tqdm

    from adaragct.generation import AdaptiveGenerator, GenerationSettings
    from adaragct.generation.predictions import prediction_record
    from adaragct.generation.prefixes import volume_prefixes

    settings = GenerationSettings(**OmegaConf.to_container(cfg.generation, resolve=True))
    generator = AdaptiveGenerator(model.llm, tokenizer, retriever, settings)
    bar = tqdm(total=len(volumes), desc=f"infer[{retriever.name}]", disable=not progress, unit="report")
    # the training volumes whose reports go before each volume's prompt (the release's --global-context)
    contexts = (
        {v.volume_id: global_context.for_volume(v.volume_id) for v in volumes} if global_context else {}
    )

    def items():  # prefixes are embedded a batch at a time, as slots free up
        for i in range(0, len(volumes), cfg.batch_size):
            batch = volumes[i : i + cfg.batch_size]
            reports = [contexts[v.volume_id][1] for v in batch] if contexts else None
            yield from volume_prefixes(model, tokenizer, prompt, batch, reports)

    tokens = retrievals = done = 0
    start = time.perf_counter()
    stream = generator.generate_stream(items(), cfg.batch_size, refill=bool(cfg.continuous_batching))
    for index, out in stream:  # in the order rows finish; run restores the input order at the end
        used = contexts[out.volume_id][0] if contexts else None
        writer.write(prediction_record(out, volumes[index].report, settings, retriever.name, used))
        tokens, retrievals, done = tokens + len(out.token_ids), retrievals + out.retrieval_count, done + 1
        bar.update(1)
        elapsed = time.perf_counter() - start
        bar.set_postfix(tok_s=f"{tokens / elapsed:.0f}", ret_per_report=f"{retrievals / done:.2f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "generated": len(volumes),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "retrievals_per_report": round(retrievals / len(volumes), 3) if volumes else 0.0,
    }


def _start(cfg: DictConfig) -> tuple[int, int, str]:
    """Renamed keys refused, threads pinned, torch seeded; returns this process's (rank, world size, device)."""
    prologue(cfg, "infer", seed="torch")
    return *_rank_world(), _device(cfg.device)


class _Loaded(NamedTuple):
    model: Any
    tokenizer: Any
    ckpt_cfg: dict[str, Any]
    volumes: list
    retriever: Any
    global_context: Any  # GlobalContext, or None (global_context.top_k: 0)


def _load(cfg: DictConfig, device: str) -> _Loaded:
    """Steps 1-3: the model, the split's volumes, the retriever and the global context."""
    from adaragct.data.datasets import load_split
    from adaragct.retrieval.global_context import load_global_context
    from adaragct.retrieval.runtime import load_retriever

    log.info("[1/6] loading checkpoint %s on %s", cfg.ckpt, device)
    model, tokenizer, ckpt_cfg = load_generation_model(
        cfg.ckpt,
        device,
        cfg.get("ckpt_base"),
        cfg.model.get("dtype", "float32"),
        bool(cfg.get("allow_base_mismatch", False)),
    )
    log.info("[2/6] loading the %s split of data=%s", cfg.split, cfg.data.name)
    volumes = load_split(cfg.data, cfg.split, ckpt_cfg.get("model", {}).get("visual_dims"))
    volumes = volumes[: cfg.limit] if cfg.limit else volumes
    log.info("[3/6] retriever <%s>", cfg.retrieval._target_)
    retriever = load_retriever(cfg.retrieval, cfg.data, cfg.encoder)
    global_context = load_global_context(cfg.get("global_context") or {}, cfg.data, volumes)
    return _Loaded(model, tokenizer, ckpt_cfg, volumes, retriever, global_context)


def _decode(cfg: DictConfig, loaded: _Loaded, rank: int, world: int) -> tuple[list, list, dict[str, Any]]:
    """Steps 4-5: decode this rank's volumes not yet in a predictions file; returns (mine, todo, stats)."""
    from dataclasses import asdict

    from adaragct.generation import GenerationSettings
    from adaragct.generation.predictions import (
        PredictionWriter,
        check_resumable,
        done_ids_elsewhere,
        shard,
        shard_path,
    )

    model, tokenizer, ckpt_cfg, volumes, retriever, global_context = loaded
    settings = GenerationSettings(**OmegaConf.to_container(cfg.generation, resolve=True))
    check_resumable(
        cfg.predictions,
        decoding=asdict(settings),
        retrieval=retriever.name,
        global_context=global_context is not None,
    )
    path = shard_path(cfg.predictions, rank, world)
    mine = shard(volumes, rank, world)
    earlier = done_ids_elsewhere(cfg.predictions, world)  # the final file, shards of another process count
    with PredictionWriter(path) as writer:
        todo = [v for v in mine if v.volume_id not in writer.done and v.volume_id not in earlier]
        log.info("[4/6] %d volumes, %d already in %s", len(mine), len(mine) - len(todo), path)
        progress = bool(cfg.progress) and rank == 0
        prompt = _prompt(cfg, ckpt_cfg)
        stats = generate_split(
            cfg, model, tokenizer, prompt, todo, retriever, writer, progress, global_context
        )
    return mine, todo, stats


def _merge(cfg: DictConfig, order: list[str], wrote: bool, rank: int, world: int, device: str) -> None:
    """Step 6: one predictions file in the split's order (atomic), shards removed."""
    import torch

    from adaragct.generation.predictions import finalize, sibling_shards

    if world == 1 and (wrote or sibling_shards(cfg.predictions)):
        # rows finish out of order, and shards of an earlier multi-process run may hold volumes
        finalize(cfg.predictions, order)
    if world > 1:
        log.info("[6/6] merging %d shards", world)
        if device.startswith("cuda"):
            torch.cuda.set_device(device)  # NCCL's barrier runs on the current device: this rank's GPU
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        torch.distributed.barrier()
        if rank == 0:
            finalize(cfg.predictions, order)
        torch.distributed.barrier()  # the final file exists before any rank returns
        torch.distributed.destroy_process_group()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run inference for ``cfg`` (the module docstring's steps); returns a summary (path, counts, tokens/s,
    retrievals per report), which multirun callbacks (grid cells) receive from ``main``."""
    rank, world, device = _start(cfg)
    loaded = _load(cfg, device)  # 1-3. checkpoint, volumes, retriever
    volumes, retriever = loaded.volumes, loaded.retriever
    mine, todo, stats = _decode(cfg, loaded, rank, world)  # 4-5. skip what is done, decode the rest
    _merge(cfg, [v.volume_id for v in volumes], bool(todo), rank, world, device)  # 6. one file
    summary = {
        "predictions": str(cfg.predictions),
        "volumes": len(volumes),
        "skipped": len(mine) - len(todo),
        "retrieval": retriever.name,
        **stats,
    }
    if cfg.score and rank == 0:
        summary["metrics"] = _evaluate(cfg, reuse=not todo)
        from adaragct.tracking import log_infer

        log_infer(cfg, summary["metrics"], retriever.name)  # logger=wandb: into the checkpoint's run
    if cfg.get("view", True) and rank == 0:
        summary["view"] = _view(cfg)
    print(
        f"infer[{retriever.name}]: {summary['generated']} generated, {summary['skipped']} already done, "
        f"{summary['tokens_per_s']} tok/s, {summary['retrievals_per_report']} retrievals/report -> "
        f"{summary['predictions']}"
    )
    return summary


def _view(cfg: DictConfig) -> str:
    """The report viewer's page beside the predictions (adaragct-show), with the metrics when scored."""
    from pathlib import Path

    from adaragct.apps.show import show

    metrics = _metrics_path(cfg)
    labels = cfg.data.valid_labels_csv if Path(cfg.data.valid_labels_csv).is_file() else None
    return str(show(cfg.predictions, metrics=metrics if metrics.is_file() else None, labels_csv=labels))


def _metrics_path(cfg: DictConfig):
    """``metrics_json``, or metrics.json beside the predictions."""
    from pathlib import Path

    return Path(cfg.metrics_json or artifacts.beside(cfg.predictions, "metrics"))


def _evaluate(cfg: DictConfig, reuse: bool) -> dict[str, Any]:
    """Score the predictions file as ``cfg.scoring`` says (labels from the data config) and write metrics.json
    beside it; with ``reuse`` (nothing new was generated) a metrics file newer than the predictions is kept."""
    import json
    from pathlib import Path

    from adaragct.eval.runner import run_evaluation, scoring_options

    out = _metrics_path(cfg)
    if reuse and out.is_file() and out.stat().st_mtime >= Path(cfg.predictions).stat().st_mtime:
        print(f"evaluate: predictions unchanged, kept {out}")
        return json.loads(out.read_text())
    metrics = run_evaluation(
        scoring_options(cfg.scoring, cfg.predictions, out, labels_csv=cfg.data.valid_labels_csv)
    )
    from adaragct.formats.metrics import metric_key

    keys = tuple(metric_key(m) for m in ("clinical_f1", "bleu_4", "rouge_l"))
    print("evaluate: " + ", ".join(f"{k.split('/')[-1]} {metrics[k]:.4f}" for k in keys) + f" -> {out}")
    return metrics


main = hydra_app("infer", run)


if __name__ == "__main__":
    main()
