"""``python -m adaragct.prepare`` (0.1's path, kept): the prepare app is :mod:`adaragct.apps.prepare`."""

from adaragct.apps.prepare import main, run  # noqa: F401
from adaragct.apps.prepare import run as run_prepare  # noqa: F401 (0.1's name)

if __name__ == "__main__":
    main()
