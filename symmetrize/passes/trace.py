"""Trace real pose-network code into a ``torch.fx`` graph by *shadow execution*.

Plain :func:`torch.fx.symbolic_trace` rejects code that pose-network authors write all the time:
``assert len(x.shape) == 4``, ``for t in range(x.shape[1])``, ``if x.shape[-1] == 3:`` and
Python flags such as ``forward(self, x, teacher_forcing=False)``. :func:`trace` runs the model on
example inputs *while* tracing it: every proxy carries the concrete value of its node, so

* ``len(proxy)``, ``x.dim()`` and ``x.ndim`` return concrete ints and record nothing in the graph;
* ``x.shape`` / ``x.size()`` stay symbolic, so ``x.view(x.shape[0], -1)`` keeps the batch size (and
  every size not used in Python control flow) free in the graph;
* ``bool`` / ``int`` / ``float`` / ``__index__`` / iteration on *size-derived* values use the
  concrete value and record a :class:`Specialisation` (a guard the graph silently relies on);
* the same on values derived from tensor *data* (``if x.sum() > 0``) is a :class:`TraceError`, as
  are ``.item()``, ``.tolist()`` and NumPy conversion.

A value is *size-derived* when it comes from ``shape`` / ``size()`` / ``dim()`` / ``numel()`` /
``dtype`` / ``device`` (and similar metadata), or is a non-tensor result of an operation whose
proxy inputs are all size-derived (``x.shape[1] - 2``, ``x.shape[-1] == 3``). The flag is stored
in ``node.meta["size_derived"]``; the concrete value in ``node.meta["example_value"]`` and the
user's source location in ``node.meta["source"]`` (``"file:line"``), and the path of the module
whose ``forward`` made it in ``node.meta["module"]``.

Forward parameters that the example inputs do not cover and whose default is a ``bool`` / ``int``
/ ``float`` / ``str`` / ``None`` are traced as concrete arguments with their default (Python flags
like ``teacher_forcing=False``); :func:`trace`'s ``concrete_args`` overrides them. A concrete
argument stays in the traced ``forward``'s signature with the traced value as its default, guarded
by a ``torch._assert`` (passing another value fails loudly instead of computing the wrong thing).

The graph is specialised to the model's train/eval mode at trace time wherever Python code reads
``self.training`` (leaf modules such as ``nn.Dropout`` keep following their own mode).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none as _fx_assert_is_none

from symmetrize.passes.tracing.einops_calls import einops_recorded
from symmetrize.passes.tracing.flags import auto_concrete, split_flags
from symmetrize.passes.tracing.tracer import ShadowTracer
from symmetrize.passes.tracing.values import describe
from symmetrize.passes.tracing.vocabulary import Specialisation, TraceError

__all__ = ["Specialisation", "TraceError", "TraceResult", "split_flags", "trace"]


@dataclass
class TraceResult:
    """What :func:`trace` returns."""

    graph_module: fx.GraphModule
    example_outputs: Any
    specialisations: list[Specialisation] = field(default_factory=list)
    #: the concrete (non-graph) forward arguments used: given ones and auto-detected defaults
    concrete_args: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        graph = self.graph_module.graph
        ops: dict[str, int] = {}
        for node in graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        inputs = [n.target for n in graph.nodes if n.op == "placeholder"]
        counts = ", ".join(f"{k}={v}" for k, v in ops.items())
        lines = [f"TraceResult({type(self.graph_module).__name__}: inputs {inputs}, {counts};",
                 f"  outputs {describe(self.example_outputs)};"]
        if self.concrete_args:
            lines.append(f"  concrete_args {self.concrete_args};")
        lines.append(f"  {len(self.specialisations)} specialisation(s)"
                     + (":" if self.specialisations else ")"))
        lines += [f"    {s}" for s in self.specialisations]
        if self.specialisations:
            lines[-1] += ")"
        return "\n".join(lines)


def _snapshot(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every buffer (BatchNorm running stats, num_batches_tracked, ...)."""
    return [(b, b.detach().clone()) for b in model.buffers()]


def _assert_none(value: Any, message: str) -> Any:
    """Guard of a concrete ``None`` argument (replaces fx's ``_assert_is_none``).

    fx's version is registered with ``fx.wrap``; re-tracing a graph that calls it with plain
    ``symbolic_trace`` emits ``wrap("torch.fx._symbolic_trace._assert_is_none")`` into the new
    code, which breaks every later fx trace in the process (KeyError). This one records itself.
    """
    if isinstance(value, fx.Proxy):
        return value.tracer.create_proxy("call_function", _assert_none, (value, message), {})
    if value is not None:
        raise AssertionError(message)
    return None


def _remove_dead_code(graph: fx.Graph) -> None:
    """Drop unused size computations and unused ``getitem`` / ``getattr`` (leftovers of asserts,
    Python branches and tuple unpacking); calls with possible side effects are kept."""
    for node in reversed(list(graph.nodes)):
        if node.op in ("call_function", "call_method") and not node.users and (
                node.meta.get("size_derived") or node.target in (operator.getitem, getattr)):
            graph.erase_node(node)


def trace(model: nn.Module, example_inputs: tuple[Any, ...] | torch.Tensor,
          concrete_args: dict[str, Any] | None = None,
          leaf_modules: Sequence[type] = ()) -> TraceResult:
    """Trace ``model`` into an ``fx.GraphModule`` by shadow execution on ``example_inputs``.

    Args:
        model: the network, traced in its current train/eval mode; its buffers (BatchNorm running
            statistics), its attributes and the global RNG state are restored afterwards.
        example_inputs: positional forward arguments (a single tensor is accepted too).
        concrete_args: forward arguments fixed at trace time (Python flags). Parameters not
            covered by ``example_inputs`` whose default is a bool/int/float/str/None are added
            automatically with their default.
        leaf_modules: module classes kept as single ``call_module`` nodes, in addition to every
            ``torch.nn`` module except containers and every ``ChiralModule``.

    Returns:
        A :class:`TraceResult`; its graph module's class is named ``<ModelClass>Traced``.

    Raises:
        TraceError: data-dependent control flow, ``.item()`` / ``.tolist()`` / NumPy conversion,
            or any other failure, with the source line and a suggested fix.
    """
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
            else tuple(example_inputs)
    root_name = type(model).__name__
    forward = model.forward
    try:
        bound = inspect.signature(forward).bind_partial(*example_inputs).arguments
    except TypeError as exc:
        raise TraceError(root_name, None, f"example_inputs do not match forward: {exc}",
                         "pass one example value per positional forward argument") from exc
    given = dict(concrete_args or {})
    concrete = auto_concrete(forward, bound, given)
    inputs = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
              for k, v in bound.items() if k not in concrete}
    tracer = ShadowTracer(root_name, inputs, concrete, leaf_modules)

    tensors = [t for t in (*inputs.values(), *model.parameters(), *model.buffers())
               if isinstance(t, torch.Tensor)]
    cuda = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    state = _snapshot(model)
    attributes = set(vars(model))
    with torch.random.fork_rng(devices=cuda):
        try:
            with einops_recorded(model):
                graph = tracer.trace(model, concrete_args=concrete or None)
        except TraceError:
            raise
        except Exception as exc:
            raise tracer.wrap(exc) from exc
        finally:
            with torch.no_grad():
                for buffer, saved in state:
                    buffer.copy_(saved)

    output = next(n for n in reversed(list(graph.nodes)) if n.op == "output")
    example_outputs = fx.node.map_arg(output.args[0], lambda n: n.meta["example_value"])
    _remove_dead_code(graph)
    for node in graph.nodes:
        node.meta.pop("is_wrapped", None)  # else fx emits ``wrap("torch.zeros")`` into the code
        if node.target is _fx_assert_is_none:
            node.target = _assert_none
    graph_module = fx.GraphModule(tracer.root, graph, class_name=f"{root_name}Traced")
    for name in set(vars(model)) - attributes:  # fx parks tensor constants on the root module
        delattr(model, name)
    return TraceResult(graph_module, example_outputs, tracer.specialisations, concrete)
