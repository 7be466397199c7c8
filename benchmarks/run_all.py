"""Run every benchmark script in benchmarks/ and print one summary table (make bench).

    python benchmarks/run_all.py                     # all bench_*.py, in name order
    python benchmarks/run_all.py --only eval,retrieval --timeout 900

Each benchmark runs as its own subprocess (a fresh interpreter: no warm caches or thread pools carried from one
to the next) and prints its own table, streamed here as it runs. The summary lists, per benchmark, the wall
seconds, the exit status and the lines it printed that state a ratio or a goal (``goal``, ``ratio``, or a
number followed by ``x``), so one screen shows whether every measured ratio met its goal. bench_generate needs
the demo index (make index); a benchmark that fails is reported, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY_LINE = re.compile(r"goal|ratio|\d(\.\d+)?x\b", re.IGNORECASE)


def _is_key_line(line: str) -> bool:
    """A measured ratio or goal: the keyword plus a number (a table header alone is not), no traceback line."""
    return bool(KEY_LINE.search(line) and re.search(r"\d", line)) and not line.lstrip().startswith(
        ("File ", "/")
    )


@dataclass
class BenchResult:
    """What one benchmark run produced: name, wall seconds, exit status and its ratio/goal lines."""

    name: str
    seconds: float
    status: int
    key_lines: list[str] = field(default_factory=list)


def run_benchmark(script: Path, timeout: float) -> BenchResult:
    """Run ``script`` with this interpreter, echo its output live, and keep the ratio/goal lines."""
    print(f"\n===== {script.name} =====", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(script)],
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # stream the child's table as it prints
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        timer = threading.Timer(timeout, proc.kill)  # a silent hang is killed too, not only a chatty one
        timer.start()
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip())
        finally:
            status = proc.wait()
            timer.cancel()
    keys = [line.strip() for line in lines if _is_key_line(line)]
    if time.perf_counter() - start >= timeout:
        keys.append(f"killed after {timeout:.0f} s (--timeout)")
    return BenchResult(script.stem, time.perf_counter() - start, status, keys)


def summary_table(results: list[BenchResult]) -> str:
    """One plain-text table: a row per benchmark, then its key lines indented below it."""
    out = [f"{'benchmark':24s} {'wall s':>8s} {'exit':>5s}  key lines (goal / ratio)", "-" * 100]
    for r in results:
        out.append(f"{r.name:24s} {r.seconds:8.1f} {r.status:5d}  {r.key_lines[0] if r.key_lines else '-'}")
        out += [f"{'':40s}{line}" for line in r.key_lines[1:]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the selected benchmarks, print the summary; exit 1 when any failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated names without bench_ (default: all)")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per benchmark before it is killed"
    )
    args = parser.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{n.strip()}" for n in args.only.split(",")}
        scripts = [s for s in scripts if s.stem in wanted]
        if missing := wanted - {s.stem for s in scripts}:
            parser.error(
                f"no benchmark {sorted(missing)} in {HERE} (have {[s.stem for s in HERE.glob('bench_*.py')]})"
            )
    results = [run_benchmark(s, args.timeout) for s in scripts]
    print("\n" + summary_table(results))
    return 1 if any(r.status for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
