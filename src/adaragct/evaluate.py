"""``python -m adaragct.evaluate`` (0.1's path, kept): the evaluate app is :mod:`adaragct.apps.evaluate`."""

from adaragct.apps.evaluate import main, run  # noqa: F401

if __name__ == "__main__":
    main()
