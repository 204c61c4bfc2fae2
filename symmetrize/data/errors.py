"""The exceptions the data readers raise, and the helpers they share to read files and numbers.

Every reader error is a :class:`DataError` (a ``ValueError``) whose message starts with the file
it is about. Errors in a text file are :class:`DataFileError` s (``BVHError``, ``ASFError``,
``AMCError``, ``JointMapError``) that also carry the 1-based line: ``"take.bvh:12: ..."``. A
file that does not exist raises :class:`FileNotFoundError` naming it.
"""

from __future__ import annotations

import math
import re
from os import PathLike
from pathlib import Path

__all__ = [
    "AMCError",
    "ASFError",
    "BVHError",
    "DataError",
    "DataFileError",
    "JointMapError",
    "parse_number",
    "read_text",
]

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


class DataError(ValueError):
    """Data that cannot be used as given; the message names the file (or argument) at fault."""


class DataFileError(DataError):
    """A malformed text file; ``source`` and ``line`` (1-based, ``None``: the whole file) say
    where, and the message starts with ``source:line:``."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[type[DataFileError], tuple[str, int | None, str]]:
        return type(self), (self.source, self.line, self.message)


class BVHError(DataFileError):
    """A malformed BVH file."""


class ASFError(DataFileError):
    """A malformed ASF skeleton file (Acclaim / CMU)."""


class AMCError(DataFileError):
    """A malformed AMC motion file, or one that does not fit its ASF skeleton."""


class JointMapError(DataFileError):
    """A joint map that is malformed, breaks the left/right mirror, or fits no motion."""


def parse_number(token: str, error: type[DataFileError], source: str, line: int,
                 what: str) -> float:
    """``token`` as a finite float, else ``error(source, line, ...)`` naming ``what``."""
    if _NUMBER.fullmatch(token):
        value = float(token)
        if math.isfinite(value):
            return value
    if token.lower() in _NON_FINITE or _NUMBER.fullmatch(token):
        raise error(source, line, f"{what} is {token!r}; values must be finite")
    raise error(source, line, f"{what} is {token!r}, not a number")


def read_text(path: str | PathLike[str], what: str) -> str:
    """The text of the file at ``path`` (UTF-8, undecodable bytes replaced, a BOM dropped).

    Raises:
        FileNotFoundError: no such file.
        DataError: a folder, or a file that cannot be read (naming the OS's reason).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such {what} file")
    if p.is_dir():
        raise DataError(f"{p}: a folder, not a {what} file")
    try:
        return p.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff")
    except OSError as err:
        raise DataError(f"{p}: cannot read this {what} file ({err.strerror or err})") from None
