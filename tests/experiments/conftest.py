"""The experiment tests use the session fixtures of ``tests/conftest.py``: the small demo cohort with its real
index (``indexed_demo``) and tiny phase base/rag checkpoints (``tiny_checkpoints``), built once per session by the
real stages."""
