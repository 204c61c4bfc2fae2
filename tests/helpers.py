"""Helpers the tests share: the error between two tensors, the file:line of a source line, a model's equivariance error under a
Spec, one propagation of a small traced module (trace, then decide or a single pass) with a tiny
skeleton that keeps those graphs small, and the inputs and checkpoints of the BatchNorm tests."""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import fx, nn

from symmetrize.passes.decide import decide
from symmetrize.passes.propagate import run_pass
from symmetrize.passes.trace import trace
from symmetrize.rep import Rep
from symmetrize.rules import rule_leaf_types
from symmetrize.rules.constants import require_constant
from symmetrize.rules.context import Context, Decision
from symmetrize.rules.hidden_policy import HiddenPolicy
from symmetrize.skeleton import Skeleton
from symmetrize.spec import Spec

__all__ = ["MIXED", "TOL", "TOY", "TOY_POSE", "Net", "action_of", "check_augmented_batch",
           "check_plain_checkpoint", "context", "equivariance_error", "make_input", "max_err",
           "node_named", "one_pass", "randomise", "settle", "source_line_of", "traced"]

#: three joints: a mirror pair around a centre joint (the pair is read off the names)
TOY = Skeleton(["left_hand", "head", "right_hand"])
#: ``(N, J * 2)`` poses of :data:`TOY`, x negated, in and out
TOY_POSE = Spec(input="n (j c)", output="n (j c)", skeleton=TOY, negate=(0,))
#: equivariance tolerance of a layer per dtype
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
#: swapped pairs (0, 1), (4, 5) negated, (7, 8) negated; fixed 2, 6; negated fixed 3
MIXED = Rep([1, 0, 2, 3, 5, 4, 6, 8, 7], [1, 1, 1, -1, -1, -1, 1, -1, -1])


class Net(nn.Module):
    """A model written inline: ``forward(x) = function(self, x)``. Modules and parameters given
    by name become its members, other tensors its buffers; the ops ``function`` runs are traced
    at the test's own source lines."""

    def __init__(self, function: Callable[..., Any], **members: Any) -> None:
        super().__init__()
        self.function = function
        for name, value in members.items():
            if isinstance(value, (nn.Module, nn.Parameter)):
                setattr(self, name, value)
            else:
                self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> Any:
        return self.function(self, x)


def source_line_of(obj: object, text: str) -> str:
    """``"<file>.py:<line>"`` of the first source line of ``obj`` containing ``text``."""
    lines, start = inspect.getsourcelines(obj)  # type: ignore[arg-type]
    name = os.path.basename(inspect.getsourcefile(obj))  # type: ignore[arg-type]
    for offset, line in enumerate(lines):
        if text in line:
            return f"{name}:{start + offset}"
    raise AssertionError(f"{text!r} not in the source of {obj}")


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b|`` (0 for empty tensors)."""
    return float((a - b).detach().abs().max()) if a.numel() else 0.0


def equivariance_error(model: nn.Module, spec: Spec, x: torch.Tensor, train: bool,
                       invariant: bool = False) -> float:
    """``max |f(T x) - T f(x)|`` of a float64 copy of ``model`` in train or eval mode (``f(x)``
    instead of ``T f(x)`` for an ``invariant`` output)."""
    probe = copy.deepcopy(model).double().train(train)
    x = x.double()
    with torch.no_grad():
        y = probe(x)
        return max_err(probe(spec.mirror_input(0, x)),
                       y if invariant else spec.mirror_output(0, y))


def traced(model: nn.Module, *example: torch.Tensor, opaque: Iterable[str] = ()) -> fx.GraphModule:
    """``model`` traced on ``example`` as :func:`symmetrize.symmetrize` traces it: modules with
    a rule registered outside torch (or by class name) and the ``opaque`` paths stay single
    nodes; values computed from the inputs are shape-only stand-ins."""
    leaves = rule_leaf_types(model) | {type(model.get_submodule(p)) for p in opaque}
    return trace(model, tuple(example), leaf_modules=tuple(leaves)).graph_module


def settle(model: nn.Module, spec: Spec, *example: torch.Tensor, hidden: HiddenPolicy = "auto",
           fraction: float = 1 / 3, activation: str = "tanh", assumed: Iterable[str] = (),
           averaged: Iterable[str] = (),
           decisions: dict[str, Decision] | None = None) -> tuple[Context, fx.GraphModule]:
    """Trace ``model`` and decide its hidden Reps as :func:`symmetrize.symmetrize` does (no
    rewrite): the settled :class:`Context` and the graph whose nodes carry ``meta["action"]``."""
    assumed, averaged = set(assumed), set(averaged)
    gm = traced(model, *example, opaque=assumed | averaged)
    ctx = decide(gm, dict(model.named_modules()), spec, {} if decisions is None else decisions,
                 hidden, fraction, activation, assumed, averaged)
    return ctx, gm


def context(model: nn.Module, spec: Spec, *example: torch.Tensor,
            decisions: dict[str, Decision] | None = None, hidden: HiddenPolicy = "auto",
            explore: bool = False, marks: Mapping[str, str] | None = None,
            gm: fx.GraphModule | None = None) -> Context:
    """A fresh pass context over ``model`` (traced here unless ``gm`` is given), built as
    :func:`~symmetrize.passes.decide.decide` builds one; nothing is propagated yet."""
    gm = traced(model, *example) if gm is None else gm
    return Context(gm, dict(model.named_modules()), spec, {} if decisions is None else decisions,
                   hidden, 1 / 3, "tanh", set(), set(), require_constant, None,
                   None if marks is None else dict(marks), explore)


def one_pass(model: nn.Module, spec: Spec, *example: torch.Tensor, **options: Any) -> Context:
    """One propagation pass (:func:`~symmetrize.passes.propagate.run_pass`) over a fresh
    :func:`context`; raises what the pass raises."""
    ctx = context(model, spec, *example, **options)
    run_pass(ctx)
    return ctx


def node_named(gm: fx.GraphModule | Context, name: str) -> fx.Node:
    """The node called ``name`` (a module call is named after its path, dots as ``_``)."""
    graph = gm.gm.graph if isinstance(gm, Context) else gm.graph
    for node in graph.nodes:
        if node.name == name:
            return node
    raise KeyError(f"no node {name!r}; nodes: {[n.name for n in graph.nodes]}")


def action_of(ctx: Context, name: str) -> Any:
    """The Action the settled pass gave node ``name`` (the same object as its
    ``meta["action"]``)."""
    node = node_named(ctx, name)
    assert node.meta["action"] is ctx.env[node]
    return ctx.env[node]


# ----------------------------------------------------------------------------- batch norm
def make_input(shape: tuple[int, ...], dtype: torch.dtype = torch.float64,
               offset: float = 0.5) -> torch.Tensor:
    """``(N, C, ...)`` with channels of distinct scales and means, so pairing mistakes show."""
    c = shape[1]
    view = (1, c) + (1,) * (len(shape) - 2)
    scale = torch.linspace(0.5, 2.0, c, dtype=dtype).view(view)
    mean = offset * torch.linspace(-1.0, 1.5, c, dtype=dtype).view(view)
    return torch.randn(shape, dtype=dtype) * scale + mean


def randomise(bn: nn.Module) -> Any:
    """A chiral BatchNorm with random free gamma / beta (gamma away from zero)."""
    if bn.affine:
        with torch.no_grad():
            bn.weight_plus.uniform_(0.5, 1.5)
            bn.bias_plus.normal_()
    return bn


def check_plain_checkpoint(plain: nn.Module, chiral: Any, rep: Rep, weight_tol: float) -> None:
    """A random plain BatchNorm's state dict, loaded into ``chiral`` (BatchNorm over ``rep``),
    gives the plain statistics and affine parameters averaged with their mirror images (the
    projection), keeps the batch counter, and agrees with ``from_dense``."""
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.normal_()
        plain.running_mean.normal_()
        plain.running_var.uniform_(0.5, 2.0)
        plain.num_batches_tracked.fill_(7)
    chiral.load_state_dict(plain.state_dict())
    perm = torch.tensor(rep.perm.tolist())
    rm, rv = plain.running_mean, plain.running_var
    assert max_err(chiral.running_mean, (rm + rep.apply(rm, 0)) / 2) < 1e-7
    assert max_err(chiral.running_var, (rv + rv[perm]) / 2) < 1e-7
    assert max_err(chiral.weight, (plain.weight + plain.weight[perm]) / 2) < weight_tol
    assert max_err(chiral.bias, (plain.bias + rep.apply(plain.bias.detach(), 0)) / 2) < weight_tol
    assert chiral.num_batches_tracked.item() == 7
    from_dense = type(chiral).from_dense(plain, rep)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert max_err(getattr(from_dense, name), getattr(chiral, name)) < 1e-7


def check_augmented_batch(bn: Any, ref: nn.Module, shape: tuple[int, ...], steps: int) -> None:
    """In train mode the chiral BatchNorm ``bn`` computes what the plain ``ref`` computes on the
    augmented batch ``cat[x, T x]`` (its first half) and tracks the same running statistics; in
    eval mode both give the same outputs."""
    for step in range(steps):
        x = make_input(shape, offset=1.0 + step)
        augmented = ref(torch.cat([x, bn.rep.apply(x, 1)]))[: shape[0]]
        assert max_err(bn(x), augmented) < 1e-12
        assert max_err(bn.running_mean, ref.running_mean) < 1e-13
        assert max_err(bn.running_var, ref.running_var) < 1e-13
        assert bn.num_batches_tracked.item() == ref.num_batches_tracked.item() == step + 1
    bn.eval()
    ref.eval()
    x = make_input(shape)
    assert max_err(bn(x), ref(x)) < 1e-12
