"""Write the viewer tests' fixtures (tests/viewer/data/) from a real run of the demo's rag model: a few of its
prediction records, as the generator wrote them, the labels of those volumes and the checkpoint's tokenizer.

The records come from the demo's checkpoint run by the infer stage (``make demo`` first), traces with ``char_offset``:

    python -m adaragct.infer experiment=demo retrieval=adaptive generation.max_retrievals=4 threads=2 \\
        ckpt=outputs/train/demo_tiny_rag/last predictions=/tmp/p.jsonl score=false
    python tests/viewer/make_fixtures.py /tmp/p.jsonl

(the demo's own outputs/demo/rag_adaptive/predictions.jsonl holds the same reports and traces, written before the
generator recorded ``char_offset``). Nothing in a fixture is edited: the tests derive old-style traces by dropping
``char_offset`` from these.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from adaragct.ids import normalize_volume_id

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
# one [RAG] to five, two traces with a cancelled probe, volumes with and without findings
VOLUMES = (
    "valid_1_a_1",
    "valid_2_a_1",
    "valid_6_a_1",
    "valid_16_a_2",
    "valid_23_a_2",
    "valid_40_a_1",
    "valid_46_a_1",
    "valid_61_a_1",
)
PREDICTIONS = DATA / "demo_rag_adaptive.jsonl"
LABELS = DATA / "demo_valid_labels.csv"
TOKENIZER = DATA / "demo_tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def main(argv: list[str] | None = None) -> None:
    root = HERE.parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("predictions", help="predictions JSONL of the demo's rag model with retrieval=adaptive")
    p.add_argument("--checkpoint", default=root / "outputs/train/demo_tiny_rag/last")
    p.add_argument(
        "--labels-csv", default=root / "data/demo/ctrate/multi_abnormality_labels/valid_predicted_labels.csv"
    )
    args = p.parse_args(argv)
    records = {}
    with open(args.predictions, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            records[record["image"]] = line
    missing = [v for v in VOLUMES if v not in records]
    if missing:
        raise SystemExit(f"{args.predictions}: no record of {missing}")
    if any("char_offset" not in e for v in VOLUMES for e in json.loads(records[v])["retrieval_log"]):
        raise SystemExit(f"{args.predictions}: traces without char_offset; run the infer command above")
    DATA.mkdir(exist_ok=True)
    PREDICTIONS.write_text("".join(records[v] for v in VOLUMES), encoding="utf-8")
    with open(args.labels_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0], *(r for r in rows[1:] if normalize_volume_id(r[0]) in VOLUMES)]
    with open(LABELS, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)
    TOKENIZER.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(Path(args.checkpoint) / name, TOKENIZER / name)
    print(f"wrote {PREDICTIONS}, {LABELS} ({len(kept) - 1} volumes), {TOKENIZER}")


if __name__ == "__main__":
    main()
