"""``python -m adaragct.eval.cal_metrics PRED.jsonl ...``: the release's scoring command, verbatim; its flags and
their mapping onto :mod:`adaragct.eval.runner` are :mod:`adaragct.compat.cal_metrics`."""

import sys

from adaragct.compat.cal_metrics import build_parser, default_output, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
