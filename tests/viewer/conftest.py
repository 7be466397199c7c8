"""Fixtures of the viewer tests: real prediction records of the demo's rag model (tests/viewer/make_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.viewer.make_fixtures import LABELS, PREDICTIONS, TOKENIZER


def read_records(path: Path = PREDICTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without_char_offset(record: dict) -> dict:
    """The record as the generator wrote it before it recorded ``char_offset`` (the demo's own files)."""
    log = [{k: v for k, v in entry.items() if k != "char_offset"} for entry in record["retrieval_log"]]
    return {**record, "retrieval_log": log}


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def records() -> list[dict]:
    return read_records()


@pytest.fixture(scope="session")
def demo_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER, local_files_only=True)


@pytest.fixture(scope="session")
def labels_csv() -> Path:
    return LABELS


@pytest.fixture(scope="session")
def predictions() -> Path:
    return PREDICTIONS
