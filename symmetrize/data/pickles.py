"""Restricted unpickling of the ``.npy`` members of VideoPose3D archives: only dicts, lists,
strings, numbers, NumPy arrays and dtypes (from NumPy 1 or 2 pickles) are allowed; any other
global is refused before it runs, and every failure is an :class:`ArchiveError` naming the file
and the member."""

from __future__ import annotations

import codecs
import pickle
import zipfile
import zlib
from collections import OrderedDict
from typing import IO, Any

import numpy as np

from symmetrize.data.errors import DataError

__all__ = ["ArchiveError", "read_pickled"]


class ArchiveError(DataError):
    """An archive that is not in VideoPose3D's format (or not safe to unpickle)."""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = np.zeros(()).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
    }
    for core in ("numpy.core", "numpy._core"):  # NumPy 1 and NumPy 2 pickles
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


_ALLOWED = _allowed_globals()


class _Refused(pickle.UnpicklingError):
    pass


# What a truncated or corrupt pickle (or zip member) raises while loading.
_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, zipfile.BadZipFile, zlib.error, OSError)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_pickled(stream: IO[bytes], where: str, key: str) -> Any:
    """The object pickled in one ``.npy`` member (a 0-d object array), unwrapped."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise ArchiveError(f"{where}: {key!r} uses .npy format version {version}, which "
                               f"VideoPose3D archives do not")
    except ArchiveError:
        raise
    except _CORRUPT as exc:
        raise ArchiveError(f"{where}: {key!r} is not a valid .npy array "
                           f"({type(exc).__name__}: {exc})") from None
    if not dtype.hasobject or shape != ():
        raise ArchiveError(f"{where}: {key!r} is an array of shape {shape} and dtype {dtype}, "
                           f"not a pickled dict as VideoPose3D writes")
    try:
        obj = _SafeUnpickler(stream).load()
    except _Refused as exc:
        raise ArchiveError(f"{where}: {key!r} pickles a reference to {exc}, which a pose archive "
                           f"never needs; refusing to load it (only dicts, lists, strings, "
                           f"numbers and NumPy arrays are allowed)") from None
    except _CORRUPT as exc:
        raise ArchiveError(f"{where}: {key!r} could not be unpickled "
                           f"({type(exc).__name__}: {exc})") from None
    if not (isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype == object):
        raise ArchiveError(f"{where}: {key!r} does not hold a single pickled object")
    return obj[()]
