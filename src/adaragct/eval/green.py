"""GREEN (a 7B LLM that counts clinically significant errors) is not computed by adaragct: why, and what to run.

The release's ``cal_metrics.py`` has ``--compute-green`` (off by default, its code commented out: "install
separately if needed") calling ``GREEN(green_model_path, output_dir=".", cpu=False)`` with ``batch_size = 16`` and
reporting ``report_generation/green_mean`` and ``green_std``. What we found for doing the same here (issue 21):

- ``green-score`` 0.0.12 (PyPI, the package that call and its 5-value return belong to) requires Python ==3.12.1,
  torch==2.2.2 and transformers==4.40.0: it cannot be installed next to adaragct (torch>=2.11, transformers>=5.24).
- ``radeval`` 2.2.1 (RadEval, maintained; GREEN in ``radeval.metrics.green_score.green``) does run GREEN from a
  local model folder on CPU or GPU (checked end to end with a tiny Llama), but it cannot share adaragct's
  environment: it requires torchvision, and PyPI's torchvision 0.28.0 next to a CPU build of torch 2.13 (what
  ``make install`` gives a machine without CUDA) fails on import (``operator torchvision::nms does not exist``),
  which breaks ``from transformers import AutoModelForCausalLM`` and so every model of adaragct; it pins spaCy 3.7
  (thinc 8.2.4, built for numpy 1: fails under our numpy 2.4); unconstrained, pip would replace torch 2.13 with
  2.14 and its CUDA 13 libraries; and importing it downloads NLTK data from the network, sets the process's
  multiprocessing start method to ``spawn`` and silences transformers' warnings for the whole process.
  Its high-level ``RadEval(metrics=["green"])`` loads the hub id ``StanfordAIMI/GREEN-radllama2-7b``, not a
  local folder, and it returns 4 values (mean, std, per-sample scores, table), not the release's 5.

So ``--compute-green`` is refused with :func:`green_unavailable_reason`, and :data:`RADEVAL_SCRIPT` (printed by
``python -m adaragct.eval.green``) runs RadEval's GREEN on a predictions file in an environment of its own::

    python -m adaragct.eval.green > green_radeval.py
    python -m venv green-env && green-env/bin/pip install radeval==2.2.1
    green-env/bin/python green_radeval.py predictions.jsonl /models/GREEN-RadLlama2-7b green.json [--cpu]
"""

from __future__ import annotations

from adaragct.errors import UsageError
from adaragct.formats.metrics import metric_key
from adaragct.formats.predictions import PREDICTION_FIELDS, REFERENCE_FIELDS

RADEVAL_PIN = "radeval==2.2.1"

RADEVAL_SCRIPT = f'''"""GREEN of a predictions JSONL with RadEval ({RADEVAL_PIN}), the release's settings (batch size 16).

Run in an environment with {RADEVAL_PIN}, not adaragct's (see adaragct/eval/green.py):
    python green_radeval.py PREDICTIONS.jsonl GREEN_MODEL_DIR OUT.json [--cpu]
Writes OUT.json (report_generation/green_mean, report_generation/green_std) and OUT.json.per_sample.csv.
"""

import json
import sys

from radeval.metrics.green_score.green import GREEN

if __name__ == "__main__":  # GREEN spawns one process per GPU, which imports this file again
    predictions, model_dir, out = sys.argv[1:4]
    with open(predictions, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    scorer = GREEN(model_dir, output_dir=".", cpu="--cpu" in sys.argv)  # cpu: float32; else every GPU, float16
    scorer.batch_size = 16
    references = [row["{REFERENCE_FIELDS[0]}"] for row in rows]
    generated = [row["{PREDICTION_FIELDS[0]}"] for row in rows]
    mean, std, per_sample, table = scorer(references, generated)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({{"{metric_key("green_mean")}": mean, "{metric_key("green_std")}": std}}, handle, indent=2)
    table.insert(0, "image", [row.get("image") for row in rows])
    table.to_csv(out + ".per_sample.csv", index=False)
    print(f"GREEN {{mean:.4f}} +- {{std:.4f}} over {{len(rows)}} reports -> {{out}}")
'''


def green_unavailable_reason() -> str:
    """One line for ``--compute-green``: GREEN is not computed here, why, and what to run instead."""
    return (
        f"GREEN is not computed by adaragct: green-score 0.0.12 needs Python 3.12.1, torch 2.2.2 and "
        f"transformers 4.40, and {RADEVAL_PIN} (whose GREEN runs a local model) cannot share adaragct's "
        "environment (its torchvision breaks transformers under a CPU torch, its spaCy fails under numpy 2, and "
        "importing it downloads NLTK data and changes multiprocessing and logging for the whole process)"
    )


def green_usage_error(option: str = "--compute-green") -> UsageError:
    """The error an entry point raises for ``option``; its fix says how to compute GREEN elsewhere."""
    return UsageError(
        option,
        green_unavailable_reason(),
        f"run RadEval's GREEN in an environment of its own on the predictions file's {REFERENCE_FIELDS[0]} and "
        f"{PREDICTION_FIELDS[0]}: python -m adaragct.eval.green > green_radeval.py; pip install {RADEVAL_PIN} in a "
        "new venv; there: python green_radeval.py PREDICTIONS.jsonl GREEN_MODEL_DIR green.json",
    )


if __name__ == "__main__":
    print(RADEVAL_SCRIPT, end="")
