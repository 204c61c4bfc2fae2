"""Training checkpoints: model, optimiser, scheduler, progress and random states, written
atomically and read back with ``weights_only=True``."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from symmetrize.atomic import write_atomic
from symmetrize.io import check_readable, load_error_reason

__all__ = ["FORMAT", "TRAJECTORY", "load_checkpoint", "restore", "rng_state", "save_checkpoint",
           "set_rng_state"]

FORMAT = "symmetrize.checkpoint"
VERSION = 1
#: the ``TrainConfig`` fields that decide a run's course: resuming with others is refused
TRAJECTORY = ("batch_size", "seed", "lr", "betas", "lr_decay", "bn_momentum", "grad_clip")


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
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: loading
    never runs code from the file).

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: ``path`` is a directory.
        ValueError: not a checkpoint of this format, unreadable or damaged; the message names
            the file.
    """
    where = check_readable(path, "checkpoint", "give the checkpoint file (e.g. run.ckpt)",
                           ". Fix: delete it and start the run again")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"checkpoint {where} cannot be read with torch.load(weights_only=True): "
                         f"{load_error_reason(err)}. Fix: pass a checkpoint written by "
                         "symmetrize's fit") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where} is not a symmetrize training checkpoint. Fix: pass the file "
                         "fit wrote as its checkpoint (TrainConfig.checkpoint, --checkpoint)")
    if data.get("version") != VERSION:
        raise ValueError(f"checkpoint {where} has version {data.get('version')!r}; "
                         f"this symmetrize reads version {VERSION}")
    missing = [key for key in ("model", "optimizer", "progress", "rng") if key not in data]
    progress = data.get("progress")
    if missing or not isinstance(progress, dict) or \
            not {"epoch", "batch", "step"} <= set(progress):
        raise ValueError(f"checkpoint {where} is damaged (missing "
                         f"{', '.join(missing) or 'progress entries'}). Fix: delete it and start "
                         "the run again")
    data.setdefault("extra", {})
    return data


def restore(path: str | os.PathLike[str], *, model: nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any,
            config: dict[str, Any], world_size: int = 1) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into the model, optimiser, scheduler and the random
    generators, after checking that it continues this run: the same model and the same
    :data:`TRAJECTORY` settings (``config`` is ``TrainConfig.to_dict()``). Returns its content.

    Raises:
        ValueError: see :func:`load_checkpoint`; other settings or another model (the message
            names the file and what differs).
    """
    data = load_checkpoint(path)
    where = repr(os.fspath(path))
    saved = data["extra"].get("config") or {}
    changed = [f"{key} {saved[key]!r} -> {config[key]!r}" for key in TRAJECTORY
               if key in saved and key in config and saved[key] != config[key]]
    saved_world = data["extra"].get("world_size", world_size)
    if saved_world != world_size:
        changed.append(f"processes {saved_world} -> {world_size}")
    if changed:
        raise ValueError(f"checkpoint {where} was written by a run with other settings "
                         f"({'; '.join(changed)}), so resuming would not continue that run. "
                         "Fix: resume with the same settings, or start a new run with another "
                         "checkpoint file")
    try:
        model.load_state_dict(data["model"])
        optimizer.load_state_dict(data["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ValueError(f"checkpoint {where} does not fit this model: "
                         f"{lines[1] if len(lines) > 1 else lines[0] if lines else err}. Fix: "
                         "resume with the model the checkpoint was written from, or start a new "
                         "run with another checkpoint file") from None
    if data.get("scheduler") is not None and scheduler is not None:
        scheduler.load_state_dict(data["scheduler"])
    set_rng_state(data["rng"])
    return data


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value
