"""Training checkpoints: model, optimiser, scheduler, progress and random states, written
atomically and read back with ``weights_only=True``."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from symmetrize.atomic import write_atomic

__all__ = ["FORMAT", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

FORMAT = "symmetrize.checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), NumPy and Python random states, as tensors and plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.random.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.random.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def save_checkpoint(path: str | os.PathLike[str], *, model: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any, progress: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> None:
    """Write a training checkpoint atomically (a crash never leaves a partial file)."""
    payload = {"format": FORMAT, "version": VERSION, "model": _cpu(model.state_dict()),
               "optimizer": _cpu(optimizer.state_dict()),
               "scheduler": scheduler.state_dict() if scheduler is not None else None,
               "progress": dict(progress), "rng": rng_state(), "extra": extra or {}}
    write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a checkpoint of this format, or unreadable.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {os.fspath(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"checkpoint {os.fspath(path)!r} cannot be read with "
                         f"torch.load(weights_only=True): {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a symmetrize training checkpoint")
    if data.get("version") != VERSION:
        raise ValueError(f"checkpoint {os.fspath(path)!r} has version {data.get('version')!r}; "
                         f"this symmetrize reads version {VERSION}")
    return data


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value
