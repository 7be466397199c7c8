"""``python -m adaragct.demo`` (0.1's path, kept): the demo app is :mod:`adaragct.apps.demo`."""

from adaragct.apps.demo import STEPS, check_until, main, run  # noqa: F401
from adaragct.apps.demo import run as run_demo  # noqa: F401 (0.1's name)

if __name__ == "__main__":
    main()
