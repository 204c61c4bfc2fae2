"""Fine-tuning: training keeps the model equivariant, refuses a plain one, resumes a killed run
exactly, and runs as two DistributedDataParallel processes (gloo on CPU)."""

from __future__ import annotations

import csv
import json
import math
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from symmetrize import check
from symmetrize.atomic import FileLockedError
from symmetrize.train import (
    NotEquivariantError,
    TrainConfig,
    bn_momentum,
    fit,
    load_checkpoint,
)
from tests.pose_models import Seq2Seq, TemporalModel
from tests.train_runs import KILL_AT, setup

RUNS = Path(__file__).with_name("train_runs.py")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def test_fit_learns_and_the_model_stays_equivariant(tmp_path: Path) -> None:
    model, train, val = setup()
    log = tmp_path / "log.jsonl"
    result = fit(model, train, TrainConfig(epochs=4, batch_size=12, progress=False,
                                           log=str(log)), val=val)
    assert result.stopped == "completed" and result.epochs_done == 4 and result.steps == 16
    assert result.train_loss[-1] < result.train_loss[0]
    assert len(result.val_metric) == 4 and result.val_metric[-1] < result.val_metric[0]
    assert check(model, n_inputs=2).passed
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len([r for r in records if "val" in r]) == 4 and records[0]["step"] == 1


def test_a_plain_model_is_refused_before_training() -> None:
    _, train, _ = setup()
    plain = TemporalModel(filter_widths=(3, 3), channels=68)
    from symmetrize import Spec

    with pytest.raises(NotEquivariantError, match="(?s)not equivariant.*config.check=False"):
        fit(plain, train, TrainConfig(epochs=1, progress=False), spec=Spec.preset("h36m"))
    with pytest.raises(NotEquivariantError, match="pass the Spec"):
        fit(plain, train, TrainConfig(epochs=1, progress=False))
    result = fit(plain, train, TrainConfig(epochs=1, progress=False, check=False))
    assert result.steps == math.ceil(48 / 64)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of an uninterrupted run (full.ckpt, full.jsonl, full-0.pt)."""
    out = tmp_path_factory.mktemp("full")
    run = _run(str(RUNS), "full", str(out), cwd=out)
    assert run.returncode == 0, run.stderr
    return out


def _same_run(full: Path, out: Path, killed: str) -> None:
    """The resumed run reached the uninterrupted run's weights bit for bit, its log has every
    record once and equal to the uninterrupted one's, and nothing was left behind."""
    a = torch.load(full / "full-0.pt", weights_only=True)
    b = torch.load(out / f"resume{killed[6:]}-0.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (out / f"{killed}.jsonl").read_text() == (full / "full.jsonl").read_text()
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.lock"))


def test_a_killed_run_resumes_to_the_same_weights(full_run: Path, tmp_path: Path) -> None:
    killed = _run(str(RUNS), "killed", str(tmp_path), cwd=tmp_path)
    assert killed.returncode == -9  # SIGKILL in the middle of the second epoch
    saved = load_checkpoint(tmp_path / "killed.ckpt")
    assert saved["progress"] == {"epoch": 1, "batch": KILL_AT - 4, "step": KILL_AT}
    assert not list(tmp_path.glob("*.tmp"))
    assert (tmp_path / "killed.ckpt.lock").exists()  # left by the killed run: stale
    resumed = _run(str(RUNS), "resume", str(tmp_path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _same_run(full_run, tmp_path, "killed")


def test_a_run_killed_while_saving_resumes_to_the_same_weights(full_run: Path,
                                                              tmp_path: Path) -> None:
    killed = _run(str(RUNS), "killed_save", str(tmp_path), cwd=tmp_path)
    assert killed.returncode == -9
    assert len(list(tmp_path.glob(".killed_save.ckpt.*.tmp"))) == 1  # the half-written one
    saved = load_checkpoint(tmp_path / "killed_save.ckpt")  # the previous one, intact
    step = saved["progress"]["step"]
    assert saved["progress"] == {"epoch": 1, "batch": step - 4, "step": step}
    logged = (tmp_path / "killed_save.jsonl").read_text().splitlines()
    assert json.loads(logged[-1])["step"] == step + 1  # logged, then killed saving it
    resumed = _run(str(RUNS), "resume_save", str(tmp_path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _same_run(full_run, tmp_path, "killed_save")


def test_two_processes_keep_identical_equivariant_replicas(tmp_path: Path) -> None:
    run = _run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(RUNS), "ddp", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    a = torch.load(tmp_path / "ddp-0.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp-1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, _, _ = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(a)
    assert any(not torch.equal(before[k], a[k]) for k in a)  # it trained
    assert check(model, n_inputs=2).passed


def test_checkpoint_budget_and_schedules(tmp_path: Path) -> None:
    model, train, _ = setup()
    ckpt = tmp_path / "run.ckpt"
    result = fit(model, train, TrainConfig(epochs=3, batch_size=12, progress=False,
                                           checkpoint=str(ckpt), max_steps=5))
    assert result.stopped == "max_steps" and result.steps == 5
    data = load_checkpoint(ckpt)
    assert data["progress"] == {"epoch": 1, "batch": 1, "step": 5}
    assert {"model", "optimizer", "scheduler", "rng"} <= data.keys()
    # VideoPose3D's BatchNorm momentum: 0.1 at the start, 0.001 at the end
    assert bn_momentum(0, 10) == pytest.approx(0.1) and bn_momentum(10, 10) == pytest.approx(1e-3)
    assert model.expand_bn.momentum == pytest.approx(bn_momentum(1, 3))
    # the learning rate decayed once (one epoch finished)
    assert data["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.95)
    with pytest.raises(ValueError, match="not a symmetrize training checkpoint"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")


def test_recurrent_models_clip_gradients_and_bad_options_are_clear() -> None:
    from symmetrize.train.config import amp_dtype, grad_clip

    assert grad_clip("auto", Seq2Seq(cell=nn.GRU)) == 5.0
    assert grad_clip("auto", TemporalModel()) is None
    with pytest.raises(ValueError, match="amp='fp8' is not allowed: one of 'auto'"):
        amp_dtype("fp8", torch.device("cpu"))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        amp_dtype("fp16", torch.device("cpu"))
    empty = TensorDataset(torch.zeros(0, 9, 17, 2), torch.zeros(0, 1, 17, 3))
    with pytest.raises(ValueError, match="train set is empty"):
        fit(TemporalModel(), empty, TrainConfig(progress=False, check=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixed_precision_on_cuda_keeps_the_model_equivariant() -> None:
    model, train, _ = setup()
    result = fit(model, train, TrainConfig(epochs=1, batch_size=12, progress=False, amp="auto"))
    assert result.steps == 4 and next(model.parameters()).device.type == "cuda"
    assert check(model.cpu(), n_inputs=2, dtypes=(torch.float64,)).passed


def test_progress_bar_shows_epoch_loss_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    model, train, _ = setup()
    fit(model, train, TrainConfig(epochs=1, batch_size=12, progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "<" in err  # tqdm's "elapsed<remaining"


def test_resuming_a_finished_run_trains_and_writes_nothing(tmp_path: Path) -> None:
    model, train, val = setup()
    ckpt, log = tmp_path / "run.ckpt", tmp_path / "run.csv"
    config = TrainConfig(epochs=2, batch_size=12, progress=False, checkpoint=str(ckpt),
                         log=str(log), max_steps=5)
    first = fit(model, train, config, val=val)
    assert (first.steps, first.start_step, first.stopped) == (5, 0, "max_steps")
    before = ckpt.read_bytes(), log.read_bytes(), ckpt.stat().st_mtime_ns
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    again = fit(model, train, replace(config, resume=True), val=val)
    assert (again.steps, again.start_step, again.stopped) == (5, 5, "max_steps")
    assert again.train_loss == first.train_loss and again.val_metric == first.val_metric
    assert (ckpt.read_bytes(), log.read_bytes(), ckpt.stat().st_mtime_ns) == before
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    # lifting the step budget continues the run to its end; resuming the end does nothing
    done = fit(model, train, replace(config, max_steps=None, resume=True), val=val)
    assert (done.steps, done.epochs_done, done.stopped) == (8, 2, "completed")
    assert len(done.train_loss) == 2 and done.train_loss[0] == first.train_loss[0]
    before = ckpt.read_bytes(), log.read_bytes()
    assert fit(model, train, replace(config, max_steps=None, resume=True), val=val).steps == 8
    assert (ckpt.read_bytes(), log.read_bytes()) == before
    rows = list(csv.DictReader(log.read_text().splitlines()))
    steps = [int(r["step"]) for r in rows if not r["val"]]
    assert steps == list(range(1, 9)) and [r["epoch"] for r in rows if r["val"]] == ["1", "2"]


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path: Path) -> None:
    model, train, _ = setup()
    ckpt = tmp_path / "run.ckpt"
    lock = tmp_path / "run.ckpt.lock"
    config = TrainConfig(epochs=1, batch_size=12, progress=False, checkpoint=str(ckpt))
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{owner.pid} {socket.gethostname()}\n")
        with pytest.raises(FileLockedError, match=rf"run.ckpt.*pid {owner.pid}.*wait for"):
            fit(model, train, config)
        assert not ckpt.exists() and lock.exists()
    finally:
        owner.kill()
        owner.wait()
    leftover = tmp_path / ".run.ckpt.k1ll3d_x.tmp"  # what a write killed midway leaves
    leftover.write_bytes(b"partial")
    other = tmp_path / ".run.ckpt.other.tmp"  # not write_atomic's: kept
    other.write_bytes(b"x")
    assert fit(model, train, config).steps == 4  # the owner is gone: its lock is stale
    assert ckpt.exists() and not lock.exists() and not leftover.exists() and other.exists()
