"""Open the NPZ archives users bring, the release's object arrays included, without trusting pickle.

The release reads every NPZ with ``allow_pickle=True``, and its id arrays (``sample_ids``, ``sentence_ids``) can be
object arrays of str (what ``np.savez`` writes for a pandas column): numpy stores those as a pickle inside the
``.npy`` member. ``np.load(allow_pickle=False)`` refuses them, and ``allow_pickle=True`` runs whatever code a
crafted file names. :func:`open_npz` does neither: ordinary arrays are read as numpy reads them (no pickle), and an
object array's pickle is read by :class:`_ArrayUnpickler`, which resolves only the few numpy names that rebuild an
ndarray (:data:`ALLOWED_GLOBALS`) and refuses every other class or function *before* anything is called. The
rebuilt array must then hold plain values only (str, int, float) and is returned as an ordinary str or number
array, so callers never see an object array. Anything else is a :class:`~adaragct.errors.DataError` naming the
file, the array and the reason.

Every reader of user NPZ files goes through :func:`open_npz` (the embeddings of both layouts, the release's
sentence embeddings, ``analyze npz=...``, projection files); files this package writes itself (bank partitions,
the embedding cache) hold no object arrays and are read with ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from adaragct.errors import DataError

# (module, name) pairs an object array's pickle may name: what numpy itself writes for an object ndarray, under
# numpy 1 (numpy.core) and numpy 2 (numpy._core) module names; ``scalar`` rebuilds numpy scalars held as elements
# (np.str_, np.int64, np.float64), whose values are then checked like any element
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)
_PLAIN = (str, int, float, np.integer, np.floating)


def _fix(key: str) -> str:
    return (
        f"re-save the array with a plain dtype, e.g. np.savez(path, {key}=np.array(values, dtype=str), ...)"
    )


class RefusedPickle(pickle.UnpicklingError):
    """An object array's pickle names something other than :data:`ALLOWED_GLOBALS`."""


class _ArrayUnpickler(pickle.Unpickler):
    """A pickle reader that can rebuild a numpy ndarray and nothing else (no other class or function is found)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedPickle(f"{module}.{name}")


def _read_header(fp: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fp)
    raise ValueError(f".npy format version {version} is not supported for object arrays")


def _plain_array(path: Path, key: str, obj: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The unpickled object array as an ordinary str (any element a str) or number array; else a DataError."""
    where = f"array '{key}'"
    if not isinstance(obj, np.ndarray) or obj.dtype != object or obj.shape != tuple(shape):
        what = f"{type(obj).__name__} {getattr(obj, 'dtype', '')} {getattr(obj, 'shape', '')}".strip()
        raise DataError(
            path,
            where,
            f"its pickle holds a {what}, not the object array of shape {shape} it declares",
            _fix(key),
        )
    flat = obj.ravel().tolist()
    for i, value in enumerate(flat):
        if not isinstance(value, _PLAIN) or isinstance(value, bool):
            raise DataError(
                path,
                where,
                f"element {i} is a {type(value).__name__} (only str, int and float elements are read)",
                _fix(key),
            )
    if any(isinstance(v, str) for v in flat):
        return np.array([str(v) for v in flat], dtype=str).reshape(obj.shape)
    if all(isinstance(v, (int, np.integer)) for v in flat):
        return np.array(flat, dtype=np.int64).reshape(obj.shape)
    return np.array(flat, dtype=np.float64).reshape(obj.shape)


class SafeNpz:
    """An NPZ archive read member by member (``files``, ``npz[key]``, a context manager like ``np.load``'s)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self._members = {n[: -len(".npy")] if n.endswith(".npy") else n: n for n in self.zip.namelist()}
        self.files = list(self._members)

    def __enter__(self) -> SafeNpz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.zip.close()

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._members:
            raise KeyError(f"{key} is not a file in the archive {self.path}")
        try:
            with self.zip.open(self._members[key]) as fp:
                shape, _, dtype = _read_header(fp)
                if not dtype.hasobject:
                    with self.zip.open(self._members[key]) as again:
                        return np.lib.format.read_array(again, allow_pickle=False)
                obj = _ArrayUnpickler(fp).load()
        except RefusedPickle as err:
            raise DataError(
                self.path,
                f"array '{key}'",
                f"its object-array pickle names {err}, which is refused (only str/int/float object arrays are "
                "read; nothing else is unpickled)",
                _fix(key),
            ) from None
        except (  # a damaged or crafted member: whatever numpy or pickle raised, named, never run further
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
            pickle.UnpicklingError,
        ) as err:
            raise DataError(
                self.path,
                f"array '{key}'",
                f"not a readable .npy member ({type(err).__name__}: {err})",
                "re-create the file (it may be truncated)",
            ) from err
        return _plain_array(self.path, key, obj, shape)


def open_npz(path: str | Path, fix_missing: str) -> SafeNpz:
    """Open a user's NPZ for reading (see the module docstring); a missing or unreadable file is a DataError.

    Args:
        path: the ``.npz`` file.
        fix_missing: what to tell the user when the file does not exist (which command writes it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "does not exist", fix_missing)
    try:
        return SafeNpz(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(
            path, "file", f"not a readable NPZ ({err})", "re-create the file (it may be truncated)"
        ) from err
