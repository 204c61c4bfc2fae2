"""Decide the hidden Reps: repeat propagation passes until every constraint is met.

A channel-mixing layer's output Rep starts as the hidden policy's choice. A pass that meets a
constraint (a residual add, the Spec of an output, an einsum against a constant, a slice that
separates mirror twins) fixes the decision behind it and is run again. With the automatic policy
the loop has two phases: an exploring phase in which every automatic layout is regular pairs (it
always converts) and each op that cannot take negated channels (LayerNorm, GELU, softmax,
attention) marks the layer it reads from; then the real phase, in which marked layers keep regular
pairs and the others get the paper's skeleton layout. An automatic layout that still reaches such
an op becomes regular for good, and the constraints derived so far are recomputed. A pass that
changes nothing ends the loop; its context is the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import fx, nn

from symmetrize.passes.propagate import run_pass
from symmetrize.rules.constants import require_constant
from symmetrize.rules.context import Context, ConversionError, Decision
from symmetrize.rules.hidden_policy import HiddenPolicy
from symmetrize.spec import Spec

__all__ = ["decide"]

_MAX_PASSES = 64


def decide(gm: fx.GraphModule, modules: Mapping[str, nn.Module], spec: Spec,
           decisions: dict[str, Decision], hidden: HiddenPolicy, fraction: float | None,
           activation: str, assumed: set[str], averaged: set[str]) -> Context:
    """The settled propagation of ``gm`` (``decisions`` holds fixed ones and is filled in).

    Raises:
        ConversionError: an op without a rule, or constraints that contradict each other (the
            message of the first pass that changed nothing).
    """
    memo: dict[Any, Any] = {}
    marks: dict[str, str] = {}
    fixed = dict(decisions)  # given up front (invariant_at): never reset

    def settle(explore: bool) -> Context:
        for _ in range(_MAX_PASSES):
            ctx = Context(gm, dict(modules), spec, decisions, hidden, fraction, activation,
                          assumed, averaged, require_constant, memo, marks, explore)
            run_pass(ctx)  # raises when a pass that changed nothing meets an error
            if not ctx.dirty:
                return ctx
            if ctx.sticky:  # derived constraints may rest on what just changed: derive again
                for path in [p for p, d in decisions.items() if not d.sticky and p not in fixed]:
                    del decisions[path]
        raise ConversionError("the hidden Reps did not settle: constraints keep changing each "
                              "other (please report this model)")

    explored = settle(explore=True)
    if not any(d.auto for d in decisions.values()):
        return explored  # no automatic layout: the exploring pass was the real one
    for path in [p for p in decisions if p not in fixed]:
        del decisions[path]
    return settle(explore=False)
