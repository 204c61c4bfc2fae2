"""What a propagation pass records: decisions, sites, mirror-shared tensors, the provenance of a
value, and the error a failing rule raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from symmetrize.action import Action
from symmetrize.movement_ops import UnknownMovement, move, move_back
from symmetrize.rep import Rep

__all__ = ["ConversionError", "Decision", "Provenance", "SharedTensor", "Site", "Step"]


class ConversionError(ValueError):
    """A model (or part of it) that cannot be converted as asked, with where and how to fix."""


@dataclass
class Decision:
    """The Rep chosen for a channel-mixing module's output (LSTM/GRU: its hidden state).

    ``constrained_by`` says what fixed it (a residual connection, the output Spec, an op that
    forbids negated channels); ``sticky`` decisions survive a restart of the constraints;
    ``reason`` is the report's explanation.
    """

    path: str
    width: int
    rep: Rep
    constrained_by: str | None = None
    auto: bool = False
    sticky: bool = False
    reason: str = ""
    #: only fixed to "no negated channel" (an automatic layout made regular): another
    #: constraint may still pick any unsigned Rep
    unsigned_only: bool = False

    def accepts(self, rep: Rep) -> bool:
        """Whether a constraint may still set this decision to ``rep``."""
        return self.constrained_by is None or (self.unsigned_only and not rep.n_negated)


@dataclass
class Site:
    """A module call in the graph: the Reps that reach and leave it, and how to replace it.

    ``build(module, site) -> (new module, action)`` makes the chiral twin in the rewrite; ``None``
    leaves the module as it is.
    """

    path: str
    module: nn.Module
    node: fx.Node
    rep_in: Rep | None = None
    rep_out: Rep | None = None
    switch: bool = False
    build: Callable[[nn.Module, Site], tuple[nn.Module, str]] | None = None
    action: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SharedTensor:
    """A learned tensor (``path`` of an ``nn.Parameter``) that must equal its mirror image."""

    path: str
    action: Action
    why: str


@dataclass(frozen=True)
class Step:
    """One op between a decision and a value that moves its channels: enough to run it
    forwards and backwards (data movement by its target and arguments; other ops, such as a
    reduction over the other axes, by their own ``forward`` / ``back``)."""

    target: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    forward: Callable[[Action], Action | None] | None = None
    back: Callable[[Action], Action | None] | None = None

    def run(self, action: Action) -> Action | None:
        """The action after this step, or ``None``."""
        if self.forward is not None:
            return self.forward(action)
        try:
            out = move(self.target, self.args, self.kwargs,
                       [action, *([None] * (len(self.args) - 1))], [self.out_shape])
        except (UnknownMovement, ValueError):
            return None
        return out if isinstance(out, Action) else None

    def run_back(self, action: Action) -> Action | None:
        """The action before this step that gives ``action`` after it, or ``None``."""
        if self.back is not None:
            return self.back(action)
        return move_back(self.target, self.args, self.kwargs, self.in_shape, action)


@dataclass(frozen=True)
class Provenance:
    """Which decision a value carries, through which movement (``halve``: a bidirectional
    RNN's output, whose channel Rep is the hidden Rep twice)."""

    path: str
    steps: tuple[Step, ...] = ()
    halve: bool = False
