"""Every command of adaragct, one module each, all of one shape (docs/configs.md).

The Hydra apps, in pipeline order (``python -m adaragct.<app>`` or ``adaragct-<app>``; config ``conf/<app>.yaml``):

    prepare    validate a dataset, train the tiny tokenizer and LM, summary      -> adaragct.apps.prepare
    index      sentence database, embeddings, FAISS bank, neighbours, contexts    -> adaragct.apps.index
    train      one training phase (align, base, rag)                              -> adaragct.apps.train
    infer      a report (and retrieval trace) per volume of a split, then scored  -> adaragct.apps.infer
    evaluate   any predictions file -> metrics JSON + markdown table              -> adaragct.apps.evaluate
    analyze    the embedding bottleneck, or two report sets as text               -> adaragct.apps.analyze
    aggregate  every cell of an ablation grid in one table and plot               -> adaragct.apps.aggregate
    demo       the whole study on the built-in cohort                             -> adaragct.apps.demo

Each exposes ``run(cfg) -> summary`` (what the demo, tests, multirun callbacks and Optuna use) and ``main()``
(the console entry point), both made the same way by :mod:`adaragct.apps._app`. ``show`` (the report viewer,
argparse) is here too. The release's own commands (``adaragct.eval.cal_metrics``,
``adaragct.inference.inference_rag``, ``adaragct.train.train_rag``) are mapped onto these in :mod:`adaragct.compat`.

Nothing else in the package imports ``apps`` (tests/test_layers.py), except the one-line forwarders that keep the
old module paths (``python -m adaragct.infer``) working.
"""
