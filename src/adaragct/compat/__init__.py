"""Old spellings that keep working: the AdaRAG-CT release's commands and flags, and names this project renamed.

* :mod:`adaragct.compat.renames`: our own renamed config keys (``stage`` -> ``phase``; the scoring settings moved
  into ``conf/scoring``), accepted for a release with a warning, refused with the new name where they would
  otherwise be silently ignored.
* :mod:`adaragct.compat.cal_metrics`: ``python -m adaragct.eval.cal_metrics`` (the release's scoring command and
  every flag of it) onto :mod:`adaragct.eval.runner`.
* :mod:`adaragct.compat.inference_rag`: ``python -m adaragct.inference.inference_rag`` onto the infer app.
* :mod:`adaragct.compat.train_rag`: ``python -m adaragct.train.train_rag --config <release YAML>`` onto the train app.

The release's command paths themselves are one-line forwarders to these modules, so the paper's command lines run
verbatim.
"""
