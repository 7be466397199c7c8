"""``python -m adaragct.analyze`` (0.1's path, kept): the analyze app is :mod:`adaragct.apps.analyze`."""

from adaragct.apps.analyze import main, run, run_analyze, run_text_stats  # noqa: F401

if __name__ == "__main__":
    main()
