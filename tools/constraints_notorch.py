"""Write constraints-notorch.txt: constraints.txt (CI's tested set) without torch and torch's CUDA stack.

Usage: python tools/constraints_notorch.py [--check]   (`make constraints-notorch.txt` runs it)

A cluster node keeps its site-provided torch: `pip install -c constraints-notorch.txt -e .` pins every other
package to the version CI tested and leaves torch to what is installed (pyproject.toml's floor, torch>=2.11, still
applies). Dropped: torch, triton, nvidia-* and cuda-* (the wheels a CUDA torch brings; none is in the CPU set CI
freezes, but a freeze made on a GPU node would hold them). --check exits 1 when the file on disk is stale.
Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "constraints.txt"
TARGET = ROOT / "constraints-notorch.txt"
TORCH_STACK = re.compile(
    r"^(torch|triton|nvidia-[a-z0-9._-]+|cuda-[a-z0-9._-]+)\s*(==|>=|<=|~=|<|>|!=|@|;|$)", re.I
)

HEADER = """\
# GENERATED from constraints.txt by tools/constraints_notorch.py (`make constraints-notorch.txt`); do not edit.
# CI's tested set without torch, triton, nvidia-* and cuda-*: for a machine whose torch is already installed (a
# cluster's site torch, a CUDA build). `pip install -c constraints-notorch.txt -e .` pins everything else to the
# tested versions and keeps that torch (pyproject.toml's floor, torch>=2.11, still applies).
"""


def is_torch_stack(line: str) -> bool:
    """Whether a requirement line pins torch or a wheel of its CUDA stack."""
    return bool(TORCH_STACK.match(line.strip()))


def render(source: str) -> str:
    """constraints-notorch.txt's text from constraints.txt's: its comments dropped, its pins minus the torch stack."""
    pins = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return HEADER + "".join(f"{ln}\n" for ln in pins if not is_torch_stack(ln))


def main(argv: list[str]) -> int:
    text = render(SOURCE.read_text(encoding="utf-8"))
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.name} is stale: run `make constraints-notorch.txt`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.name}: {text.count(chr(10)) - HEADER.count(chr(10))} pins", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
