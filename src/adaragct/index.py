"""``python -m adaragct.index`` (0.1's path, kept): the index app is :mod:`adaragct.apps.index`."""

from adaragct.apps.index import main, run  # noqa: F401

if __name__ == "__main__":
    main()
