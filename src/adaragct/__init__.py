"""adaragct: retrieval-augmented 3D CT report generation (a reimplementation of AdaRAG-CT).

Stages (each a Hydra app under ``conf/``): prepare -> index -> train -> infer -> evaluate -> analyze.
See README.md for the two commands that run everything (`make demo`, `make test`).
"""

__version__ = "0.1.0"
