"""Data layer: datasets (:mod:`~adaragct.data.datasets`: which files a dataset has, chosen by ``_target_`` in
``conf/data``), the cohort's volumes and patient split, organ sentences, prompts, the DataModule. File formats are
:mod:`adaragct.formats`'; the demo cohort's generator is :mod:`adaragct.synthetic`."""
