"""What a training run uses besides the app: checkpoint and tracking callbacks (:mod:`adaragct.train.callbacks`),
exact resumption (:mod:`adaragct.train.resume`), clinical metrics during validation
(:mod:`adaragct.train.clinical_validation`). The train app is :mod:`adaragct.apps.train`; 0.1's
``python -m adaragct.train`` and ``from adaragct.train import train`` are kept here."""

from adaragct.apps.train import main, run  # noqa: F401
from adaragct.apps.train import run as train  # noqa: F401 (0.1's name)
