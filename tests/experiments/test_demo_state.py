"""The demo's step fingerprints: editing inference code reruns generate-and-score, nothing else does."""

from __future__ import annotations

from pathlib import Path

from adaragct.demo import _INFER_CODE, _code_fingerprint


def test_code_fingerprint_follows_the_inference_code(tmp_path: Path) -> None:
    (tmp_path / "generation").mkdir()
    (tmp_path / "generation" / "loop.py").write_text("STEP = 1\n")
    (tmp_path / "infer.py").write_text("def run(): ...\n")
    (tmp_path / "train.py").write_text("LR = 1e-5\n")
    parts = ("generation", "infer.py")
    before = _code_fingerprint(parts, tmp_path)
    (tmp_path / "train.py").write_text("LR = 2e-5\n")  # not inference code
    assert _code_fingerprint(parts, tmp_path) == before
    (tmp_path / "generation" / "loop.py").write_text("STEP = 2\n")
    assert _code_fingerprint(parts, tmp_path) != before
    package = Path(__import__("adaragct").__file__).parent
    assert all((package / part).exists() for part in _INFER_CODE), "a renamed module would drop out silently"
