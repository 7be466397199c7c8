"""On-disk formats (docs/formats.md): one module per file format, each owning its reader, its writer and its schema.

=================  ==================================================================================================
``predictions``    predictions JSONL: the :class:`~adaragct.formats.predictions.Prediction` record, the three layouts read
``vlm3d``          the VLM3D challenge's JSON (submissions and ground truth)
``metrics``        metric keys of the metrics JSON: the ``report_generation/`` prefix and the column lists
``tables``         CT-RATE reports and labels CSVs
``embeddings``     embeddings NPZ of a split (CT-CLIP whole volume, ViSD-Boost organs), aligned to reports
``organ_reports``  the release's ``valid_organ_reports.json``
``sentence_db``    the training-sentence database JSON and its embeddings NPZ
``neighbours``     image neighbours ``img2img_top20.json``
``contexts``       oracle and retrieved context files
``safe_npz``       NPZ reading without running pickles
``fields``         checks the readers share
=================  ==================================================================================================

A layer of its own (tests/test_layers.py): these modules import only the foundation (constants, errors, ids, io,
ledger, cli), so any part may read or write a file. Which files a dataset has is :mod:`adaragct.data.datasets`';
where the index stage puts its files is :mod:`adaragct.data.index_files`'.
"""
