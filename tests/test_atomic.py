"""Atomic writes: all or nothing, with the usual permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from symmetrize.atomic import write_atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "graph.dot"
    target.write_text("old")

    def fail(handle) -> None:
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["graph.dot"]


def test_new_files_get_default_permissions_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.bin"
        write_atomic(fresh, lambda f: f.write(b"data"))
        assert fresh.read_bytes() == b"data" and fresh.stat().st_mode & 0o777 == 0o644
        old = tmp_path / "old.bin"
        old.write_bytes(b"x")
        old.chmod(0o600)
        write_atomic(old, lambda f: f.write(b"new"))
        assert old.read_bytes() == b"new" and old.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(umask)
