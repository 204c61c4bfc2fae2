"""Early stopping for :func:`~symmetrize.train.fit`: track the validation metric of every
evaluation, stop after ``patience`` evaluations without an improvement of more than
``min_delta``, and keep a copy of the best weights to restore at the end.

The state (best value and step, evaluations since the best, the best weights) travels in the
training checkpoint, so a resumed run stops where an uninterrupted one stops and restores the
same weights.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["EarlyStopping", "best_path"]


def best_path(checkpoint: str | os.PathLike[str]) -> str:
    """Where :func:`~symmetrize.train.fit` saves the best weights of a run checkpointed to
    ``checkpoint``: its ``best`` sibling, ``run.pt`` -> ``run.best.pt`` (``run`` ->
    ``run.best``)."""
    path = Path(checkpoint)
    return os.fspath(path.with_name(f"{path.stem}.best{path.suffix}"))


class EarlyStopping:
    """The early-stopping state of one run.

    Args:
        patience: stop after this many evaluations in a row without improvement (``None``:
            never stop early, only track the best).
        min_delta: an evaluation improves when it is below the best so far by more than this.
        keep_best: keep a CPU copy of the weights at the best evaluation (to restore them).
    """

    def __init__(self, patience: int | None = None, min_delta: float = 0.0,
                 keep_best: bool = False) -> None:
        self.patience, self.min_delta, self.keep_best = patience, min_delta, keep_best
        self.best = math.inf
        self.best_step: int | None = None
        self.since = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    @property
    def done(self) -> bool:
        """Whether ``patience`` evaluations in a row have not improved."""
        return self.patience is not None and self.since >= self.patience

    def update(self, step: int, value: float, model: nn.Module) -> bool:
        """Record the evaluation ``value`` at ``step`` (copying ``model``'s weights when it is
        the best and ``keep_best``); whether training should stop now. A NaN never improves."""
        if value < self.best - self.min_delta:
            self.best, self.best_step, self.since = float(value), int(step), 0
            if self.keep_best:
                self.best_weights = {k: v.detach().to("cpu", copy=True)
                                     for k, v in model.state_dict().items()}
        else:
            self.since += 1
        return self.done

    def restore(self, model: nn.Module) -> bool:
        """Load the best weights into ``model``; whether there were any to load."""
        if self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        return True

    def state_dict(self) -> dict[str, Any]:
        """The state for a checkpoint (tensors and plain data)."""
        return {"best": self.best, "best_step": self.best_step, "since": self.since,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.best = float(state["best"])
        self.best_step = state["best_step"]
        self.since = int(state["since"])
        self.best_weights = state.get("best_weights")
