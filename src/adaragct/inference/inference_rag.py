"""``python -m adaragct.inference.inference_rag --checkpoint C ...``: the release's command, verbatim; its mapping
onto the infer app is :mod:`adaragct.compat.inference_rag`."""

from adaragct.compat.inference_rag import main, parse, to_overrides  # noqa: F401

if __name__ == "__main__":
    main()
