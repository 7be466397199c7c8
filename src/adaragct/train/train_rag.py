"""``python -m adaragct.train.train_rag --config <release YAML>``: the release's command, verbatim; its mapping onto
the train app is :mod:`adaragct.compat.train_rag`."""

from adaragct.compat.train_rag import KEY_MAP, main, release_overrides  # noqa: F401

if __name__ == "__main__":
    main()
