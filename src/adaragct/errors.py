"""The error types a user can fix (a bad input file, an option that cannot work) and how every entry point shows
them: one line naming the file or option, what is wrong and the fix, exit status 2. Anything else is a bug and
keeps its traceback (exit status 1)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

# exit status of every entry point for a DataError or UsageError (argparse uses 2 for usage errors too)
USER_ERROR_EXIT = 2


class DataError(ValueError):
    """A data file that cannot be used as it is.

    Args:
        path: the file (or directory) that is wrong.
        field: the column, key, line or array at fault (``"line 12"``, ``"column 'Cardiomegaly'"``).
        problem: what is wrong, in plain words.
        fix: what the user should do about it.
    """

    def __init__(self, path: str | Path, field: str, problem: str, fix: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {field}: {problem} (fix: {fix})")


class UsageError(ValueError):
    """An option or config value that cannot work as given (no file is at fault).

    Args:
        option: the option as the user wrote it (``"--bootstrap"``, ``"labeler.name=radbert"``).
        problem: what is wrong, in plain words.
        fix: what the user should do about it.
    """

    def __init__(self, option: str, problem: str, fix: str) -> None:
        self.option = option
        self.problem = problem
        self.fix = fix
        super().__init__(f"{option}: {problem} (fix: {fix})")


def one_line(err: BaseException) -> str:
    """The message of a user error on one line (a file's text quoted in it may hold newlines)."""
    return " ".join(str(err).split())


@contextlib.contextmanager
def user_errors_exit() -> Iterator[None]:
    """Show a DataError or UsageError as one ``error: ...`` line on stderr and exit with status 2.

    Wrap the body of a Hydra app with it (inside ``@hydra.main``, whose own handler would print the traceback
    first): ``with user_errors_exit(): return run(cfg)``. Every other exception passes through untouched, with
    its traceback, because it is a bug to report, not an input to fix.
    """
    try:
        yield
    except (DataError, UsageError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
