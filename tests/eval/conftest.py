"""Shared fixtures: the hand-labelled CT-RATE reports (via the root ``shared_data`` fixture, skipped when absent) and tiny local
models (a WordLevel tokenizer trained here, a random Llama and a random RoBERTa) built in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def manual_labels(shared_data: Path) -> pd.DataFrame:
    """The 800 hand-labelled CT-RATE reports (AccessionNo, report_text, 18 findings)."""
    return pd.read_csv(shared_data / "ctrate_manual_labels" / "train.csv")


@pytest.fixture(scope="session")
def java_children() -> Callable[[], list[int]]:
    """A function listing the METEOR Java processes this test process started that are still alive (none may
    outlive a score: before issue 24 a failed one blocked the interpreter's exit)."""

    def alive() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == os.getpid() and b"meteor-1.5.jar" in cmdline:
                found.append(int(stat.parent.name))
        return found

    return alive


@pytest.fixture(scope="session")
def vlm3d_dir(shared_data: Path) -> Path:
    """The VLM3D challenge's evaluation fixture."""
    return shared_data / "vlm3d_reportgen_example"


CORPUS = [
    "score : 7 / 10 the generated report agrees with the reference",
    "no pleural effusion . the heart is normal . nodule in the right lung 0 1 2 3 4 5 6 7 8 9 10 out of",
    "you are an expert radiologist compare reports rate from 0 to 10 reference generated",
]


def build_tokenizer(out_dir: Path, *, roberta_style: bool = False):
    """Train a WordLevel tokenizer on a few lines and save it as a PreTrainedTokenizerFast in ``out_dir``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_llama(out_dir: Path) -> Path:
    """A random 2-layer Llama with the local tokenizer, saved to ``out_dir``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(out_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def build_tiny_roberta(out_dir: Path) -> Path:
    """A random 1-layer RoBERTa directory (config + tokenizer) standing in for RadBERT."""
    from transformers import RobertaConfig

    tok = build_tokenizer(out_dir)
    RobertaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=514,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    ).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + tokenizer saved locally (the judge's test model)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory) -> Path:
    """A tiny random RoBERTa directory (config + tokenizer) standing in for RadBERT."""
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))
