"""``TrainConfig``: how :func:`~symmetrize.train.fit` trains, every field checked when the config
is made (type, range, finiteness), and what the fields resolve to (device, mixed precision,
gradient clipping)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["AMP_MODES", "ConfigError", "ConfigTypeError", "TrainConfig"]

#: the values ``TrainConfig.amp`` accepts
AMP_MODES = ("auto", "bf16", "fp16", "off")
#: the log suffixes ``TrainConfig.log`` accepts
LOG_SUFFIXES = (".csv", ".jsonl")
_MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """A training option out of range. ``name`` is the field, ``value`` the value given; the
    message says what is allowed and ends with ``Fix: ...``."""

    def __init__(self, name: str, value: Any, allowed: str, fix: str = "") -> None:
        self.name, self.value, self.allowed = name, value, allowed
        self.fix = fix or f"pass {name} as {allowed}"
        super().__init__(f"{name}={value!r} is not allowed: {allowed}. Fix: {self.fix}")


class ConfigTypeError(ConfigError, TypeError):
    """A training option of the wrong type (also a :class:`TypeError`)."""


@dataclass
class TrainConfig:
    """How to train. The defaults follow VideoPose3D and the Chirality Nets paper. Every field
    is checked when the config is made and again when :func:`~symmetrize.train.fit` starts (a
    field changed in between is checked too); a bad one raises :class:`ConfigError`.

    Attributes:
        epochs: passes over the training set (>= 1).
        batch_size: samples per step and process (>= 1).
        lr: Adam's initial learning rate (finite, > 0).
        betas: Adam's ``(beta1, beta2)``, each in [0, 1).
        lr_decay: the learning rate is multiplied by this after every epoch (0 < decay <= 1).
        bn_momentum: BatchNorm momentum decayed exponentially from the first value to the
            second over the run, each in (0, 1] (``None``: left as it is).
        grad_clip: max gradient norm (> 0); ``"auto"``: 5.0 for models with recurrent layers
            (LSTM/GRU and their cells), none otherwise; ``None``: no clipping.
        amp: ``"auto"`` (bf16 on a CUDA GPU that supports it, else fp16; off on CPU),
            ``"bf16"``, ``"fp16"`` (CUDA only) or ``"off"``.
        device: ``"auto"`` (this process's CUDA GPU when there is one, else CPU) or a device
            that exists here (``"cpu"``, ``"cuda:0"``...).
        seed: seeds the batch order, dropout and every random generator (0 .. 2**32 - 1).
        checkpoint: file to write checkpoints to (atomically, locked against a second run);
            ``None``: none.
        checkpoint_every: also write one every this many steps (0: at epoch ends only).
        resume: continue from ``checkpoint`` if it exists (needs ``checkpoint``).
        max_minutes: stop (with a checkpoint) when this much wall time has passed (> 0).
        max_steps: stop after this many optimiser steps in all (>= 1).
        log: a ``.csv`` or ``.jsonl`` file receiving one record per step and per epoch.
        progress: show a progress bar (tqdm) on the main process.
        check: run :func:`~symmetrize.check` first and refuse a model that is not equivariant.
        eval_every: evaluate the validation set every this many steps (0: at every epoch's
            end); every evaluation is recorded in ``TrainResult.val_steps``/``val_metric``.
        patience: stop early after this many evaluations in a row without improvement
            (>= 1; ``None``: never stop early). Needs a validation set.
        min_delta: an evaluation improves when it is below the best so far by more than this
            (>= 0, in the metric's units).
        keep_best: at the end, load the weights of the best evaluation back into the model and,
            with ``checkpoint``, save them to its ``best`` sibling (``run.pt`` ->
            ``run.best.pt``). Needs a validation set.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_decay: float = 0.95
    bn_momentum: tuple[float, float] | None = (0.1, 0.001)
    grad_clip: float | str | None = "auto"
    amp: str = "auto"
    device: str = "auto"
    seed: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    max_minutes: float | None = None
    max_steps: int | None = None
    log: str | None = None
    progress: bool = True
    check: bool = True
    eval_every: int = 0
    patience: int | None = None
    min_delta: float = 0.0
    keep_best: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; :class:`ConfigError` (or :class:`ConfigTypeError`) naming the
        first bad one, the value given and what is allowed."""
        _integer(self, "epochs", 1)
        _integer(self, "batch_size", 1)
        _number(self, "lr", low=0.0)
        _pair(self, "betas", 0.0, 1.0, "two numbers in [0, 1), e.g. (0.9, 0.999)",
              closed_high=False, closed_low=True)
        _number(self, "lr_decay", low=0.0, high=1.0)
        if self.bn_momentum is not None:
            _pair(self, "bn_momentum", 0.0, 1.0, "None or two numbers in (0, 1], e.g. "
                  "(0.1, 0.001)", closed_high=True, closed_low=False)
        if not (self.grad_clip is None or self.grad_clip == "auto"):
            _number(self, "grad_clip", low=0.0, allowed="a number > 0, None or 'auto'")
        if not isinstance(self.amp, str) or self.amp not in AMP_MODES:
            raise ConfigError("amp", self.amp, f"one of {', '.join(map(repr, AMP_MODES))}")
        _integer(self, "seed", 0, _MAX_SEED)
        _integer(self, "checkpoint_every", 0)
        _integer(self, "eval_every", 0)
        if self.patience is not None:
            _integer(self, "patience", 1)
        if not _is_number(self.min_delta):
            raise ConfigTypeError("min_delta", self.min_delta, "a finite number >= 0")
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ConfigError("min_delta", self.min_delta, "a finite number >= 0")
        for name in ("resume", "progress", "check", "keep_best"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigTypeError(name, getattr(self, name), "True or False")
        if self.max_minutes is not None:
            _number(self, "max_minutes", low=0.0, allowed="None or a number of minutes > 0")
        if self.max_steps is not None:
            _integer(self, "max_steps", 1)
        self._validate_paths()
        device = self.resolve_device()
        if self.amp == "fp16" and device.type != "cuda":  # no CUDA call: the context stays off
            amp_dtype(self.amp, device)

    def _validate_paths(self) -> None:
        for name in ("checkpoint", "log"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, os.PathLike))
                                      or not os.fspath(value).strip()):
                raise ConfigTypeError(name, value, "None or a file path")
        if self.log is not None and Path(self.log).suffix not in LOG_SUFFIXES:
            raise ConfigError("log", self.log, "a file ending in .csv or .jsonl",
                              f"name the log like {Path(self.log).stem or 'run'}.csv or .jsonl")
        if self.resume and self.checkpoint is None:
            raise ConfigError("resume", True, "True only together with a checkpoint file",
                              "give checkpoint= (--checkpoint FILE) to resume from, or drop "
                              "resume")
        if (self.checkpoint is not None and self.log is not None
                and Path(self.checkpoint).resolve() == Path(self.log).resolve()):
            raise ConfigError("log", self.log, "a file other than the checkpoint",
                              "give the log and the checkpoint different names")

    def resolve_device(self) -> torch.device:
        """The device ``device`` names (``"auto"``: this process's CUDA GPU, else the CPU);
        :class:`ConfigError` for one that does not exist here or cannot train."""
        name = self.device
        if isinstance(name, torch.device):
            device = name
        elif not isinstance(name, str):
            raise ConfigTypeError("device", name, "'auto' or a device name such as 'cpu' or "
                                  "'cuda:0'")
        elif name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            return torch.device("cpu")
        else:
            try:
                device = torch.device(name)
            except (RuntimeError, ValueError):
                raise ConfigError("device", name, "'auto', 'cpu', 'cuda' or 'cuda:N'") from None
        if device.type == "meta":
            raise ConfigError("device", name, "a device that holds real data",
                              "train on 'cpu' or 'cuda'; a meta tensor has no values")
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ConfigError("device", name, "'auto' or 'cpu' (no CUDA GPU here)",
                                  "use device='auto' (--device auto) or 'cpu'")
            if device.index is not None and device.index >= count:
                raise ConfigError("device", name, f"cuda:0 .. cuda:{count - 1}")
        return device

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (tuples as lists; paths as strings)."""
        out = {}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, (os.PathLike, torch.device)):
                value = str(value)
            out[key] = value
        return out


# ----------------------------------------------------------------------------- field checks
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(config: TrainConfig, name: str, low: int, high: int | None = None) -> None:
    value = getattr(config, name)
    allowed = (f"an integer >= {low}" if high is None else f"an integer in {low} .. {high}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(name, value, allowed)
    if value < low or (high is not None and value > high):
        raise ConfigError(name, value, allowed)


def _number(config: TrainConfig, name: str, low: float, high: float | None = None,
            allowed: str | None = None) -> None:
    """A finite number ``> low`` (and ``<= high``)."""
    value = getattr(config, name)
    allowed = allowed or (f"a finite number > {low:g}" if high is None
                          else f"a number in ({low:g}, {high:g}]")
    if not _is_number(value):
        raise ConfigTypeError(name, value, allowed)
    if not math.isfinite(value) or value <= low or (high is not None and value > high):
        raise ConfigError(name, value, allowed)


def _pair(config: TrainConfig, name: str, low: float, high: float, allowed: str, *,
          closed_low: bool, closed_high: bool) -> None:
    value = getattr(config, name)
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(_is_number(v) for v in value)):
        raise ConfigTypeError(name, value, allowed)
    for v in value:
        above = v >= low if closed_low else v > low
        below = v <= high if closed_high else v < high
        if not (math.isfinite(v) and above and below):
            raise ConfigError(name, value, allowed)


# ----------------------------------------------------------------------------- resolution
def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``amp`` means on ``device`` (``None``: full precision)."""
    if amp not in AMP_MODES:
        raise ConfigError("amp", amp, f"one of {', '.join(map(repr, AMP_MODES))}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp", amp, f"'bf16', 'auto' or 'off' on {device.type} ('fp16' needs a "
                          "CUDA device)", "use amp='bf16' or 'off' (--amp bf16/off) on the CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def grad_clip(value: float | str | None, model: nn.Module) -> float | None:
    """The max gradient norm ``value`` means for ``model`` (``None``: no clipping)."""
    if value == "auto":
        recurrent = any(isinstance(m, (nn.RNNBase, nn.RNNCellBase)) for m in model.modules())
        return 5.0 if recurrent else None
    if value is None or _is_number(value):
        return None if value is None else float(value)
    raise ConfigTypeError("grad_clip", value, "a number > 0, None or 'auto'")
