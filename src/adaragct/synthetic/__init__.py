"""The built-in demo cohort (docs/formats.md#demo-cohort): a seeded, CT-RATE-like dataset written in the CT-RATE and bundle layouts.

Modules: ``cohort`` (patients, findings with CT-RATE prevalence and correlations), ``phrasebook`` (the report
grammar's phrase tables), ``grammar`` (template expansion, radiologist styles), ``report`` (organ-by-organ report
text, calibrated to CT-RATE), ``embeddings`` (whole-volume and organ embeddings with the bottleneck), ``generate`` (all of it in
memory), ``checks`` (text variety, bottleneck, probe AUCs), ``writer`` (files on disk). Entry point:
``python -m adaragct.prepare data=demo``.
"""
