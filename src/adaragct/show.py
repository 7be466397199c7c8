"""``python -m adaragct.show`` (0.1's path, kept): the report viewer is :mod:`adaragct.apps.show`."""

import sys

from adaragct.apps.show import main, show  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
