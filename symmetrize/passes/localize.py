"""Find the first node whose output stops being symmetric: run the traced graph on ``x`` and on
``T x`` side by side.

In an equivariant network every intermediate tensor computed from ``T x`` is a *signed
permutation* of the one computed from ``x`` (its Rep). The localiser needs no Reps: for each
node it asks whether such a signed permutation exists, over several random inputs at once. The
entries of the node's output form columns (one value per input); the outputs on ``x`` and on
``T x`` are related by a signed permutation exactly when the two sets of columns are equal up
to the sign of each column. Sign-normalising each column by a random projection and sorting by
its absolute value makes that a sort and a compare. The first node where the sets differ is
where the symmetry breaks: a plain layer, a perturbed weight, an op with a wrong rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_flatten

from symmetrize.nn.average import MirrorAverage
from symmetrize.nn.switched import SwitchActivations, install_switch, uninstall_switch
from symmetrize.passes.trace import split_flags, trace
from symmetrize.spec import Spec

__all__ = ["BrokenNode", "first_broken_node", "symmetry_gap"]

#: relative gap (float64) above which a node's output is not a signed permutation of its mirror
GAP_TOLERANCE = 1e-7
#: sorted neighbours searched for a column's match (absorbs near-ties of the sort key)
_WINDOW = 4


@dataclass
class BrokenNode:
    """The first node of the traced graph whose output on ``T x`` is no signed permutation of
    its output on ``x``.

    Attributes:
        node: the fx node's name.
        op: its kind (``call_module``, ``call_function``, ``call_method``, ``output``).
        target: the module type, function or method name.
        module: the module path (the called module, or the one whose ``forward`` made it).
        source: ``file:line`` of the user code that made it, when known.
        gap: the relative distance from the nearest signed permutation (0 when symmetric).
        reason: one sentence on what is wrong there.
    """

    node: str
    op: str
    target: str
    module: str
    source: str | None
    gap: float
    reason: str

    def __str__(self) -> str:
        where = f"module '{self.module}' ({self.target})" if self.module else self.target
        source = f" at {self.source}" if self.source else ""
        return f"node '{self.node}': {where}{source}: {self.reason} (gap {self.gap:.2e})"

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op": self.op, "target": self.target, "module": self.module,
                "source": self.source, "gap": self.gap, "reason": self.reason}


def symmetry_gap(outputs: Sequence[torch.Tensor], mirrored: Sequence[torch.Tensor],
                 generator: torch.Generator | None = None) -> float:
    """How far ``mirrored[k]`` is from one signed permutation of ``outputs[k]`` (the same for
    every ``k``), relative to the largest value: 0 when one exists, ``inf`` for other shapes.

    Columns (an entry across the ``k`` inputs) are compared after sign normalisation; each
    column is matched to the nearest of its sorted neighbours.
    """
    if len(outputs) != len(mirrored) or any(a.shape != b.shape
                                            for a, b in zip(outputs, mirrored, strict=True)):
        return float("inf")
    if not outputs or outputs[0].numel() == 0:
        return 0.0
    y = torch.stack([a.detach().reshape(-1).double().cpu() for a in outputs])
    y_m = torch.stack([b.detach().reshape(-1).double().cpu() for b in mirrored])
    scale = max(y.abs().max().item(), y_m.abs().max().item())
    if scale == 0.0:
        return 0.0
    if not (torch.isfinite(y).all() and torch.isfinite(y_m).all()):
        return float("inf")
    direction = torch.randn(y.shape[0], generator=generator, dtype=torch.float64)
    a, b = _normalised_sorted(y, direction), _normalised_sorted(y_m, direction)
    width = a.shape[1]
    padded = torch.nn.functional.pad(a, (_WINDOW, _WINDOW), value=float("inf"))
    best = torch.full((width,), float("inf"), dtype=torch.float64)
    for shift in range(2 * _WINDOW + 1):
        best = torch.minimum(best, (padded[:, shift:shift + width] - b).abs().amax(0))
    return best.max().item() / scale


def _normalised_sorted(y: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Columns of ``y`` times the sign of their projection on ``direction``, sorted by the
    projection's absolute value."""
    key = direction @ y
    sign = torch.where(key < 0, -1.0, 1.0).to(y.dtype)
    order = torch.argsort(key.abs())
    return (y * sign)[:, order]


def first_broken_node(model: nn.Module, spec: Spec, inputs: Sequence[tuple[Any, ...]],
                      leaf_modules: Sequence[type] = ()) -> BrokenNode | None:
    """The first node whose output on the mirrored inputs is no signed permutation of its
    output on ``inputs`` (each entry: one tuple of forward arguments), or the output node when
    every node is symmetric but the outputs do not transform as ``spec`` says; ``None`` when
    nothing breaks. The model runs as it is (mode, dtype, device): the caller sets them up.
    """
    gm, names = _trace(model, inputs[0], leaf_modules)
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    last_use = {n: i for i, node in enumerate(nodes) for n in node.all_input_nodes}
    runs = [fx.Interpreter(gm) for _ in range(2 * len(inputs))]
    mirrored = [tuple(spec.mirror_input(i, v) if isinstance(v, torch.Tensor)
                      and not spec.is_invariant_input(i) else v for i, v in enumerate(x))
                for x in inputs]
    feeds = [dict(zip(names, x, strict=False)) for x in [*inputs, *mirrored]]
    generator = torch.Generator().manual_seed(0)
    n = len(inputs)
    with torch.no_grad(), parametrize.cached():
        for i, node in enumerate(nodes):
            for run, feed in zip(runs, feeds, strict=True):
                if node.op == "placeholder":  # an argument not given: the traced default
                    name = str(node.target).lstrip("*")
                    run.env[node] = feed[name] if name in feed else (
                        node.args[0] if node.args else None)
                else:
                    run.env[node] = run.run_node(node)
            if node.op == "output":
                return _check_output(node, runs, spec, n)
            values = [tree_flatten(run.env[node])[0] for run in runs]
            for j in range(len(values[0])):
                column = [v[j] if j < len(v) else None for v in values]
                if not all(isinstance(t, torch.Tensor) for t in column):
                    continue
                gap = symmetry_gap(column[:n], column[n:], generator)
                if not gap <= GAP_TOLERANCE:
                    return _broken(node, modules, gap, "its output on the mirrored input is no "
                                   "signed permutation of its output on the input")
            for run in runs:  # free what no later node reads
                for used in node.all_input_nodes:
                    if last_use.get(used) == i:
                        run.env.pop(used, None)
    return None


def _trace(model: nn.Module, example: tuple[Any, ...],
           leaf_modules: Sequence[type]) -> tuple[fx.GraphModule, list[str]]:
    """Trace the user's own ``forward`` of a (possibly converted) model, with its non-tensor
    arguments (flags) fixed; functional activations the conversion switched are recorded as the
    ``tanh`` they run as. Also returns the names of the positional arguments."""
    sites = frozenset(getattr(model, "_symmetrize_switched", ()))
    unwrapped = uninstall_switch(model)
    try:
        names = list(inspect.signature(model.forward).bind_partial(*example).arguments)
        tensors, concrete = split_flags(model.forward, example)
        with SwitchActivations(sites) if sites else nullcontext():
            traced = trace(model, tensors, concrete_args=concrete or None,
                           leaf_modules=(MirrorAverage, *leaf_modules))
    finally:
        if unwrapped:
            install_switch(model, sites)
    return traced.graph_module, names


def _check_output(node: fx.Node, runs: Sequence[fx.Interpreter], spec: Spec,
                  n: int) -> BrokenNode | None:
    worst = 0.0
    for k in range(n):
        out, out_m = runs[k].env[node], runs[n + k].env[node]
        outs = out if isinstance(out, (tuple, list)) else (out,)
        outs_m = out_m if isinstance(out_m, (tuple, list)) else (out_m,)
        for index, (y, y_m) in enumerate(zip(outs, outs_m, strict=True)):
            if isinstance(y, torch.Tensor):
                expected = spec.mirror_output(index, y)
                scale = max(expected.abs().max().item(), 1e-300) if y.numel() else 1.0
                worst = max(worst, (expected - y_m).abs().max().item() / scale)
    if worst <= GAP_TOLERANCE:
        return None
    return BrokenNode(node.name, node.op, "output", "", None, worst,
                      "every node's output is a signed permutation of its mirror image, but the "
                      "outputs do not transform as the Spec says: check Spec(output=...), "
                      "output_skeleton and output_negate")


def _broken(node: fx.Node, modules: dict[str, nn.Module], gap: float, reason: str) -> BrokenNode:
    if node.op == "call_module":
        module = modules.get(str(node.target))
        target, path = type(module).__name__, str(node.target)
    else:
        target = getattr(node.target, "__name__", str(node.target))
        path = str(node.meta.get("module", ""))
    return BrokenNode(node.name, node.op, target, path, node.meta.get("source"), gap, reason)
