"""``python -m adaragct.aggregate`` (0.1's path, kept): the aggregate app is :mod:`adaragct.apps.aggregate`."""

from adaragct.apps.aggregate import aggregate, main, run  # noqa: F401

if __name__ == "__main__":
    main()
