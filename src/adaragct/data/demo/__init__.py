"""The built-in demo cohort (SPEC 2.3): a seeded, CT-RATE-like dataset written in the CT-RATE and bundle layouts.

Modules: ``cohort`` (patients, findings with CT-RATE prevalence and correlations), ``grammar`` (organ-by-organ
report text), ``embeddings`` (whole-volume and organ embeddings with the bottleneck), ``generate`` (all of it in
memory), ``checks`` (text variety, bottleneck, probe AUCs), ``writer`` (files on disk). Entry point:
``python -m adaragct.prepare data=demo``.
"""
