"""What the argparse commands share (the release's aliases and ``adaragct-show``): a parser whose usage errors
take one line and exit with :data:`adaragct.errors.USER_ERROR_EXIT`, and the number types of their flags.

The Hydra apps report bad options through :func:`adaragct.errors.user_errors_exit`; these commands keep the
release's argparse interfaces, so they need the same one-line contract from argparse itself.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from adaragct.errors import USER_ERROR_EXIT


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (argparse's default prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR_EXIT, f"{self.prog}: error: {message} (see --help)\n")


def positive(text: str) -> int:
    """An integer of at least 1 (``type=`` of a count that cannot be zero)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    """An integer of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value
