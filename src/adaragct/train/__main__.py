"""``python -m adaragct.train [hydra overrides]``: see :mod:`adaragct.train`."""

from adaragct.train import main

if __name__ == "__main__":
    main()
