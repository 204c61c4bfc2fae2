"""Bad files and arguments for saving and loading (converted models, training checkpoints,
atomic locked writes) and for the metrics: each case raises the documented exception with a
message naming the file or argument; no load ever runs code from a file."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from symmetrize.atomic import FileLockedError, check_writable, file_lock, write_atomic
from symmetrize.io import load_converted, read_converted, save_converted
from symmetrize.metrics import mpjpe, mpjve, n_mpjpe, p_mpjpe, pck, topk_accuracy
from symmetrize.train import load_checkpoint


class _RunsCode:
    """Pickles to a call of ``os.system``: loading it must never run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def _files(tmp: Path) -> dict[str, Path]:
    """One file of every kind a reader can be handed by mistake."""
    files = {name: tmp / f"{name}.pt" for name in (
        "empty", "text", "code", "truncated", "pickle", "plain", "other", "newer_model",
        "newer_ckpt", "no_state", "no_model")}
    files["empty"].write_bytes(b"")
    files["text"].write_text("hello, not a model\n")
    torch.save({"payload": _RunsCode(tmp / "pwned")}, files["code"])
    torch.save({"weight": torch.zeros(100, 100)}, files["plain"])
    files["truncated"].write_bytes(files["plain"].read_bytes()[:400])
    import pickle

    files["pickle"].write_bytes(pickle.dumps({"a": 1}, protocol=4))
    torch.save([1, 2, 3], files["other"])
    torch.save({"format": "symmetrize.converted", "version": 99}, files["newer_model"])
    torch.save({"format": "symmetrize.checkpoint", "version": 99}, files["newer_ckpt"])
    torch.save({"format": "symmetrize.converted", "version": 1, "spec": {}, "options": {},
                "inputs": []}, files["no_state"])
    torch.save({"format": "symmetrize.checkpoint", "version": 1, "progress": {}},
               files["no_model"])
    (tmp / "folder").mkdir()
    files["folder"] = tmp / "folder"
    files["missing"] = tmp / "missing.pt"
    return files


READ_CASES = [  # (file, exception, words after the file's name)
    ("missing", FileNotFoundError, r"'.*missing.pt' does not exist"),
    ("folder", IsADirectoryError, r"'.*folder' is a directory"),
    ("empty", ValueError, r"'.*empty.pt' is empty \(0 bytes\)"),
    ("text", ValueError, r"'.*text.pt' .*not a file written by torch.save"),
    ("code", ValueError, r"'.*code.pt' .*pickled Python objects.*posix.system.*could run code"),
    ("truncated", ValueError, r"'.*truncated.pt' .*truncated or damaged"),
    ("pickle", ValueError, r"'.*pickle.pt' .*pickled Python objects"),
]


#: each reader, and the calls that must refuse a bad file (both converted-model readers alike)
READERS: dict[str, list[Callable[[Path], Any]]] = {
    "converted model": [read_converted, lambda path: load_converted(path, nn.Linear(2, 3))],
    "checkpoint": [load_checkpoint],
}
REFUSALS = [("converted model", *case) for case in [
    *READ_CASES,
    ("plain", ValueError, r"'.*plain.pt' is not a converted-model file \(format None"),
    ("other", ValueError, r"'.*other.pt' is not a converted-model file \(format 'list'"),
    ("newer_model", ValueError, r"'.*newer_model.pt' has format version 99.*upgrade"),
    ("no_state", ValueError, r"'.*no_state.pt' has no 'state_dict' entry: the file is damaged"),
]] + [("checkpoint", *case) for case in [
    *READ_CASES,
    ("plain", ValueError, r"'.*plain.pt' is not a symmetrize training checkpoint"),
    ("newer_ckpt", ValueError, r"'.*newer_ckpt.pt' has version 99"),
    ("no_model", ValueError, r"'.*no_model.pt' is damaged \(missing model, optimizer, rng\)"),
]]


@pytest.mark.parametrize("reader,name,error,words", REFUSALS,
                         ids=[f"{r[0]}-{r[1]}" for r in REFUSALS])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_readers_refuse_bad_files(reader: str, name: str, error: type[Exception], words: str,
                                  tmp_path: Path) -> None:
    files = _files(tmp_path)
    for read in READERS[reader]:
        with pytest.raises(error, match=words):
            read(files[name])
    assert not (tmp_path / "pwned").exists()  # the pickled command never ran


ARGUMENT_CASES: list[tuple[str, Callable[[Path], Any], type[Exception], str]] = [
    ("read path type", lambda tmp: read_converted(42), TypeError,
     r"path must be a file path \(str or pathlib.Path\), got int"),
    ("load model type", lambda tmp: load_converted(tmp / "x.pt", "TemporalModel"), TypeError,
     r"model must be a freshly built torch.nn.Module.*got str"),
    ("save not converted", lambda tmp: save_converted(nn.Linear(2, 3), tmp / "x.pt"),
     TypeError, r"Linear is not a converted model"),
    ("save dir missing", lambda tmp: save_converted(nn.Linear(2, 3), tmp / "no" / "x.pt"),
     FileNotFoundError, r"converted-model file '.*no/x.pt': the directory .* does not exist"),
    ("save into a dir", lambda tmp: save_converted(nn.Linear(2, 3), tmp), IsADirectoryError,
     r"converted-model file '.*' is a directory"),
    ("save path type", lambda tmp: save_converted(nn.Linear(2, 3), 3.5), TypeError,
     r"converted-model file must be a file path.*got float"),
    ("write empty path", lambda tmp: write_atomic("", lambda f: None), ValueError,
     r"output file path is empty"),
    ("write under a file", lambda tmp: write_atomic(_touch(tmp / "f") / "x", lambda f: None),
     NotADirectoryError, r"'.*f' is a file, not a directory"),
    ("writable type", lambda tmp: check_writable(None, "log"), TypeError,
     r"the log must be a file path .*got NoneType"),
]


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("name,call,error,words", ARGUMENT_CASES,
                         ids=[c[0] for c in ARGUMENT_CASES])
def test_io_arguments_are_checked(name: str, call: Callable[[Path], Any], error: type[Exception],
                                  words: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=words):
        call(tmp_path)
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.lock"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_a_read_only_directory_is_refused_before_writing(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            write_atomic(tmp_path / "x.pt", lambda f: f.write(b"x"))
    finally:
        tmp_path.chmod(0o700)


# ----------------------------------------------------------------------------- the lock
def test_the_lock_refuses_a_live_writer_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    target, lock = tmp_path / "model.pt", tmp_path / "model.pt.lock"
    target.write_bytes(b"old")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{owner.pid} {socket.gethostname()}\n")
        with pytest.raises(FileLockedError, match=rf"'.*model.pt' is being written by another "
                                                  rf"process \(pid {owner.pid}; lock file"):
            write_atomic(target, lambda f: f.write(b"new"))
        assert target.read_bytes() == b"old"
        lock.write_text(f"{owner.pid} another-host\n")
        with pytest.raises(FileLockedError, match=r"on host another-host"):
            write_atomic(target, lambda f: f.write(b"new"))
    finally:
        owner.kill()
        owner.wait()
    lock.write_text(f"{owner.pid} {socket.gethostname()}\n")  # its owner is gone: stale
    leftover = tmp_path / ".model.pt.abcd1234.tmp"
    leftover.write_bytes(b"half")
    write_atomic(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_the_lock_is_reentrant_and_released(tmp_path: Path) -> None:
    target = tmp_path / "run.ckpt"
    with file_lock(target) as lock:
        assert lock.read_text().split()[0] == str(os.getpid())
        write_atomic(target, lambda f: f.write(b"1"))  # the holder may write
        with file_lock(target):
            write_atomic(target, lambda f: f.write(b"2"))
        assert lock.exists()
    assert not lock.exists() and target.read_bytes() == b"2"
    lock.write_text("")  # an empty lock: its writer was killed between create and write;
    os.utime(lock, (0, 0))  # old, so stale
    write_atomic(target, lambda f: f.write(b"3"))
    assert target.read_bytes() == b"3" and not lock.exists()


# ----------------------------------------------------------------------------- metrics
P = np.zeros((2, 17, 3))
METRIC_CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("shapes", lambda: mpjpe(P, np.zeros((2, 16, 3))), ValueError,
     r"shape mismatch: pred has shape \(2, 17, 3\) but target has shape \(2, 16, 3\)"),
    ("empty", lambda: mpjpe(np.zeros((0, 17, 3)), np.zeros((0, 17, 3))), ValueError,
     r"pred is empty \(shape \(0, 17, 3\)\)"),
    ("nan", lambda: p_mpjpe(np.full((2, 17, 3), np.nan), P), ValueError,
     r"pred contains 102 NaN/inf value\(s\)"),
    ("one axis", lambda: n_mpjpe(np.zeros(3), np.zeros(3)), ValueError,
     r"pred needs at least 2 dimensions"),
    ("strings", lambda: mpjpe(np.array([["a"]]), np.array([["b"]])), TypeError,
     r"pred must be a tensor or an array of real numbers"),
    ("meta", lambda: mpjpe(torch.empty(2, 17, 3, device="meta"), torch.zeros(2, 17, 3)),
     ValueError, r"pred is a meta tensor"),
    ("weights", lambda: mpjpe(P, P, weights=np.ones(5)), ValueError,
     r"weights of shape \(5,\) do not broadcast"),
    ("pck threshold str", lambda: pck(P, P, "0.1"), TypeError,
     r"threshold must be a real number, got str '0.1'"),
    ("pck threshold nan", lambda: pck(P, P, math.nan), ValueError,
     r"threshold must be a finite, non-negative number, got nan"),
    ("pck normalize", lambda: pck(P, P, 0.2, normalize=np.zeros(2)), ValueError,
     r"normalize must be positive"),
    ("mpjve dt", lambda: mpjve(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), dt=math.nan),
     ValueError, r"dt must be a positive, finite frame time, got nan"),
    ("mpjve dt str", lambda: mpjve(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), dt="1/50"),
     TypeError, r"dt must be a real number, got str"),
    ("mpjve axis", lambda: mpjve(np.zeros((4, 17, 3)), np.zeros((4, 17, 3)), axis=1.5),
     TypeError, r"axis must be an integer, got float"),
    ("topk k", lambda: topk_accuracy(np.zeros((4, 10)), np.zeros(4, dtype=int), k=0),
     ValueError, r"each k must be a positive integer, got 0"),
    ("topk bool", lambda: topk_accuracy(np.zeros((4, 10)), np.zeros(4, dtype=int), k=True),
     ValueError, r"each k must be a positive integer, got True"),
    ("topk labels", lambda: topk_accuracy(np.zeros((4, 10)), np.zeros(4)), TypeError,
     r"labels must be integers, got dtype torch.float64"),
]


@pytest.mark.parametrize("name,call,error,words", METRIC_CASES,
                         ids=[c[0] for c in METRIC_CASES])
def test_metrics_refuse(name: str, call: Callable[[], Any], error: type[Exception],
                        words: str) -> None:
    with pytest.raises(error, match=words):
        call()
