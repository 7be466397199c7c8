"""``python -m adaragct.infer`` (0.1's path, kept): the infer app is :mod:`adaragct.apps.infer`."""

from adaragct.apps.infer import generate_split, load_generation_model, main, run  # noqa: F401
from adaragct.apps.infer import run as run_infer  # noqa: F401 (0.1's name)

if __name__ == "__main__":
    main()
