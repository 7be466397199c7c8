"""``python -m adaragct.train [hydra overrides]`` (0.1's path, kept): the train app is :mod:`adaragct.apps.train`."""

from adaragct.apps.train import main

if __name__ == "__main__":
    main()
