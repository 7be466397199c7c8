"""The one error type for bad input files: it always names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path


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
