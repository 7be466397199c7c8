"""Evaluation of generated CT reports from a predictions file alone (docs/evaluation.md).

Labelers (rule-based offline, CT-RATE RadBERT), clinical metrics (support-weighted/micro/macro P/R/F1, CRG), text
metrics identical to pycocoevalcap, sacreBLEU, METEOR, an LLM judge, bootstrap CIs and paired comparison. Nothing
here imports models, retrieval or generation.
"""
