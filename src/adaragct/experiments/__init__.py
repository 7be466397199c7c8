"""Ablation-grid helpers: the Hydra callback that marks each multirun cell, and the grid reader of the
aggregation command (``python -m adaragct.aggregate``)."""
