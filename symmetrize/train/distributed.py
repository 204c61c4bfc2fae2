"""Several processes: ``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; each process
trains a DistributedDataParallel replica on its share of every batch order."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Distributed", "setup_distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place: ``rank`` of ``world_size`` (1 without ``torchrun``)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over the processes."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    def average_buffers(self, model: torch.nn.Module) -> None:
        """Average the floating buffers (BatchNorm running statistics) over the processes, so
        every replica evaluates and saves the same model."""
        if not self.enabled:
            return
        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= self.world_size

    def close(self) -> None:
        """End the process group if :func:`setup_distributed` started it."""
        if self.started_here and dist.is_initialized():
            dist.destroy_process_group()


def _env_int(name: str, default: str | None) -> int:
    text = os.environ.get(name, default)
    if text is None or not text.strip().isdigit():
        raise ValueError(f"environment variable {name}={text!r} is not allowed: a non-negative "
                         "integer. Fix: launch with torchrun (which sets WORLD_SIZE, RANK and "
                         "LOCAL_RANK) or unset WORLD_SIZE for a single process")
    return int(text)


def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group ``torchrun`` describes (``nccl`` on CUDA, else ``gloo``); a single
    process without it."""
    world = _env_int("WORLD_SIZE", "1")
    if world <= 1:
        return Distributed()
    rank, local = _env_int("RANK", None), _env_int("LOCAL_RANK", "0")
    if not 0 <= rank < world:
        raise ValueError(f"environment variable RANK={rank} is not allowed with WORLD_SIZE="
                         f"{world}: 0 .. {world - 1}. Fix: launch with torchrun, which sets both")
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return Distributed(rank, world, local, started)
