"""``symmetrize(model, spec)``: make an existing pose network mirror-equivariant.

The pass traces the model (:mod:`symmetrize.passes.trace`), propagates the mirror's action on
every tensor as a flat :class:`~symmetrize.Rep` from the annotated inputs
(:mod:`symmetrize.passes.propagate`, with the per-op rules of :mod:`symmetrize.rules`), decides
the Rep of every channel-mixing layer's output (the hidden policy, overridden where an input or
output annotation or a residual connection constrains it), rewrites a deep copy of the model
(:mod:`symmetrize.passes.rewrite`: the user's class, attributes and methods stay), and checks the
result in float64 (:mod:`symmetrize.passes.check`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from symmetrize.passes.check import check as run_check
from symmetrize.passes.check import equivariance_error
from symmetrize.passes.propagate import (
    ConversionError,
    Decision,
    HiddenPolicy,
    Propagation,
    check_path,
)
from symmetrize.passes.report import ConversionReport
from symmetrize.passes.rewrite import rewrite
from symmetrize.passes.rows import dropout_warnings, report_rows
from symmetrize.passes.trace import split_flags, trace
from symmetrize.rep import Rep
from symmetrize.rules import rule_leaf_types
from symmetrize.spec import Spec

__all__ = ["ConversionError", "ConversionReport", "explain", "report", "symmetrize"]

_MIXING = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell)


def symmetrize(model: nn.Module, spec: Spec, example_inputs: Sequence[Any] | torch.Tensor,
               hidden: HiddenPolicy = "skeleton", negated_fraction: float = 1 / 3,
               activation: str = "tanh", invariant_at: str | Sequence[str] | None = None,
               weights: str = "project", keep: Sequence[str] = (),
               assume_equivariant: Sequence[str] = (), average: Sequence[str] = (),
               check: bool = True, inplace: bool = False) -> nn.Module:
    """A chirality-equivariant copy of ``model``, as annotated by ``spec``.

    Args:
        model: the network; it is not modified (unless ``inplace``).
        spec: how the mirror acts on the inputs and outputs (:class:`~symmetrize.Spec`).
        example_inputs: the forward arguments to trace with (any batch size).
        hidden: the hidden Rep policy: ``"skeleton"`` (the paper's layout: ``J x D`` channels,
            ``negated_fraction`` of each joint's dims flip sign; when the joints sit on another
            axis, as in ST-GCN's ``(N, C, T, V)``, that fraction of the channels flips sign),
            ``"regular"`` (swapped pairs, nothing flips, activations kept), a callable
            ``(module_path, width) -> Rep``, or a dict from module path to one of these, a Rep
            or a fraction (a per-layer schedule such as 1/3 -> 1/6 -> 1/12 -> 0), the rest
            defaulting to ``"skeleton"``.
        negated_fraction: fraction of each joint's hidden dims that flip sign (skeleton layout).
        activation: where a non-odd activation meets channels that flip sign: ``"tanh"`` (the
            paper: the whole activation becomes tanh) or ``"mixed"`` (keep it on channels that do
            not flip, tanh on those that do; functional calls always become tanh).
        invariant_at: the path (or paths) of the invariance layer: a Linear, Conv1d/2d, LSTM or
            GRU whose output Rep becomes trivial, or a container (a block) whose every such
            layer does. Every layer after it, seeing only invariant features, stays an ordinary
            layer (the paper's action recogniser).
        weights: ``"project"`` (the closest equivariant weights to the pretrained ones) or
            ``"reinit"`` (fresh initialisation with the plain layer's scale).
        keep: module paths left untouched (converted as if chiral for the analysis, but not
            replaced); the check then reports the error they cause instead of raising.
        assume_equivariant: paths of your own modules to trust as equivariant (same Rep in as
            out); they are traced as single nodes and left as they are.
        average: paths of modules to make equivariant by local symmetrisation,
            ``g(x) = (f(x) + T f(T x)) / 2`` (twice their cost): the fallback for a module that
            cannot be traced or has no rule. One tensor in, one out; an output that differs from
            the input in its last axis gets a hidden Rep there like a Linear's.
        check: compare ``f(T x)`` with ``T f(x)`` in float64, in eval and train mode (dropout
            off), and raise if they differ, naming the first broken node (unless ``keep``
            explains it).
        inplace: convert ``model`` itself instead of a deep copy (saves the copy's memory; on
            an error the model may be left half converted).

    Returns:
        A deep copy of ``model`` (``model`` itself with ``inplace=True``) with chiral layers;
        ``converted.symmetrize_report`` holds the :class:`ConversionReport`.

    Raises:
        ConversionError: a path that names no module, an op without a rule, or Reps that
            contradict each other, with the node, its source line and a fix.
    """
    if activation not in ("tanh", "mixed"):
        raise ValueError(f"activation must be 'tanh' or 'mixed', got {activation!r}")
    if weights not in ("project", "reinit"):
        raise ValueError(f"weights must be 'project' or 'reinit', got {weights!r}")
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    _check_inputs_fit(spec, inputs)
    modules = dict(model.named_modules())
    invariant = [invariant_at] if isinstance(invariant_at, str) else list(invariant_at or ())
    named = list(hidden) if isinstance(hidden, Mapping) else []
    for path in [*named, *keep, *assume_equivariant, *average, *invariant]:
        check_path(modules, path)
    opaque = [*assume_equivariant, *average]
    # module types with a rule registered by the user are traced as single nodes (torch's own
    # are anyway; a user subclass of one, with its own forward, is traced through)
    leaves = {type(modules[p]) for p in opaque} | rule_leaf_types(model)
    tensors, flags = split_flags(model.forward, inputs)  # (x, True): return_rep=True
    traced = trace(model, tensors, concrete_args=flags, leaf_modules=tuple(leaves))
    decisions = _invariance_decisions(modules, invariant)
    # each dirty pass constrains at least one more decision for good: this bound is never hit
    rounds = 2 + sum(isinstance(m, _MIXING) for m in modules.values())
    memo: dict[Any, Any] = {}  # results of expensive rules, reused by the next pass
    for _ in range(rounds):
        propagation = Propagation(traced.graph_module, modules, spec, decisions, hidden,
                                  negated_fraction, activation, set(assume_equivariant),
                                  set(average), memo)
        propagation.run()
        if not propagation.dirty:
            break
    else:  # pragma: no cover - each restart constrains one more decision
        raise ConversionError(f"the hidden Reps did not settle after {rounds} rounds of "
                              "constraints")
    report = ConversionReport(
        model=type(model).__name__, spec=spec,
        parameters_before=sum(p.numel() for p in model.parameters()),
        options={"hidden": hidden, "negated_fraction": negated_fraction,
                 "activation": activation, "invariant_at": invariant_at, "weights": weights,
                 "keep": list(keep), "assume_equivariant": list(assume_equivariant),
                 "average": list(average)},
        inputs=[_describe_input(x) for x in inputs])
    converted = model if inplace else copy.deepcopy(model)
    changes = rewrite(converted, propagation, weights, set(keep))
    report.rows = report_rows(traced.graph_module.graph, modules, changes,
                              (Rep.joints(spec.skeleton), Rep.joints(spec.output_skeleton)))
    report.warnings.extend(propagation.warnings)
    report.warnings.extend(dropout_warnings(traced.graph_module.graph, modules))
    report.warnings.extend(f"{path}: kept as it is (keep=), so the model is not equivariant "
                           "there" for path in keep)
    report.notes.extend(propagation.notes)
    report.notes.extend(f"coupled by residual connections (one Rep): {', '.join(group)}"
                        for group in propagation.coupled_groups())
    report.parameters_after = sum(p.numel() for p in converted.parameters())
    report.notes.extend(f"{d.path}: output Rep fixed by {d.constrained_by}"
                        for d in decisions.values() if d.constrained_by)
    converted.symmetrize_report = report  # type: ignore[assignment]
    if check:
        problem = _measure(converted, spec, inputs, report)
        if problem and keep:
            report.warnings.append(f"{problem}: expected with keep={list(keep)}")
        elif problem:
            raise ConversionError(f"{problem}; this is a bug or an op without a correct rule: "
                                  "please report it with the model")
    return converted


def _measure(converted: nn.Module, spec: Spec, inputs: tuple[Any, ...],
             report: ConversionReport) -> str | None:
    """Record the float64 equivariance error (eval and train mode) in ``report``; when it is
    not equivariant, say so with the first broken node."""
    errors = [equivariance_error(converted, spec, inputs, train) for train in (False, True)]
    report.equivariance_error = math.nan if any(map(math.isnan, errors)) else max(errors)
    if report.equivariance_error < 1e-8:
        return None
    found = run_check(converted, spec, inputs, n_inputs=2, modes=("eval", "train"),
                      dtypes=(torch.float64,)).first_broken
    return (f"the converted model is not equivariant (float64 error "
            f"{report.equivariance_error:.2e}; first broken: {found or 'not localised'})")


def _check_inputs_fit(spec: Spec, inputs: tuple[Any, ...]) -> None:
    """Each example tensor fits its Spec layout (rank, joints, coordinates), before tracing."""
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and i < spec.n_inputs:
            try:
                spec.input_axes(i, tuple(x.shape))
            except ValueError as exc:
                raise ConversionError(f"example_inputs[{i}] of shape {tuple(x.shape)} does not "
                                      f"fit the Spec: {exc}") from exc


def _describe_input(x: Any) -> dict[str, Any]:
    """An example input as plain data: a tensor's shape and dtype, or the value itself."""
    if isinstance(x, torch.Tensor):
        return {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
    return {"value": x}


def _invariance_decisions(modules: Mapping[str, nn.Module],
                          paths: Sequence[str]) -> dict[str, Decision]:
    """Trivial output Reps for the invariance layer(s): each named channel-mixing layer, or
    every one inside a named container."""
    decisions: dict[str, Decision] = {}
    for path in paths:
        layers = [(p, m) for p, m in modules.items()
                  if (p == path or p.startswith(path + ".")) and isinstance(m, _MIXING)]
        if not layers:
            raise ConversionError(f"invariant_at={path!r} is a {type(modules[path]).__name__} "
                                  "with no Linear, Conv1d/2d, LSTM or GRU in it. Fix: name the "
                                  "layer (or block) that should output invariant features")
        for p, module in layers:
            width = _width(module)
            decisions[p] = Decision(p, width, Rep.trivial(width), constrained_by="invariant_at")
    return decisions


def _width(module: nn.Module) -> int:
    for attr in ("out_features", "out_channels", "hidden_size"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise ConversionError(f"a {type(module).__name__} has no output width")


def explain(model: nn.Module, spec: Spec, example_inputs: Sequence[Any] | torch.Tensor,
            **options: Any) -> ConversionReport:
    """A dry run of :func:`symmetrize`: the report of what it would replace, switch and keep
    (the model is not modified). Takes the same options. Where :func:`symmetrize` would refuse
    a model that fails its check, the report says so in a warning (with the first broken
    node) instead, so the report of a failing conversion can be read too."""
    check = options.pop("check", True)
    converted = symmetrize(model, spec, example_inputs, check=False, **options)
    report: ConversionReport = converted.symmetrize_report
    if check:
        inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
            else tuple(example_inputs)
        problem = _measure(converted, spec, inputs, report)
        if problem:
            report.warnings.append(problem)
    return report


def report(model: nn.Module) -> ConversionReport:
    """The :class:`ConversionReport` of a model returned by :func:`symmetrize`.

    Raises:
        TypeError: ``model`` was not made by :func:`symmetrize` (it has no report).
    """
    found = getattr(model, "symmetrize_report", None)
    if not isinstance(found, ConversionReport):
        raise TypeError(f"{type(model).__name__} has no conversion report: only a model "
                        "returned by symmetrize(model, spec, ...) has one (explain(...) returns "
                        "the report of a dry run)")
    return found
