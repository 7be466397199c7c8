"""One evaluation run: predictions file -> metrics JSON + markdown table (used by every command that scores).

The Hydra apps (``evaluate``, ``infer``, the demo) build an :class:`EvalOptions` from their ``scoring`` node with
:func:`scoring_options`; the release's argparse command (``python -m adaragct.eval.cal_metrics``,
:mod:`adaragct.compat.cal_metrics`) fills one from its flags. Both call :func:`run_evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaragct.errors import DataError, UsageError
from adaragct.eval.bootstrap import bootstrap_intervals, duplicate_rate
from adaragct.eval.clinical import compute_clinical_metrics
from adaragct.eval.dependence import clinical_dependence
from adaragct.eval.labelers import build_labeler
from adaragct.eval.meteor import METEOR_TIMEOUT_S
from adaragct.eval.protocol import PROTOCOLS, check_release_protocol, describe, release_protocol_problems
from adaragct.eval.report import build_metrics_dict, markdown_table
from adaragct.eval.text_metrics import compute_text_metrics
from adaragct.formats.predictions import PredictionSet, attach_references, read_predictions
from adaragct.io import atomic_open, check_output_file, write_json

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    """Everything one evaluation needs.

    Attributes:
        predictions: predictions file (our JSONL, the release JSONL or VLM3D JSON).
        output: metrics JSON path; see :func:`output_paths` for where the markdown table goes.
        labels_csv: ground-truth labels CSV (CT-RATE or VLM3D layout); None labels the references instead.
        references: optional second file with the references (VLM3D keeps them apart).
        label_references: use the labeler on the reference text as ground truth even when a CSV is given.
        allow_missing: score only volumes found in the labels CSV and report how many were dropped.
        bootstrap: number of resamples (0 = none); seed for reproducibility.
        labeler: ``rule`` or ``radbert`` (+ checkpoint and roberta_dir).
        judge_model: local causal LM directory for the LLaMA score (None = skip).
        meteor: compute METEOR when Java is present.
        meteor_timeout_s: longest wait for one answer of METEOR's Java scorer; past it METEOR is reported as
            unavailable (None: ``eval/meteor.py``'s default).
        markdown: markdown table path (None: derived from ``output``).
        compute_clinical: label the reports and compute clinical efficacy (the release's
            ``--[no-]compute-clinical-efficacy``); off: the clinical metrics are null and no labeler runs.
        protocol: ``ours`` (score with what is given) or ``release`` (the paper's protocol, refused unless every
            choice is the release's: ``eval/protocol.py``).
        progress: progress bars for labelling, METEOR and the judge.
        judge_options: further keyword arguments of :class:`adaragct.eval.judge.LLMJudge` (rubric, device_map,
            answer cache, ...).
    """

    predictions: str | Path
    output: str | Path
    labels_csv: str | Path | None = None
    references: str | Path | None = None
    label_references: bool = False
    allow_missing: bool = False
    bootstrap: int = 0
    seed: int = 42
    labeler: str = "rule"
    radbert_checkpoint: str | Path | None = None
    roberta_dir: str | Path | None = None
    device: str = "cpu"
    judge_model: str | Path | None = None
    judge_batch_size: int = 4
    meteor: bool = True
    meteor_timeout_s: float | None = None
    markdown: str | Path | None = None
    compute_clinical: bool = True
    protocol: str = "ours"
    progress: bool = False
    judge_options: dict[str, Any] = field(default_factory=dict)


def scoring_options(
    scoring: Mapping[str, Any],
    predictions: str | Path,
    output: str | Path,
    *,
    labels_csv: str | Path | None = None,
    references: str | Path | None = None,
    markdown: str | Path | None = None,
) -> EvalOptions:
    """The options of one evaluation from a ``scoring`` config node (``conf/scoring/default.yaml``: how to score,
    the same keys in the evaluate, infer and demo apps) and the files of the call (what to score, where to)."""
    labeler, judge = scoring["labeler"], dict(scoring["judge"])
    return EvalOptions(
        predictions=predictions,
        output=output,
        markdown=markdown,
        labels_csv=labels_csv,
        references=references,
        label_references=scoring["label_references"],
        allow_missing=scoring["allow_missing"],
        bootstrap=scoring["bootstrap"]["num_resamples"],
        seed=scoring["bootstrap"]["seed"],
        labeler=labeler["name"],
        radbert_checkpoint=labeler["radbert_checkpoint"],
        roberta_dir=labeler["roberta_dir"],
        device=labeler["device"],
        judge_model=judge.pop("model_path"),
        judge_batch_size=judge.pop("batch_size"),
        meteor=scoring["meteor"],
        meteor_timeout_s=scoring["meteor_timeout_s"],
        compute_clinical=scoring["compute_clinical"],
        protocol=scoring["protocol"],
        progress=scoring["progress"],
        judge_options=judge,
    )


def output_paths(output: str | Path, markdown: str | Path | None = None) -> tuple[Path, Path]:
    """Where the metrics JSON and the markdown table are written, never the same file.

    ``output`` names the JSON and the table goes beside it with the suffix ``.md`` (``m.json`` -> ``m.md``),
    unless ``output`` itself ends in ``.md``: then it names the table and the JSON goes beside it with the
    suffix ``.json`` (``m.md`` -> ``m.json``). An explicit ``markdown`` path wins.
    """
    output = Path(output)
    if markdown is not None:
        return output, Path(markdown)
    if output.suffix.lower() == ".md":
        return output.with_suffix(".json"), output
    return output, output.with_suffix(".md")


def _check_numbers(opts: EvalOptions) -> None:
    if opts.bootstrap < 0:
        raise UsageError(
            f"bootstrap = {opts.bootstrap}", "is negative", "pass 0 (no intervals) or a count such as 1000"
        )
    if opts.meteor_timeout_s is not None and not opts.meteor_timeout_s > 0:
        raise UsageError(
            f"METEOR time limit = {opts.meteor_timeout_s}", "is not positive", "pass seconds, e.g. 120"
        )
    if opts.protocol not in PROTOCOLS:
        raise UsageError(
            f"protocol {opts.protocol!r}", "is not a protocol", f"choose one of {', '.join(PROTOCOLS)}"
        )


def _protocol_options(opts: EvalOptions, rubric_is_default: bool | None = None) -> dict[str, Any]:
    """The options :mod:`adaragct.eval.protocol` judges; ``rubric_is_default`` when the judge has told it (else
    the prompt files are read)."""
    return {
        "labeler": opts.labeler,
        "radbert_checkpoint": opts.radbert_checkpoint,
        "labels_csv": opts.labels_csv,
        "label_references": opts.label_references,
        "meteor": opts.meteor,
        "compute_clinical": opts.compute_clinical,
        "judge_model": opts.judge_model,
        "judge_rubric_is_default": _rubric_is_default(opts)
        if rubric_is_default is None
        else rubric_is_default,
    }


def _judge_files(opts: EvalOptions) -> tuple[tuple, tuple]:
    """(inputs, outputs) of the judge options: its prompt files are read, its answer cache is written."""
    if opts.judge_model is None:
        return (), ()
    files = opts.judge_options
    inputs = tuple(files.get(k) for k in ("system_prompt_file", "question_file") if files.get(k) is not None)
    return inputs, (() if files.get("cache_path") is None else (Path(files["cache_path"]),))


def check_options(
    opts: EvalOptions, *, more_outputs: tuple[Path, ...] = (), more_inputs: tuple = ()
) -> tuple[Path, Path]:
    """Refuse options that cannot work before anything is read or scored; returns (metrics JSON, table) paths.

    ``more_outputs`` and ``more_inputs`` are further files the caller will write and read (the Hydra app's
    comparison); every output must be none of the inputs, none of the other outputs, and writable.
    """
    _check_numbers(opts)
    if opts.protocol == "release":
        check_release_protocol(**_protocol_options(opts))
    json_path, md_path = output_paths(opts.output, opts.markdown)
    judge_inputs, judge_outputs = _judge_files(opts)
    inputs = (
        opts.predictions,
        opts.references,
        opts.labels_csv,
        opts.radbert_checkpoint,
        opts.roberta_dir,
        opts.judge_model,
        *judge_inputs,
        *more_inputs,
    )
    outputs = (json_path, md_path, *judge_outputs, *more_outputs)
    for i, out in enumerate(outputs):
        for earlier in outputs[:i]:
            if Path(out).resolve() == Path(earlier).resolve():
                raise UsageError(
                    f"outputs {earlier} and {out}", "are the same file", "give each output its own path"
                )
        check_output_file(out, inputs=inputs)
    return json_path, md_path


def _align_labels(
    preds: PredictionSet, labels_csv: Path, allow_missing: bool
) -> tuple[PredictionSet, np.ndarray, int]:
    from adaragct.formats.tables import read_labels_csv

    labels = read_labels_csv(labels_csv)
    present = [i for i, vid in enumerate(preds.ids) if vid in labels.index]
    missing = [vid for vid in preds.ids if vid not in labels.index]
    if missing and not allow_missing:
        raise DataError(
            labels_csv,
            "volume ids",
            f"{len(missing)} of {len(preds)} predicted volumes are missing, first: {missing[:5]}",
            "pass the labels CSV of the same split, or score only the labelled volumes (--allow-missing; "
            "Hydra: allow_missing=true)",
        )
    if missing:
        log.warning("%d predicted volumes have no labels in %s and were dropped", len(missing), labels_csv)
        preds = preds.subset(present)
    if not len(preds):
        raise DataError(
            labels_csv, "volume ids", "no predicted volume has labels", "check the split of the CSV"
        )
    return preds, labels.loc[preds.ids].to_numpy(dtype=np.int8), len(missing)


def _judge_settings(opts: EvalOptions):
    from adaragct.eval.judge import JudgeSettings

    return JudgeSettings(
        **{
            "device": opts.device,
            "batch_size": opts.judge_batch_size,
            "progress": opts.progress,
            **opts.judge_options,
        }
    )


def _load_judge(opts: EvalOptions):
    """The LLM judge, loaded before any scoring so that a wrong model path fails first (None: no judge)."""
    if opts.judge_model is None:
        return None
    from adaragct.eval.judge import LLMJudge

    return LLMJudge(opts.judge_model, _judge_settings(opts))


def _rubric_is_default(opts: EvalOptions) -> bool:
    """Whether the judge keeps our own rubric, known before its model is loaded (prompt files are read)."""
    return opts.judge_model is None or _judge_settings(opts).rubric().is_default


LABEL_CHUNK = 64  # reports per progress step; a multiple of RadBERT's batch of 16, so batches are unchanged


def _label(labeler: Any, texts: Sequence[str], what: str, progress: bool) -> np.ndarray:
    """``labeler.labels(texts)`` in chunks of :data:`LABEL_CHUNK`, with a progress bar when asked."""
    from tqdm.auto import tqdm

    chunks = [texts[i : i + LABEL_CHUNK] for i in range(0, len(texts), LABEL_CHUNK)]
    out = [
        labeler.labels(chunk)
        for chunk in tqdm(chunks, desc=f"labelling {what} ({labeler.name})", unit="x64", disable=not progress)
    ]
    return np.concatenate(out) if out else np.zeros((0, 18), dtype=np.int8)


def _count_empty(texts: list[str], what: str, path: str | Path) -> int:
    count = sum(not t.strip() for t in texts)
    if count:
        log.warning(
            "%d of %d %s in %s are empty; they are scored as ' ' and counted", count, len(texts), what, path
        )
    return count


def evaluate_predictions(opts: EvalOptions) -> dict[str, Any]:
    """Compute the metrics dict (nothing written). Inputs are read and checked before any scoring."""
    _check_numbers(opts)
    preds = read_predictions(opts.predictions)
    if opts.references is not None:
        preds = attach_references(preds, opts.references)
    if preds.references is None:
        raise DataError(
            opts.predictions,
            "field 'reference_text'",
            "missing: the file holds no references",
            "add reference_text to each record or pass the references file (--references)",
        )
    dropped, truth, labeler, predicted = 0, None, None, None
    if opts.compute_clinical and opts.labels_csv is not None and not opts.label_references:
        preds, truth, dropped = _align_labels(preds, Path(opts.labels_csv), opts.allow_missing)
    if opts.compute_clinical:
        labeler = build_labeler(
            opts.labeler, checkpoint=opts.radbert_checkpoint, roberta_dir=opts.roberta_dir, device=opts.device
        )
    judge = _load_judge(opts)
    num_empty_predictions = _count_empty(preds.predictions, "predictions", opts.predictions)
    num_empty_references = _count_empty(preds.references, "references", opts.references or opts.predictions)
    ground_truth = None
    if labeler is not None:
        if truth is not None:
            ground_truth = "labels_csv"
        else:
            truth = _label(labeler, preds.references, "references", opts.progress)
            ground_truth = "labeler_on_reference"
        predicted = _label(labeler, preds.predictions, "predictions", opts.progress)
    timeout_s = METEOR_TIMEOUT_S if opts.meteor_timeout_s is None else opts.meteor_timeout_s
    text = compute_text_metrics(
        preds.predictions,
        preds.references,
        with_meteor=opts.meteor,
        meteor_timeout_s=timeout_s,
        progress=opts.progress,
    )
    clinical = compute_clinical_metrics(predicted, truth) if labeler is not None else None
    intervals = None
    if opts.bootstrap > 0:
        intervals = bootstrap_intervals(
            text.stats,
            text.rouge_per_sample,
            None if clinical is None else clinical.confusion,
            num_resamples=opts.bootstrap,
            seed=opts.seed,
            cider=text.cider_per_sample,
        )
    # what the predictions owe to their volumes: distinct reports, F1 against own minus another patient's labels
    dependence = None
    if clinical is not None:
        dependence = clinical_dependence(
            preds.ids, preds.predictions, predicted, truth, num_resamples=opts.bootstrap, seed=opts.seed
        )
    llama, unparseable, judge_block = None, None, None
    if judge is not None:
        result = judge.score(preds.predictions, preds.references)
        llama, unparseable = result.mean_score, result.num_unparseable
        judge_block = {
            "model": str(opts.judge_model),
            "rubric_sha256": result.rubric_sha256,
            "rubric_is_default": result.default_rubric,
            "num_cached": result.num_cached,
        }
    protocol = describe(
        labeler=None if labeler is None else labeler.name,
        radbert_checkpoint=opts.radbert_checkpoint if labeler is not None else None,
        ground_truth=ground_truth,
        labels_csv=opts.labels_csv,
        meteor_unavailable=text.meteor_unavailable if opts.meteor else None,
        problems=release_protocol_problems(
            **_protocol_options(opts, None if judge_block is None else judge_block["rubric_is_default"])
        ),
        judge=judge_block,
    )
    return build_metrics_dict(
        num_samples=len(preds),
        text=text,
        clinical=clinical,
        intervals=intervals,
        llama_score=llama,
        judge_unparseable=unparseable,
        duplicate_rate=duplicate_rate(preds.predictions),
        dependence=dependence,
        num_empty_predictions=num_empty_predictions,
        num_empty_references=num_empty_references,
        num_dropped_missing_labels=dropped,
        labeler=None if labeler is None else labeler.name,
        ground_truth=ground_truth,
        protocol=protocol,
    )


def run_evaluation(opts: EvalOptions) -> dict[str, Any]:
    """Check the options and outputs, evaluate, and write the metrics JSON and markdown table atomically.

    Returns the metrics. An output that is an input, a directory or unwritable is refused before any scoring.
    """
    json_path, md_path = check_options(opts)
    metrics = evaluate_predictions(opts)
    write_json(json_path, metrics)
    with atomic_open(md_path, "w", encoding="utf-8") as handle:
        handle.write(markdown_table(metrics))
    log.info("wrote %s and %s (%d volumes)", json_path, md_path, metrics["num_samples"])
    return metrics
