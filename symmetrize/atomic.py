"""Safe file writing: all or nothing, one writer at a time, checked before any work starts.

* :func:`write_atomic` writes to a temporary file beside the target, then ``os.replace``: a
  crash leaves the old file or the new one, never a partial one.
* :func:`file_lock` holds ``<file>.lock`` (made with ``O_CREAT | O_EXCL``, holding the pid and
  host) while a file is written, so a second process writing the same file gets
  :class:`FileLockedError` instead of clobbering it. A lock left by a process that is gone (killed)
  is taken over; so are the temporary files it left (``.<file>.XXXXXXXX.tmp``).
* :func:`check_writable` says, before a long run starts, whether its output can be written.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["FileLockedError", "check_writable", "clean_leftovers", "file_lock", "write_atomic"]

_HELD: dict[str, int] = {}  # lock files this process holds -> nesting depth
_HELD_GUARD = threading.Lock()
_YOUNG_S = 10.0  # an empty lock file younger than this is being written by its owner


class FileLockedError(OSError):
    """Another live process holds the lock of the file this one wants to write."""


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` through ``write(binary_file)``: an interrupted write leaves no partial file
    and no temporary one, and an existing file stays as it was. The new file gets the old
    one's permissions, else the default ones (``0o666`` less the umask).

    The write holds ``path``'s lock (:func:`file_lock`) and removes the temporary files that a
    killed writer of ``path`` left behind.

    Raises:
        FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError: see
            :func:`check_writable`.
        FileLockedError: another process is writing ``path``.
    """
    target = check_writable(path)
    with file_lock(target):
        clean_leftovers(target)
        mode = _file_mode(target)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


def check_writable(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """``path`` as an absolute :class:`~pathlib.Path` once it is known that a file can be
    written there: a path, not a directory, in an existing writable directory.

    Raises:
        TypeError: ``path`` is not a string or path.
        ValueError: an empty path.
        IsADirectoryError, FileNotFoundError, NotADirectoryError, PermissionError: the message
            names ``what``, the path and the fix.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the {what} must be a file path (str or pathlib.Path), got "
                        f"{type(path).__name__} {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the {what} path is empty. Fix: give a file name such as model.pt")
    target = Path(os.path.abspath(text))
    if target.is_dir():
        raise IsADirectoryError(f"the {what} {text!r} is a directory. Fix: give a file path, "
                                f"e.g. {os.path.join(text, 'model.pt')}")
    parent = target.parent
    if not parent.exists():
        raise FileNotFoundError(f"cannot write the {what} {text!r}: the directory {str(parent)!r} "
                                f"does not exist. Fix: create it first (mkdir -p {parent}) or "
                                "write to an existing directory")
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write the {what} {text!r}: {str(parent)!r} is a file, "
                                 "not a directory. Fix: choose a path inside a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the {what} {text!r}: the directory {str(parent)!r} "
                              "is not writable. Fix: choose a directory you can write to")
    return target


# ----------------------------------------------------------------------------- the lock
def _lock_path(path: str | os.PathLike[str]) -> Path:
    target = Path(os.path.abspath(os.fspath(path)))
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``path``'s lock file (``<path>.lock``) while the block runs; yields the lock
    file's path. Re-entrant within a process (a run that holds its checkpoint's lock can
    write the checkpoint). A lock whose owner is gone is taken over.

    Raises:
        FileLockedError: a live process (or one on another host) holds it.
    """
    lock = _lock_path(path)
    key = str(lock)
    with _HELD_GUARD:
        if not _HELD.get(key):
            _acquire(lock, os.fspath(path))
        _HELD[key] = _HELD.get(key, 0) + 1
    try:
        yield lock
    finally:
        with _HELD_GUARD:
            _HELD[key] -= 1
            if _HELD[key] == 0:  # the outermost holder: release
                del _HELD[key]
                with contextlib.suppress(OSError):
                    os.unlink(lock)


def _acquire(lock: Path, what: str) -> None:
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            if owner is not None and _alive(*owner):
                pid, host = owner
                where = "" if host == socket.gethostname() else f" on host {host}"
                raise FileLockedError(
                    f"{what!r} is being written by another process (pid {pid}{where}; lock file "
                    f"{str(lock)!r}). Fix: wait for that run to finish or write to another "
                    f"file; if no such process runs any more, delete {lock}") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)  # stale: its owner is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return
    raise FileLockedError(f"cannot take the lock {str(lock)!r} of {what!r}: other processes keep "
                          "taking it. Fix: make sure only one run writes this file")


def _owner(lock: Path) -> tuple[int, str] | None:
    """``(pid, host)`` written in the lock file; ``None`` for a stale one (unreadable, or empty
    and older than a few seconds); a young empty lock counts as our own host's live process."""
    try:
        text = lock.read_text().split()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return None
    if len(text) >= 2 and text[0].isdigit():
        return int(text[0]), text[1]
    return (-1, socket.gethostname()) if age < _YOUNG_S else None


def _alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell: the owner's machine decides
    if pid == -1:
        return True  # being written right now
    if pid == os.getpid():
        return False  # a lock this process does not hold: left by an earlier process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a killed child not yet reaped is a zombie: gone
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def clean_leftovers(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files (``.<name>.XXXXXXXX.tmp``) that a killed :func:`write_atomic`
    of ``path`` left beside it; returns them. Call it holding ``path``'s lock."""
    target = Path(os.path.abspath(os.fspath(path)))
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _file_mode(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
