"""The release's inference command (``python -m adaragct.inference.inference_rag``): each of its flags with the
release's meaning and default, the combinations the release accepts, and tiny runs of --corrupt-rag and
--global-context that show their effect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaragct.compat.inference_rag import main, parse, to_overrides
from tests.conftest import PROJECT_ROOT, compose_config, data_overrides
from tests.generation.test_infer import SMALL_RUN, _lines

DATABASE = "demo/bundle/retrieval/database/train_sentences_multi_label.json"
RELEASE_DEFAULTS = {
    "generation.max_new_tokens": 600,
    "generation.max_retrievals": 8,
    "generation.top_k": 3,
    "generation.rag_logit_bias": 0.0,
    "generation.cooldown_tokens": 5,
    "limit": None,
    "retrieval.name": "adaptive",
    "global_context.top_k": 0,
}


@pytest.fixture()
def checkpoints(tmp_path: Path) -> dict[str, Path]:
    """Directories that look like each kind of checkpoint (the command only reads their layout here)."""
    ours = tmp_path / "outputs/train/demo_tiny_rag/step-000002"
    release = tmp_path / "adarag_run/checkpoints/step_3000"
    base = tmp_path / "release_base"
    for directory, files in (
        (ours, ("config.yaml", "projector.safetensors", "adapter_model.safetensors")),
        (release, ("adapter_config.json", "adapter_model.safetensors", "projector.pt")),
        (base, ("config.json", "projector.pt")),
    ):
        directory.mkdir(parents=True)
        for name in files:
            (directory / name).write_text("{}")
    (ours.parent / "last").symlink_to(ours.name, target_is_directory=True)
    return {"ours": ours.parent / "last", "release": release, "base": base}


def _config(argv: list[str]):
    """The infer config the command composes for ``argv`` (the same overrides, composed as tests compose)."""
    return compose_config("infer", to_overrides(parse(argv)))


def _get(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


# (flags, {infer setting: value}): each release flag with the release's meaning
HONOURED = [
    ([], RELEASE_DEFAULTS),
    (["--max-new-tokens", "7"], {"generation.max_new_tokens": 7}),
    (["--max-retrievals", "2"], {"generation.max_retrievals": 2}),
    (["--top-k", "2"], {"generation.top_k": 2}),
    (["--rag-logit-bias", "1.5"], {"generation.rag_logit_bias": 1.5}),
    (["--cooldown-tokens", "9"], {"generation.cooldown_tokens": 9}),
    (["--max-samples", "4"], {"limit": 4}),
    (["--no-rag"], {"retrieval.name": "none"}),
    (["--oracle"], {"retrieval.name": "oracle"}),
    (["--corrupt-rag"], {"retrieval.name": "corrupt", "retrieval.seed": 0}),
    (["--text2text"], {"retrieval.name": "text2text"}),
    (["--global-context"], {"global_context.top_k": 3, "retrieval.name": "adaptive"}),
    (["--global-context", "--global-context-topk", "5"], {"global_context.top_k": 5}),
    (["--global-context-topk", "5"], {"global_context.top_k": 0}),  # the release ignores it alone
    # the release's precedence: no_rag > oracle > corrupt_rag > normal; text2text changes normal only
    (["--no-rag", "--oracle", "--corrupt-rag", "--text2text"], {"retrieval.name": "none"}),
    (["--oracle", "--corrupt-rag"], {"retrieval.name": "oracle"}),
    (["--corrupt-rag", "--text2text"], {"retrieval.name": "corrupt"}),
    (["--no-rag", "--rag-logit-bias", "2"], {"retrieval.name": "none", "generation.rag_logit_bias": 2.0}),
    # a Hydra override of a setting no flag gives wins over the release's default
    (["generation.max_new_tokens=24"], {"generation.max_new_tokens": 24, "generation.top_k": 3}),
]


@pytest.mark.parametrize(
    ("flags", "expected"), HONOURED, ids=[" ".join(f) or "defaults" for f, _ in HONOURED]
)
def test_each_release_flag_sets_its_setting(checkpoints, flags: list[str], expected: dict) -> None:
    cfg = _config(["--checkpoint", str(checkpoints["ours"]), "--output", "/tmp/p.jsonl", *flags])
    assert {key: _get(cfg, key) for key in expected} == expected
    assert cfg.predictions == "/tmp/p.jsonl" and cfg.paths.output_dir == "/tmp"
    assert cfg.ckpt == str(checkpoints["ours"].resolve())  # `last` resolved to the step it points at


# (checkpoint kind, flags, the predictions path under tmp_path): the release's automatic output name
NAMED = [
    ("release", [], "adarag_run/infer_normal_rag/step_3000.jsonl"),
    ("release", ["--no-rag", "--oracle"], "adarag_run/infer_no_rag/step_3000.jsonl"),
    ("release", ["--oracle"], "adarag_run/infer_oracle/step_3000.jsonl"),
    (
        "release",
        ["--corrupt-rag", "--output-suffix", "s1"],
        "adarag_run/infer_corrupt_rag_s1/step_3000.jsonl",
    ),
    (
        "release",
        ["--text2text", "--global-context"],
        "adarag_run/infer_normal_rag_text2text_gc3/step_3000.jsonl",
    ),
    (
        "release",
        ["--global-context", "--global-context-topk", "2", "--output-suffix", "x"],
        "adarag_run/infer_normal_rag_gc2_x/step_3000.jsonl",
    ),
    # ours: outputs/train/<run>/step-N, so the run is the checkpoint's folder; `last` is named after its step
    ("ours", ["--no-rag"], "outputs/train/demo_tiny_rag/infer_no_rag/step-000002.jsonl"),
]


@pytest.mark.parametrize(("kind", "flags", "path"), NAMED, ids=[p for _, _, p in NAMED])
def test_without_output_the_predictions_are_named_as_the_release_names_them(
    checkpoints, tmp_path: Path, kind: str, flags: list[str], path: str
) -> None:
    cfg = _config(["--checkpoint", str(checkpoints[kind]), *flags])
    assert cfg.predictions == str(tmp_path / path)
    assert cfg.paths.output_dir == str((tmp_path / path).parent)


def test_config_gives_the_base_of_a_release_step_as_the_release_reads_it(
    checkpoints, tmp_path, capsys
) -> None:
    release, base = checkpoints["release"], checkpoints["base"]
    yaml_file = tmp_path / "adaragct_8b.yaml"
    yaml_file.write_text(
        f"model:\n  model_path: meta-llama/Llama-3.1-8B\nbase_checkpoint: {base}\nlr: 1e-4\n"
    )
    argv = ["--checkpoint", str(release), "--config", str(yaml_file)]
    assert _config(argv).ckpt_base == str(base.resolve())
    assert f"base directory {base} (its phase.init_from key)" in capsys.readouterr().err
    assert _config([*argv, "--base", str(tmp_path)]).ckpt_base == str(tmp_path)  # --base names it itself
    assert "--config is ignored: --base names the base directory" in capsys.readouterr().err
    (release / "training_state.pt").write_bytes(b"")  # the release reads its own config then
    assert _config(argv).ckpt_base is None
    assert "--config is ignored: the checkpoint has training_state.pt" in capsys.readouterr().err
    ours = ["--checkpoint", str(checkpoints["ours"]), "--config", str(yaml_file)]
    assert _config(ours).ckpt_base is None
    assert "--config is ignored: our checkpoints carry their config" in capsys.readouterr().err


def test_base_flag_sets_ckpt_base(checkpoints) -> None:
    cfg = _config(["--checkpoint", str(checkpoints["release"]), "--base", str(checkpoints["base"])])
    assert cfg.ckpt_base == str(checkpoints["base"].resolve())


# (flags, words the one-line refusal holds): exit status 2, the flag named, the way out
REFUSED = [
    (["--config", "{tmp}/missing.yaml"], ["--config:", "missing.yaml does not exist", "--base <dir>"]),
    (["--config", "{tmp}/no_base.yaml"], ["--config:", "names no release base directory", "--base <dir>"]),
    (
        ["--max-new-tokens", "5", "generation.max_new_tokens=7"],
        [
            "--max-new-tokens:",
            "an override sets too",
            "give --max-new-tokens or generation.max_new_tokens= once",
        ],
    ),
    (["--max-samples", "4", "limit=2"], ["--max-samples:", "give --max-samples or limit= once"]),
    (["--max-samples", "0"], ["argument --max-samples: must be at least 1, got 0"]),
    (["--top-k", "0"], ["argument --top-k: must be at least 1, got 0"]),
    (["--global-context-topk", "0"], ["argument --global-context-topk: must be at least 1, got 0"]),
    (["--cooldown-tokens", "-1"], ["argument --cooldown-tokens: must be 0 or more, got -1"]),
]


@pytest.mark.parametrize(("flags", "words"), REFUSED, ids=[" ".join(f) for f, _ in REFUSED])
def test_what_cannot_work_is_refused_in_one_line(checkpoints, tmp_path, capsys, flags, words) -> None:
    (tmp_path / "no_base.yaml").write_text("model_path: meta-llama/Llama-3.1-8B\nlr: 1e-4\n")
    argv = ["--checkpoint", str(checkpoints["release"]), *(f.format(tmp=tmp_path) for f in flags)]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert all(w in last for w in words), last


def test_the_command_line_warns_about_what_the_release_ignores_and_refuses_without_a_traceback(
    checkpoints, tmp_path
) -> None:
    (tmp_path / "no_base.yaml").write_text("lr: 1e-4\n")
    command = [
        sys.executable,
        "-m",
        "adaragct.inference.inference_rag",
        "--checkpoint",
        str(checkpoints["release"]),
        "--no-rag",
        "--oracle",
        "--text2text",
        "--rag-logit-bias",
        "1",
        "--config",
        str(tmp_path / "no_base.yaml"),
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-4:] == [
        "warning: --oracle is ignored: --no-rag takes precedence (as in the release)",
        "warning: --text2text is ignored with --no-rag (it changes adaptive retrieval only)",
        "warning: --rag-logit-bias is ignored with --no-rag (nothing is retrieved)",
        f"error: --config: {tmp_path / 'no_base.yaml'} names no release base directory (a merged HF model + "
        "projector.pt); found no model_path / base_checkpoint / init_from key (fix: pass the release's base "
        "directory with --base <dir>)",
    ]


# ---------------------------------------------------------------- tiny runs: the ablations do what they say
def _paths(data_dir: Path, run_dir: Path) -> list[str]:
    return [*data_overrides(data_dir), f"paths.cache_dir={data_dir}/cache", f"paths.output_dir={run_dir}"]


def _run(data_dir: Path, ckpt: Path, output: Path, *flags: str) -> list[dict]:
    main(
        [
            "--checkpoint",
            str(ckpt),
            "--output",
            str(output),
            *flags,
            *data_overrides(data_dir),
            f"paths.cache_dir={data_dir}/cache",
            *SMALL_RUN,
            "score=false",
        ]
    )
    return _lines(output)


def test_corrupt_rag_injects_seeded_random_bank_sentences(indexed_demo, tiny_checkpoints, tmp_path) -> None:
    from adaragct.retrieval.runtime import load_retriever

    rows = _run(indexed_demo, tiny_checkpoints["rag"], tmp_path / "corrupt.jsonl", "--corrupt-rag")
    cfg = compose_config("infer", [*_paths(indexed_demo, tmp_path), "retrieval=corrupt"])
    retriever = load_retriever(cfg.retrieval, cfg.data, cfg.encoder)
    retrieved = 0
    for row in rows:
        assert row["retrieval"] == "corrupt"
        asked = [e for e in row["retrieval_log"] if e["action"] != "cancelled"]
        for n, entry in enumerate(asked):  # the n-th retrieval of a volume: the draw of (seed, volume, n)
            rows_drawn = retriever.draw(row["image"], n, 3)
            assert entry["context"] == [retriever.bank.texts[r] for r in rows_drawn]
            assert entry["sentence_ids"] == [retriever.bank.records[r].sentence_id for r in rows_drawn]
            retrieved += 1
    assert retrieved >= 6, "the [RAG] bias must make the tiny model retrieve"
    adaptive = _run(indexed_demo, tiny_checkpoints["rag"], tmp_path / "adaptive.jsonl")
    ours = {e["organ"] for r in adaptive for e in r["retrieval_log"] if e["action"] == "retrieved"}
    assert ours and {e.get("organ") for r in rows for e in r["retrieval_log"]} <= {None}  # no organ routing
    assert [r["generated_text"] for r in rows] != [r["generated_text"] for r in adaptive]


def _expected_global_context(data_dir: Path, volume_ids: list[str], k: int) -> dict[str, list[str]]:
    """Top-k training volumes by centred whole-CT cosine, other patients only, computed here from the files."""
    from adaragct.ids import patient_id

    root = data_dir / "demo/bundle/embeddings/ct_clip"
    train, valid = np.load(root / "train_embeds.npz"), np.load(root / "valid_embeds.npz")
    train_ids = [s.removesuffix(".nii.gz") for s in train["sample_ids"].astype(str)]
    valid_pos = {s.removesuffix(".nii.gz"): i for i, s in enumerate(valid["sample_ids"].astype(str))}
    mean = train["ct_clip_max"].astype(np.float64).mean(0)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - mean
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    out = {}
    base = unit(train["ct_clip_max"])
    for vid in volume_ids:
        scores = base @ unit(valid["ct_clip_max"][valid_pos[vid]])
        order = [i for i in np.argsort(-scores, kind="stable") if patient_id(train_ids[i]) != patient_id(vid)]
        out[vid] = [train_ids[i] for i in order[:k]]
    return out


def test_global_context_puts_the_neighbours_reports_before_the_prompt(
    indexed_demo, tiny_checkpoints, tmp_path
) -> None:
    flags = ("--global-context", "--global-context-topk", "2")
    rows = _run(indexed_demo, tiny_checkpoints["rag"], tmp_path / "gc.jsonl", *flags)
    expected = _expected_global_context(indexed_demo, [r["image"] for r in rows], 2)
    assert {r["image"]: r["global_context"] for r in rows} == expected
    plain = _run(indexed_demo, tiny_checkpoints["rag"], tmp_path / "plain.jsonl")
    assert all("global_context" not in r for r in plain)
    assert [r["generated_text"] for r in rows] != [r["generated_text"] for r in plain]

    # the prompt the model reads: the reports (database sentences joined by spaces) in rank order, then the prompt
    import torch

    from adaragct.apps.infer import load_generation_model
    from adaragct.data.datasets import load_split
    from adaragct.data.prompt import BOS, PromptConfig, build_prompt
    from adaragct.generation.prefixes import prompt_prefixes
    from adaragct.retrieval.global_context import load_global_context

    database = json.loads((indexed_demo / DATABASE).read_text())
    report = {vid.removesuffix(".nii.gz"): " ".join(s["text"] for s in ss) for vid, ss in database.items()}
    cfg = compose_config("infer", [*_paths(indexed_demo, tmp_path), "global_context.top_k=2"])
    volumes = load_split(cfg.data, "valid")[:3]
    context = load_global_context(cfg.global_context, cfg.data, volumes)
    model, tokenizer, ckpt_cfg = load_generation_model(str(tiny_checkpoints["rag"]), "cpu")
    prompt = PromptConfig(**ckpt_cfg["prompt"])
    visual = {s: torch.from_numpy(np.stack([v.visual[s] for v in volumes])) for s in volumes[0].visual}
    reports = [context.for_volume(v.volume_id)[1] for v in volumes]
    prefixes = prompt_prefixes(model, tokenizer, prompt, visual, reports)
    for j, (volume, (prefix, mask)) in enumerate(zip(volumes, prefixes, strict=True)):
        text = " ".join(report[n] for n in expected[volume.volume_id])
        want = f"{BOS}<|ret_start|> Reference context: {text} <|ret_end|>\n{build_prompt(prompt)[len(BOS) :]}"
        ids = torch.tensor(tokenizer.encode(want, add_special_tokens=False))
        assert len(mask) == len(ids) > len(tokenizer.encode(build_prompt(prompt), add_special_tokens=False))
        with torch.no_grad():
            assert torch.equal(
                prefix, model.embed(ids[None], {s: v[j : j + 1] for s, v in visual.items()})[0]
            )
