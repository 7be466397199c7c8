"""Benchmark of the report viewer on 3,039 volumes (the CT-RATE validation size): page size, build time, and in
headless Chromium the time to first paint, to a usable list and to open a volume.

Run: python benchmarks/bench_viewer.py            (make bench-viewer)
     python benchmarks/bench_viewer.py --scale 4  (each report 4x longer, ~520 tokens, 16 [RAG] per report)

The volumes are the demo's rag/adaptive predictions (outputs/demo/rag_adaptive/predictions.jsonl after
`make demo`, else the 8 records of tests/viewer/data/) replicated with new ids, their labels copied to the new ids.
``--scale K`` writes each report K times over with its trace repeated at the shifted positions, to approach the
~600 tokens of a full-size model's reports. The baseline is the same data rendered eagerly as static HTML (every
volume's reports and retrievals in the DOM at load, no script), what a page without the lazy list would be.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "outputs/demo/rag_adaptive/predictions.jsonl"
DEMO_LABELS = ROOT / "data/demo/ctrate/multi_abnormality_labels/valid_predicted_labels.csv"
FIXTURE = ROOT / "tests/viewer/data/demo_rag_adaptive.jsonl"
FIXTURE_LABELS = ROOT / "tests/viewer/data/demo_valid_labels.csv"
TOKENIZER_DIR = ROOT / "tests/viewer/data/demo_tokenizer"  # the demo checkpoint's tokenizer
N_VOLUMES = 3039

EAGER = jinja2.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>eager</title></head><body>
{% for v in volumes %}<section><h2>{{ v.id }}</h2><div>{{ v.gen }}</div><div>{{ v.ref }}</div>
{% for r in v.rets %}<div>step {{ r.step }} organ {{ r.organ }} probe {{ r.probe }}<table>
{% for t in r.ctx %}<tr><td>{{ r.sc[loop.index0] }}</td><td>{{ sentences[t][1] }}</td><td>{{ sentences[t][0] }}</td></tr>
{% endfor %}</table></div>{% endfor %}</section>
{% endfor %}</body></html>""",
    autoescape=True,
)


def scaled(record: dict, k: int) -> dict:
    """The record written ``k`` times over, its trace repeated at the shifted characters and tokens."""
    if k == 1:
        return record
    text, n = record["generated_text"], record.get("num_generated_tokens", 0)
    log = [
        {**e, "step": e["step"] + i * n, "char_offset": e["char_offset"] + i * (len(text) + 1)}
        for i in range(k)
        for e in record["retrieval_log"]
    ]
    return {
        **record,
        "generated_text": " ".join([text] * k),
        "retrieval_log": log,
        "retrieval_count": record["retrieval_count"] * k,
        "num_generated_tokens": n * k,
    }


def synthetic_inputs(
    source: Path, labels: Path, tokenizer: Path, n: int, k: int, folder: Path
) -> tuple[Path, Path]:
    """``n`` records cycled from ``source`` with new ids (``<id>_r<i>``) and a labels CSV for them."""
    from transformers import AutoTokenizer

    from adaragct.viewer.positions import RECORDED, TOKENIZER, place_retrievals

    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    for (
        record
    ) in records:  # traces without char_offset (the demo's own file): the exact offsets, as recorded now
        points = place_retrievals(record, tok)
        if points and points[0].method != RECORDED:
            assert {p.method for p in points} == {TOKENIZER}, f"{tokenizer} did not write {source}"
            log = record["retrieval_log"]
            record["retrieval_log"] = [
                {**e, "char_offset": p.offset} for e, p in zip(log, points, strict=True)
            ]
    with open(labels, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    by_id = {r[0].removesuffix(".nii.gz"): r[1:] for r in rows[1:]}
    pred, lab = folder / "predictions.jsonl", folder / "labels.csv"
    with open(pred, "w", encoding="utf-8") as out, open(lab, "w", newline="", encoding="utf-8") as lab_out:
        writer = csv.writer(lab_out)
        writer.writerow(rows[0])
        for i in range(n):
            record = records[i % len(records)]
            vid = f"{record['image']}_r{i:04d}"
            out.write(json.dumps(scaled({**record, "image": vid}, k), ensure_ascii=False) + "\n")
            writer.writerow([vid, *by_id[record["image"]]])
    return pred, lab


def browser():
    """Headless Chromium, or None (with the reason printed) where it or its driver is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("no selenium (pip install -e '.[dev]'): browser timings skipped")
        return None
    from adaragct.viewer.browser import INSTALL, find_chromium, headless_chromium

    found = find_chromium()
    if found is None:
        print(f"no chromium + chromedriver ({INSTALL}): browser timings skipped")
        return None
    return headless_chromium(*found)


TIMES = """
const nav = performance.getEntriesByType("navigation")[0];
const paint = performance.getEntriesByType("paint").find((p) => p.name === "first-contentful-paint");
const ready = performance.getEntriesByName("viewer-ready")[0];
return { fcp: paint ? paint.startTime : null, load: nav.loadEventEnd, ready: ready ? ready.startTime : null };
"""


def page_times(driver, page: Path, repeat: int, open_volume: bool) -> dict[str, float]:
    """Median milliseconds over ``repeat`` loads: first contentful paint, load event, list ready, volume open."""
    from selenium.webdriver.support.ui import WebDriverWait

    runs = []
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(page.as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        if open_volume:
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return window.viewerReady === true"))
        times = driver.execute_script(TIMES)
        if open_volume:  # click the 5th row and wait for its page (the script's work, measured in the page)
            times["open"] = driver.execute_script(
                "const t = performance.now(); document.querySelectorAll('.row')[4].click();"
                "document.getElementById('detail').getBoundingClientRect(); return performance.now() - t;"
            )
        runs.append(times)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if runs[0][k] is not None}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--volumes", type=int, default=N_VOLUMES)
    p.add_argument(
        "--scale", type=int, default=1, help="write each report this many times over (longer reports)"
    )
    p.add_argument("--repeat", type=int, default=3, help="page loads per measurement (median)")
    demo = DEMO.is_file() and DEMO_LABELS.is_file()
    p.add_argument("--predictions", type=Path, default=DEMO if demo else FIXTURE, help="records to replicate")
    p.add_argument("--labels-csv", type=Path, default=DEMO_LABELS if demo else FIXTURE_LABELS)
    p.add_argument("--tokenizer", type=Path, default=TOKENIZER_DIR, help="the checkpoint that wrote them")
    args = p.parse_args(argv)
    from adaragct.viewer import build_view, write_view

    source = args.predictions.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pred, lab = synthetic_inputs(
            source, args.labels_csv, args.tokenizer, args.volumes, args.scale, folder
        )
        start = time.perf_counter()
        doc = build_view(pred, labels_csv=lab)
        page = write_view(doc, folder / "view.html")
        build_s = time.perf_counter() - start
        eager = folder / "eager.html"
        eager.write_text(EAGER.render(volumes=doc["volumes"], sentences=doc["sentences"]), encoding="utf-8")
        tokens = statistics.mean(json.loads(line)["num_generated_tokens"] for line in pred.open())
        rets = sum(v["n"] for v in doc["volumes"]) / len(doc["volumes"])
        print(
            f"{args.volumes} volumes from {source} (x{args.scale}: {tokens:.0f} generated tokens,"
            f" {rets:.1f} retrievals a report); predictions {pred.stat().st_size / 1e6:.1f} MB"
        )
        print(f"build (labels, traces, page): {build_s:.1f} s")
        size, eager_size = page.stat().st_size / 1e6, eager.stat().st_size / 1e6
        driver = browser()
        ours = eag = {}
        if driver is not None:
            try:
                ours = page_times(driver, page, args.repeat, open_volume=True)
                eag = page_times(driver, eager, args.repeat, open_volume=False)
            finally:
                driver.quit()

    def ms(d: dict, key: str) -> str:
        return f"{d[key]:.0f}" if key in d else "-"

    print(
        f"\n{'page':<34}{'MB':>7}{'first paint ms':>16}{'list ready ms':>15}{'load ms':>9}{'open volume ms':>16}"
    )
    print(
        f"{'viewer (lazy list)':<34}{size:>7.1f}{ms(ours, 'fcp'):>16}{ms(ours, 'ready'):>15}{ms(ours, 'load'):>9}"
        f"{ms(ours, 'open'):>16}"
    )
    print(
        f"{'baseline: every volume as HTML':<34}{eager_size:>7.1f}{ms(eag, 'fcp'):>16}{'-':>15}{ms(eag, 'load'):>9}"
        f"{'-':>16}"
    )
    print(f"ratio viewer/baseline: size {size / eager_size:.2f}x", end="")
    if "fcp" in ours and "fcp" in eag:
        print(f", first paint {ours['fcp'] / eag['fcp']:.2f}x, load {ours['load'] / eag['load']:.2f}x")
    else:
        print()


if __name__ == "__main__":
    main()
