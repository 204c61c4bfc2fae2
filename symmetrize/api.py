"""``symmetrize(model, spec, example_inputs, **options)``: make an existing pose network
mirror-equivariant; ``explain`` (a dry run) and ``report``.

The conversion traces the model (:mod:`symmetrize.passes.trace`), propagates the mirror's action
from the annotated inputs and decides every hidden Rep (:mod:`symmetrize.passes.decide`),
rewrites a deep copy of the model (:mod:`symmetrize.passes.rewrite`: the user's class, attributes
and methods stay) and checks the result in float64 (:mod:`symmetrize.passes.check`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.utils._pytree import tree_flatten

from symmetrize.passes.check import check as run_check
from symmetrize.passes.check import equivariance_error
from symmetrize.passes.decide import decide
from symmetrize.passes.options import ConversionOptions
from symmetrize.passes.output_errors import OutputError
from symmetrize.passes.report import ConversionReport
from symmetrize.passes.report_notes import decision_notes
from symmetrize.passes.rewrite import Undo, rewrite
from symmetrize.passes.rows import dropout_warnings, report_rows
from symmetrize.passes.trace import split_flags, trace
from symmetrize.passes.validate import check_paths, check_tied, validate_call
from symmetrize.rep import Rep
from symmetrize.rules import ConversionError, Decision, rule_leaf_types
from symmetrize.spec import Spec

__all__ = ["ConversionError", "ConversionReport", "explain", "report", "symmetrize"]

_MIXING = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell)


def symmetrize(model: nn.Module, spec: Spec, example_inputs: Sequence[Any] | torch.Tensor,
               **options: Any) -> nn.Module:
    """A chirality-equivariant copy of ``model``, as annotated by ``spec``.

    Args:
        model: the network; it is not modified (unless ``inplace=True``).
        spec: how the mirror acts on the inputs and outputs (:class:`~symmetrize.Spec`).
        example_inputs: the forward arguments to trace with (any batch size; trailing Python
            values such as ``return_rep=True`` are fixed flags).
        **options: see :class:`~symmetrize.passes.options.ConversionOptions`: ``hidden``
            (``"auto"`` by default), ``negated_fraction``, ``activation``, ``invariant_at``,
            ``weights``, ``keep``, ``assume_equivariant``, ``average``, ``check``, ``inplace``.

    Returns:
        A deep copy of ``model`` (``model`` itself with ``inplace=True``) with chiral layers;
        ``converted.symmetrize_report`` holds the :class:`ConversionReport`.

    Raises:
        ConversionError: a bad argument, a path that names no module, an op without a rule, or
            Reps that contradict each other, with the node, its source line and a fix.
        TypeError: an unknown option or an argument of the wrong type.
    """
    opts = ConversionOptions.from_kwargs(options)
    inputs = validate_call(model, spec, example_inputs)
    modules = dict(model.named_modules())
    check_paths(modules, opts)
    opaque = [*opts.assume_equivariant, *opts.average]
    # module types with a rule registered by the user are traced as single nodes (torch's own
    # are anyway; a user subclass of one, with its own forward, is traced through)
    leaves = {type(modules[p]) for p in opaque} | rule_leaf_types(model)
    tensors, flags = split_flags(model.forward, inputs)  # (x, True): return_rep=True
    traced = trace(model, tensors, concrete_args=flags, leaf_modules=tuple(leaves))
    decisions = _invariance_decisions(modules, opts.invariant_paths)
    ctx = decide(traced.graph_module, modules, spec, decisions, opts.hidden,
                 opts.negated_fraction, opts.activation, set(opts.assume_equivariant),
                 set(opts.average))
    check_tied(model, ctx.sites, set(opts.keep))
    report = ConversionReport(
        model=type(model).__name__, spec=spec,
        parameters_before=sum(p.numel() for p in model.parameters()),
        options=opts.to_dict(), inputs=[_describe_input(x) for x in inputs])
    report.free_outputs = _free_outputs(traced.graph_module, ctx, spec)
    undo = Undo()
    converted = model if opts.inplace else copy.deepcopy(model)
    try:
        changes = rewrite(converted, ctx, opts.weights, set(opts.keep), undo)
        _fill_report(report, traced.graph_module.graph, modules, changes, ctx, spec, opts)
        report.parameters_after = sum(p.numel() for p in converted.parameters())
        converted.symmetrize_report = report  # type: ignore[assignment]
        if opts.check:
            problem = _measure(converted, spec, inputs, report)
            if problem and opts.keep:
                report.warnings.append(f"{problem}: expected with keep={list(opts.keep)}")
            elif problem:
                raise ConversionError(f"{problem}; this is a bug or an op without a correct "
                                      "rule: please report it with the model")
    except BaseException:
        if opts.inplace:
            undo.rollback()
            converted.__dict__.pop("symmetrize_report", None)
        raise
    return converted


def _fill_report(report: ConversionReport, graph: Any, modules: Mapping[str, nn.Module],
                 changes: Mapping[Any, Any], ctx: Any, spec: Spec,
                 opts: ConversionOptions) -> None:
    report.rows = report_rows(graph, modules, changes,
                              (Rep.joints(spec.skeleton), Rep.joints(spec.output_skeleton)))
    report.warnings.extend(ctx.warnings)
    report.warnings.extend(dropout_warnings(graph, modules))
    report.warnings.extend(f"{path}: kept as it is (keep=), so the model is not equivariant "
                           "there" for path in opts.keep)
    report.notes.extend(ctx.notes)
    report.notes.extend(decision_notes(ctx))


def _free_outputs(gm: Any, ctx: Any, spec: Spec) -> dict[int, dict[int, Rep]]:
    """The acting axes' Reps the conversion gave each free output."""
    output = next(n for n in gm.graph.nodes if n.op == "output")
    leaves = [leaf for leaf in tree_flatten(output.args[0])[0]
              if isinstance(leaf, fx.Node) and isinstance(leaf.meta.get("example_value"),
                                                           torch.Tensor)]
    found: dict[int, dict[int, Rep]] = {}
    for index, leaf in enumerate(leaves[: spec.n_outputs]):
        if not spec.is_free_output(index):
            continue
        action = ctx.action(leaf)
        axes = action.axes() if action is not None else {}
        if axes is None:
            raise ConversionError(f"output {index} is free, but the mirror mixes several of its "
                                  "axes, which the check cannot record. Fix: give the output a "
                                  "layout in the Spec")
        found[index] = {a: r for a, r in axes.items() if not r.is_trivial}
    return found


def _measure(converted: nn.Module, spec: Spec, inputs: tuple[Any, ...],
             report: ConversionReport) -> str | None:
    """Record the float64 equivariance error (eval and train mode) in ``report``; when it is
    not equivariant, say so with the first broken node."""
    try:
        errors = [equivariance_error(converted, spec, inputs, train) for train in (False, True)]
    except OutputError as error:
        raise ConversionError(f"the converted model's output cannot be checked: {error}") \
            from None
    report.equivariance_error = math.nan if any(map(math.isnan, errors)) else max(errors)
    if report.equivariance_error < 1e-8:
        return None
    found = run_check(converted, spec, inputs, n_inputs=2, modes=("eval", "train"),
                      dtypes=(torch.float64,)).first_broken
    return (f"the converted model is not equivariant (float64 error "
            f"{report.equivariance_error:.2e}; first broken: {found or 'not localised'})")


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
            decisions[p] = Decision(p, width, Rep.trivial(width), constrained_by="invariant_at",
                                    sticky=True, reason="the invariance layer (invariant_at)")
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
    options.pop("inplace", None)
    converted = symmetrize(model, spec, example_inputs, check=False, **options)
    result: ConversionReport = converted.symmetrize_report
    if check:
        inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
            else tuple(example_inputs)
        problem = _measure(converted, spec, inputs, result)
        if problem:
            result.warnings.append(problem)
    return result


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
