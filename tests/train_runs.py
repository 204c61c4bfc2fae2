"""Training runs launched as separate processes by tests/test_train.py: an uninterrupted run, a
run killed with SIGKILL mid-epoch (during a step, or while writing a checkpoint), their
resumption, and one DistributedDataParallel replica.

Usage: python tests/train_runs.py MODE OUT_DIR (MODE: full, killed, killed_save, resume,
resume_save, ddp). A resume mode continues the killed run's checkpoint and log."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symmetrize import Spec, symmetrize
from symmetrize.data.augment import BatchFlip
from symmetrize.train import TrainConfig, fit
from tests.pose_models import TemporalModel

KILL_AT = 7  # steps done before the kill: the middle of the second epoch (4 steps per epoch)


def setup() -> tuple[torch.nn.Module, TensorDataset, TensorDataset]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = Spec.preset("h36m")
    model = TemporalModel(filter_widths=(3, 3), channels=68, dropout=0.25)
    x = torch.randn(64, 9, 17, 2)
    teacher = symmetrize(TemporalModel(filter_widths=(3, 3), channels=68, dropout=0.0), spec,
                         (x[:2],)).eval()
    with torch.no_grad():
        y = teacher(x)
    chiral = symmetrize(model, spec, (x[:2],))
    return chiral, TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])


def main(mode: str, out: Path) -> None:
    model, train, val = setup()
    config = TrainConfig(epochs=3, batch_size=12, seed=3, progress=False,
                         checkpoint=str(out / f"{mode}.ckpt"), checkpoint_every=1,
                         log=str(out / f"{mode}.jsonl"))
    loss = None
    if mode == "killed":
        calls = [0]

        def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] > KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like a preempted job
            return (prediction - target).norm(dim=-1).mean()
    if mode == "killed_save":
        _die_while_writing_checkpoint(KILL_AT)
    if mode.startswith("resume"):
        killed = "killed" + mode[len("resume"):]
        config.checkpoint, config.log = str(out / f"{killed}.ckpt"), str(out / f"{killed}.jsonl")
        config.resume = True
    if mode == "ddp":
        config.batch_size = 6  # two replicas: the same global batch of 12
        config.checkpoint = None
    # flip augmentation too: its draws must also come back on resume
    fit(model, train, config, loss=loss, val=val, augment=BatchFlip("h36m"))
    rank = os.environ.get("RANK", "0")
    torch.save(model.state_dict(), out / f"{mode}-{rank}.pt")


def _die_while_writing_checkpoint(at: int) -> None:
    """SIGKILL this process half-way through writing its ``at``-th checkpoint."""
    import symmetrize.train.checkpoint as checkpoint

    real, calls = checkpoint.write_atomic, [0]

    def dying(path: str, write) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] < at:
            return real(path, write)

        def partial(handle) -> None:  # type: ignore[no-untyped-def]
            buffer = io.BytesIO()
            write(buffer)
            handle.write(buffer.getvalue()[:buffer.tell() // 2])
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        return real(path, partial)

    checkpoint.write_atomic = dying


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
