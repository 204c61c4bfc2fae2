"""``symmetrize(model, spec)``: make an existing pose network mirror-equivariant.

The pass traces the model (:mod:`symmetrize.passes.trace`), propagates the mirror's action on
every tensor as a flat :class:`~symmetrize.Rep` from the annotated inputs
(:mod:`symmetrize.passes.movement` for data movement, rules below for layers and element-wise
ops), decides the Rep of every channel-mixing layer's output (the hidden policy, overridden where
an input/output annotation or a residual connection constrains it), swaps the layers for their
chiral twins in a deep copy of the model (so the user's class, attributes and methods stay), and
checks the result in float64.

Scope of this first version: Linear, Conv1d, BatchNorm1d, LSTM, GRU, Dropout/Identity and
point-wise activation modules; data movement; element-wise add/sub/mul/div; mean/sum over axes
the mirror at most permutes; average/max pooling over time. Anything else is an error that names the node and its source line.
"""

from __future__ import annotations

import copy
import difflib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from symmetrize.nn import (
    ChiralActivation,
    ChiralBatchNorm1d,
    ChiralConv1d,
    ChiralGRU,
    ChiralLinear,
    ChiralLSTM,
    is_odd,
)
from symmetrize.nn.shared import ChiralModule
from symmetrize.passes.movement import (
    NotDataMovementError,
    factor_axes,
    flat_rep,
    forward_rep,
    pull_back_rep,
)
from symmetrize.passes.trace import trace
from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton
from symmetrize.spec import Spec

__all__ = ["ConversionError", "ConversionReport", "explain", "symmetrize"]

HiddenPolicy = str | Callable[[str, int], Rep] | Mapping[str, Any]

_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.CELU, nn.SELU, nn.LeakyReLU,
                      nn.Sigmoid, nn.Softplus, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Tanh,
                      nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Hardtanh)
_PASS_MODULES = (nn.Dropout, nn.Identity, nn.AlphaDropout)
_ODD_FUNCTIONS = {torch.tanh, F.tanh, torch.neg, operator.neg, torch.sin, F.softsign,
                  F.tanhshrink, F.softshrink, F.hardshrink, "tanh", "neg", "sin"}
_NON_ODD_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.gelu, F.silu, F.elu, F.leaky_relu,
                        torch.sigmoid, F.sigmoid, F.softplus, F.mish, torch.exp, "relu", "sigmoid",
                        "exp"}
_ARITHMETIC = {operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub",
               torch.sub: "sub", "sub": "sub", operator.mul: "mul", torch.mul: "mul",
               "mul": "mul", operator.truediv: "div", torch.div: "div", "div": "div",
               operator.iadd: "add", operator.isub: "sub", operator.imul: "mul",
               "add_": "add", "sub_": "sub", "mul_": "mul", "div_": "div"}
_REDUCTIONS = {torch.mean, torch.sum, "mean", "sum"}
_SIZE_METHODS = {"size", "dim", "numel"}
_POOL_MODULES = (nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.MaxPool1d, nn.AdaptiveMaxPool1d)
_POOL_FUNCTIONS = {F.avg_pool1d: True, F.adaptive_avg_pool1d: True, F.max_pool1d: False,
                   F.adaptive_max_pool1d: False}  # value: linear (valid on flipping channels)


class ConversionError(ValueError):
    """A model (or part of it) that cannot be converted as asked, with where and how to fix."""


@dataclass
class ConversionReport:
    """What :func:`symmetrize` did: one row per converted module, parameter counts, the check."""

    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    parameters_before: int = 0
    parameters_after: int = 0
    equivariance_error: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def parameter_ratio(self) -> float:
        return self.parameters_after / max(self.parameters_before, 1)

    def __str__(self) -> str:
        header = ("module", "type", "input Rep", "output Rep", "action")
        widths = [max(len(str(r[i])) for r in [header, *self.rows]) for i in range(5)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in [header, *self.rows]]
        lines.append(f"parameters: {self.parameters_before:,} -> {self.parameters_after:,} "
                     f"({self.parameter_ratio:.3f}x); float64 equivariance error "
                     f"{self.equivariance_error:.2e}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


class _Restart(Exception):
    """A decision was constrained: propagate again from the inputs."""


@dataclass
class _Decision:
    """The Rep chosen for a channel-mixing module's output (LSTM/GRU: its hidden state)."""

    path: str
    width: int
    rep: Rep
    constrained_by: str | None = None


@dataclass
class _Site:
    """A call of a module in the graph: the module and the Reps that reach and leave it."""

    path: str
    module: nn.Module
    node: fx.Node
    rep_in: Rep | None = None
    rep_out: Rep | None = None
    switch: bool = False


def symmetrize(model: nn.Module, spec: Spec, example_inputs: Sequence[Any] | torch.Tensor,
               hidden: HiddenPolicy = "skeleton", negated_fraction: float = 1 / 3,
               activation: str = "tanh", invariant_at: str | None = None,
               weights: str = "project", keep: Sequence[str] = (),
               assume_equivariant: Sequence[str] = (), check: bool = True) -> nn.Module:
    """A chirality-equivariant copy of ``model``, as annotated by ``spec``.

    Args:
        model: the network; it is not modified.
        spec: how the mirror acts on the inputs and outputs (:class:`~symmetrize.Spec`).
        example_inputs: the forward arguments to trace with (any batch size).
        hidden: the hidden Rep policy: ``"skeleton"`` (the paper's layout: ``J x D`` channels,
            ``negated_fraction`` of each joint's dims flip sign), ``"regular"`` (swapped pairs,
            nothing flips, activations kept), a callable ``(module_path, width) -> Rep``, or a dict
            from module path to one of these (or to a Rep / a fraction) with the rest defaulting
            to ``"skeleton"``.
        negated_fraction: fraction of each joint's hidden dims that flip sign (skeleton layout).
        activation: where a non-odd activation meets channels that flip sign: ``"tanh"`` (the
            paper: the whole activation becomes tanh) or ``"mixed"`` (keep it on channels that do
            not flip, tanh on those that do).
        invariant_at: the path of a Linear/Conv1d/LSTM/GRU that becomes the invariance layer
            (output Rep trivial); every layer after it, seeing only invariant features, stays an
            ordinary layer (the paper's action recogniser).
        weights: ``"project"`` (the closest equivariant weights to the pretrained ones) or
            ``"reinit"`` (fresh initialisation with the plain layer's scale).
        keep: module paths left untouched (converted as if chiral for the analysis, but not
            replaced); the check then reports the error they cause instead of raising.
        assume_equivariant: paths of your own modules to trust as equivariant (same Rep in as
            out); they are traced as single nodes and left as they are.
        check: compare ``f(T x)`` with ``T f(x)`` in float64 and raise if they differ (unless
            ``keep`` explains it).

    Returns:
        A deep copy of ``model`` with chiral layers; ``converted.symmetrize_report`` holds the
        :class:`ConversionReport`.

    Raises:
        ConversionError: an op without a rule, or Reps that contradict each other, with the node,
            its source line and a fix.
    """
    if activation not in ("tanh", "mixed"):
        raise ValueError(f"activation must be 'tanh' or 'mixed', got {activation!r}")
    if weights not in ("project", "reinit"):
        raise ValueError(f"weights must be 'project' or 'reinit', got {weights!r}")
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    modules = dict(model.named_modules())
    named = list(hidden) if isinstance(hidden, Mapping) else []
    for path in [*named, *keep, *assume_equivariant,
                 *([invariant_at] if invariant_at is not None else [])]:
        _check_path(modules, path)
    traced = trace(model, inputs,
                   leaf_modules=tuple({type(modules[p]) for p in assume_equivariant}))
    gm = traced.graph_module
    skeleton = spec.skeleton
    decisions: dict[str, _Decision] = {}
    if invariant_at is not None:
        decisions[invariant_at] = _Decision(invariant_at, _width(modules[invariant_at]),
                                            Rep.trivial(_width(modules[invariant_at])),
                                            constrained_by="invariant_at")
    for _ in range(64):
        try:
            propagation = _Propagation(gm, modules, spec, decisions, skeleton, hidden,
                                       negated_fraction, set(assume_equivariant))
            sites = propagation.run()
            break
        except _Restart:
            continue
    else:  # pragma: no cover - each restart constrains one more decision
        raise ConversionError("the hidden Reps did not settle after 64 rounds of constraints")
    converted = copy.deepcopy(model)
    report = ConversionReport(parameters_before=sum(p.numel() for p in model.parameters()))
    _rewrite(converted, sites, activation, weights, set(keep), report)
    report.notes.extend(propagation.notes)
    report.parameters_after = sum(p.numel() for p in converted.parameters())
    report.notes.extend(f"{d.path}: output Rep fixed by {d.constrained_by}"
                        for d in decisions.values() if d.constrained_by)
    if check:
        report.equivariance_error = _check(converted, spec, inputs)
        if not report.equivariance_error < 1e-8 and keep:
            report.notes.append(f"not equivariant (float64 error {report.equivariance_error:.2e})"
                                f": expected with keep={list(keep)}")
        elif not report.equivariance_error < 1e-8:
            raise ConversionError(
                f"the converted model is not equivariant (float64 error "
                f"{report.equivariance_error:.2e}); this is a bug or an op without a correct rule:"
                f" please report it with the model")
    converted.symmetrize_report = report  # type: ignore[assignment]
    return converted


def explain(model: nn.Module, spec: Spec, example_inputs: Sequence[Any] | torch.Tensor,
            **options: Any) -> ConversionReport:
    """A dry run of :func:`symmetrize`: the report of what it would replace, switch and keep
    (the model is not modified). Takes the same options."""
    return symmetrize(model, spec, example_inputs, **options).symmetrize_report


# --------------------------------------------------------------------------------- propagation
class _Propagation:
    """One pass over the graph computing every tensor's flat Rep under the current decisions."""

    def __init__(self, gm: fx.GraphModule, modules: dict[str, nn.Module], spec: Spec,
                 decisions: dict[str, _Decision], skeleton: Skeleton, hidden: HiddenPolicy,
                 fraction: float, assumed: set[str]) -> None:
        self.gm, self.modules, self.spec = gm, modules, spec
        self.decisions, self.skeleton, self.hidden, self.fraction = (
            decisions, skeleton, hidden, fraction)
        self.env: dict[fx.Node, Any] = {}
        # node -> (decision path, movement nodes since the decision, bidirectional halving)
        self.prov: dict[fx.Node, tuple[str, list[fx.Node], bool]] = {}
        self.sites: dict[str, _Site] = {}
        self.n_input = 0
        self.assumed = assumed
        self.notes: list[str] = []

    def run(self) -> dict[str, _Site]:
        for node in self.gm.graph.nodes:
            self.env[node] = self.visit(node)
        return self.sites

    # ----------------------------------------------------------------- helpers
    def value(self, node: Any) -> Any:
        return fx.node.map_arg(node, lambda n: n.meta.get("example_value"))

    def where(self, node: fx.Node) -> str:
        source = node.meta.get("source")
        return f"node '{node.name}'" + (f" ({source})" if source else "")

    def fail(self, node: fx.Node, problem: str, fix: str) -> ConversionError:
        return ConversionError(f"{self.where(node)}: {problem}. Fix: {fix}")

    def rep(self, node: Any) -> Any:
        return self.env.get(node) if isinstance(node, fx.Node) else None

    def decide(self, path: str, width: int, rep_in: Rep) -> Rep:
        decision = self.decisions.get(path)
        if decision is None:
            decision = self.decisions[path] = _Decision(path, width, self.policy(path, width))
        if rep_in.is_trivial and decision.constrained_by is None:
            return Rep.trivial(width)  # after the invariance layer: nothing left to mirror
        return decision.rep

    def policy(self, path: str, width: int) -> Rep:
        choice: Any = self.hidden
        if isinstance(choice, Mapping):
            choice = choice.get(path, "skeleton")
        if isinstance(choice, Rep):
            rep = choice
        elif callable(choice):
            rep = choice(path, width)
        elif choice == "regular":
            rep = Rep.regular(width)
        elif choice == "skeleton" or isinstance(choice, float):
            fraction = choice if isinstance(choice, float) else self.fraction
            joints = len(self.skeleton)
            dims, rest = divmod(width, joints)
            if dims == 0:
                rep = Rep.regular(width)
            else:
                rep = Rep.skeleton_hidden(self.skeleton, dims, round(dims * fraction))
                if rest:
                    rep = rep + Rep.trivial(rest)
                    note = (f"{path}: width {width} is not a multiple of {joints} joints: "
                            f"{joints} x {dims} skeleton channels + {rest} invariant ones")
                    if note not in self.notes:
                        self.notes.append(note)
        else:
            raise ConversionError(f"hidden policy for '{path}' must be 'skeleton', 'regular', a "
                                  f"fraction, a Rep or a callable, got {choice!r}")
        if not isinstance(rep, Rep) or rep.size != width:
            raise ConversionError(f"hidden policy for '{path}' gave {rep!r}, not a Rep of size "
                                  f"{width}")
        return rep

    def require(self, node: fx.Node, wanted: Rep, why: str) -> None:
        """Make ``node``'s flat Rep equal ``wanted``, constraining its decision if it is free."""
        have = self.env.get(node)
        if have == wanted:
            return
        prov = self.prov.get(node)
        if prov is not None:
            path, chain, halve = prov
            decision = self.decisions[path]
            if decision.constrained_by is None:
                rep = self.pull_back(node, chain, wanted, path, halve)
                if rep is not None and rep.size == decision.width:
                    decision.rep = rep
                    decision.constrained_by = why
                    raise _Restart
        raise self.fail(node, f"its Rep {have!r} differs from the Rep required by {why} "
                              f"({wanted!r})",
                        "make both sides carry the same joints/coordinates layout, or choose "
                        "the hidden Rep of the layer that produces it with hidden={path: Rep}")

    def can_constrain(self, node: Any) -> bool:
        prov = self.prov.get(node) if isinstance(node, fx.Node) else None
        return prov is not None and self.decisions[prov[0]].constrained_by is None

    def pull_back(self, node: fx.Node, chain: list[fx.Node], wanted: Rep, path: str,
                  halve: bool) -> Rep | None:
        rep = wanted
        for step in reversed(chain):
            source = step.args[0]
            shape = tuple(source.meta["example_value"].shape)
            op = step.target
            args = self.value(tuple(step.args[1:]))
            kwargs = self.value(dict(step.kwargs))
            try:
                rep = pull_back_rep(op, shape, rep, args=args, kwargs=kwargs)
            except ValueError:
                return None
        site = self.sites.get(path)
        origin = chain[0].args[0] if chain else node
        shape = tuple(origin.meta["example_value"].shape)
        axis = _channel_axis(site.module) if site else -1
        factors = factor_axes(shape, rep, [axis])
        if factors is None:
            return None
        channel = factors[axis]
        if halve:
            half = channel.size // 2
            first = Rep(channel.perm[:half], channel.sign[:half]) if all(
                channel.perm[:half] < half) else None
            if first is None or first.repeat(2) != channel:
                return None
            channel = first
        return channel

    def channel_rep(self, node: fx.Node, arg: fx.Node, axis: int, what: str) -> Rep:
        flat = self.rep(arg)
        if flat is None:
            raise self.fail(node, f"the input of {what} carries no known mirror Rep",
                            "check the Spec covers every tensor input")
        shape = tuple(arg.meta["example_value"].shape)
        factors = factor_axes(shape, flat, [axis])
        if factors is None:
            raise self.fail(node, f"the mirror does not act on {what}'s input channel axis alone "
                                  f"(it also moves elements along other axes of {shape})",
                            "lay the input out so joints/coordinates are on the channel axis")
        return factors[axis]

    # ----------------------------------------------------------------- node rules
    def visit(self, node: fx.Node) -> Any:
        value = node.meta.get("example_value")
        if node.op == "placeholder":
            index = self.n_input
            self.n_input += 1
            if not isinstance(value, torch.Tensor):
                return None
            if index >= self.spec.n_inputs:
                raise self.fail(node, f"forward argument {index} is a tensor but the Spec "
                                      f"annotates {self.spec.n_inputs} inputs",
                                "add a layout for it to Spec(input=...)")
            return flat_rep(value.shape, self.spec.input_axes(index, value.shape))
        if node.op == "get_attr":
            return None
        if node.op == "output":
            self.visit_output(node)
            return None
        if node.op == "call_module":
            return self.visit_module(node, self.modules[str(node.target)], str(node.target))
        return self.visit_function(node, value)

    def visit_output(self, node: fx.Node) -> None:
        result = node.args[0]
        outputs = list(result) if isinstance(result, (tuple, list)) else [result]
        for index, out in enumerate(outputs):
            if not isinstance(out, fx.Node) or not isinstance(
                    out.meta.get("example_value"), torch.Tensor):
                continue
            if index >= self.spec.n_outputs:
                raise self.fail(node, f"output {index} is a tensor but the Spec annotates "
                                      f"{self.spec.n_outputs} outputs",
                                "add a layout for it to Spec(output=...)")
            shape = out.meta["example_value"].shape
            wanted = flat_rep(shape, self.spec.output_axes(index, shape))
            self.require(out, wanted, f"the Spec of output {index}")

    def visit_module(self, node: fx.Node, module: nn.Module, path: str) -> Any:
        args = node.args
        if path in self.assumed:
            flat = self.rep(args[0])
            out = node.meta["example_value"]
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(
                    args[0].meta["example_value"].shape):
                raise self.fail(node, f"assume_equivariant module '{path}' must map one tensor "
                                      "to one tensor of the same shape",
                                "assume a module whose output has its input's layout")
            self.site(path, module, node).rep_in = flat
            self.inherit(node, args[0])
            return flat
        if isinstance(module, _PASS_MODULES):
            self.inherit(node, args[0])
            return self.rep(args[0])
        if isinstance(module, _POINTWISE_MODULES):
            flat = self.rep(args[0])
            site = self.site(path, module, node)
            if flat is not None and flat.n_negated and not is_odd(module):
                channels = self.channel_rep(node, args[0], _act_axis(node), type(module).__name__)
                # a module shared by call sites with different Reps can only become tanh
                site.rep_in = channels if not site.switch or site.rep_in == channels else None
                site.switch = True
            self.inherit(node, args[0])
            return flat
        if isinstance(module, _POOL_MODULES):
            return self.visit_pooling(node, f"'{path}'", linear=not isinstance(
                module, (nn.MaxPool1d, nn.AdaptiveMaxPool1d)))
        if isinstance(module, ChiralModule):
            raise self.fail(node, f"module '{path}' is already chiral", "convert a plain model")
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            if isinstance(module, nn.Conv1d) and module.groups != 1:
                raise self.fail(node, f"grouped Conv1d '{path}' has no rule",
                                "use groups=1 or keep=[...] (coming)")
            axis = _channel_axis(module)
            rep_in = self.channel_rep(node, args[0], axis, f"'{path}'")
            width = module.out_channels if isinstance(module, nn.Conv1d) else module.out_features
            rep_out = self.decide(path, width, rep_in)
            self.record(node, module, path, rep_in, rep_out)
            self.prov[node] = (path, [], False)
            return flat_rep(node.meta["example_value"].shape, {axis: rep_out})
        if isinstance(module, nn.BatchNorm1d):
            rep = self.channel_rep(node, args[0], 1, f"'{path}'")
            self.record(node, module, path, rep, rep)
            self.inherit(node, args[0])
            return self.rep(args[0])
        if isinstance(module, (nn.LSTM, nn.GRU)):
            return self.visit_rnn(node, module, path)
        raise self.fail(node, f"no rule for module '{path}' of type {type(module).__name__}",
                        "use layers symmetrize knows (Linear, Conv1d, BatchNorm1d, LSTM, GRU, "
                        "point-wise activations, Dropout) or report the layer type")

    def visit_rnn(self, node: fx.Node, module: nn.RNNBase, path: str) -> Any:
        if module.proj_size:
            raise self.fail(node, f"'{path}' uses proj_size", "use proj_size=0")
        rep_in = self.channel_rep(node, node.args[0], -1, f"'{path}'")
        rep_hidden = self.decide(path, module.hidden_size, rep_in)
        self.record(node, module, path, rep_in, rep_hidden)
        out, states = node.meta["example_value"]
        directions = 2 if module.bidirectional else 1
        state_flat = [flat_rep(s.shape, {-1: rep_hidden}) for s in
                      (states if isinstance(states, tuple) else (states,))]
        hx = node.args[1] if len(node.args) > 1 else node.kwargs.get("hx")
        if hx is not None:
            # (h0, c0) arrives as one tuple-valued node (an RNN's returned state) or as a tuple
            parts = hx if isinstance(hx, (tuple, list)) else [hx]
            have: list[Any] = []
            for part in parts:
                rep = self.rep(part)
                have.extend(rep if isinstance(rep, tuple) else [rep])
            if have != state_flat:
                if len(parts) == len(state_flat) and all(isinstance(p, fx.Node) for p in parts):
                    for part, wanted in zip(parts, state_flat, strict=True):
                        self.require(part, wanted, f"the initial state of '{path}'")
                raise self.fail(node, f"the initial state of '{path}' carries mirror Reps that "
                                      f"differ from its hidden Rep {rep_hidden!r}",
                                f"give '{path}' and the module producing its state the same "
                                "hidden Rep (hidden={...})")
        out_flat = flat_rep(out.shape, {-1: rep_hidden.repeat(directions)})
        # a getitem on this tuple output takes this provenance (visit_function)
        self.prov[node] = (path, [], directions == 2)
        return (out_flat, tuple(state_flat) if isinstance(states, tuple) else state_flat[0])

    def visit_function(self, node: fx.Node, value: Any) -> Any:
        target = node.target
        args, kwargs = node.args, node.kwargs
        if node.op == "call_method" and target in _SIZE_METHODS:
            return None
        if not _has_tensor(value):
            return None
        if target is operator.getitem and isinstance(self.rep(args[0]), tuple):
            flat = self.rep(args[0])[args[1]]
            prov = self.prov.get(args[0])
            if prov is not None and not isinstance(flat, tuple):
                path, _, halve = prov
                self.prov[node] = (path, [], halve if args[1] == 0 else False)
            return flat
        if target in _ODD_FUNCTIONS or target in (F.dropout, torch.dropout, "contiguous"):
            self.inherit(node, args[0])
            return self.rep(args[0])
        if target in _NON_ODD_FUNCTIONS:
            flat = self.rep(args[0])
            if flat is not None and flat.n_negated:
                raise self.fail(node, f"{_name(target)} is applied to features that flip sign "
                                      "under the mirror (it is not an odd function)",
                                "use an nn module (nn.ReLU()) so it can be switched, or "
                                "hidden='regular' so no hidden channel flips sign")
            self.inherit(node, args[0])
            return flat
        if target in _ARITHMETIC:
            return self.visit_arithmetic(node, _ARITHMETIC[target])
        if target in _REDUCTIONS:
            return self.visit_reduction(node)
        if target in _POOL_FUNCTIONS:
            return self.visit_pooling(node, _name(target), linear=_POOL_FUNCTIONS[target])
        return self.visit_movement(node)

    def visit_arithmetic(self, node: fx.Node, kind: str) -> Rep:
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        out_shape = tuple(node.meta["example_value"].shape)
        reps = []
        for arg in (a, b):
            value = self.value(arg)
            if isinstance(arg, fx.Node) and self.rep(arg) is not None:
                reps.append(self.broadcast(node, arg, out_shape))
            elif isinstance(value, torch.Tensor):
                reps.append(("constant", value.expand(out_shape)))
            else:
                reps.append(("scalar", value))
        features = [r for r in reps if isinstance(r, Rep)]
        if not features:
            return None  # type: ignore[return-value]
        if kind == "mul" and len(features) == 2:
            ra, rb = features
            if not (ra.perm == rb.perm).all():
                raise self.fail(node, "a product of two features whose mirror permutations differ",
                                "multiply tensors with the same joints layout")
            return Rep(ra.perm, ra.sign * rb.sign)
        if len(features) == 2:
            ra, rb = features
            if ra != rb:
                why = f"the {kind} in {self.where(node)}"
                for side, wanted in ((b, ra), (a, rb)):
                    if self.can_constrain(side) and self.rep(side).size == wanted.size:
                        self.require(side, wanted, why)
                raise self.fail(node, f"the {kind} combines tensors with different mirror Reps "
                                      f"({ra!r} and {rb!r})",
                                "add tensors with the same joints/coordinates layout")
            return ra
        rep = features[0]
        for other in reps:
            if isinstance(other, Rep):
                continue
            tag, value = other
            if kind in ("mul", "div"):
                if tag == "constant" and not torch.equal(_apply_flat(rep, value), value):
                    raise self.fail(node, "a tensor constant (parameter or buffer) that is not "
                                          "mirror-symmetric multiplies features",
                                    "make the constant symmetric under the mirror")
                continue
            if tag == "scalar" and (value == 0 or rep.n_negated == 0):
                continue
            if tag == "constant" and torch.equal(_apply_flat(rep, value), value):
                continue
            raise self.fail(node, f"{kind} of a constant that the mirror would change (it flips "
                                  "sign or swaps joints)",
                            "remove the constant offset or make it mirror-symmetric")
        return rep

    def broadcast(self, node: fx.Node, arg: fx.Node, out_shape: tuple[int, ...]) -> Rep:
        flat = self.rep(arg)
        shape = tuple(arg.meta["example_value"].shape)
        if shape == out_shape:
            return flat
        try:
            return forward_rep(lambda t: t.expand(out_shape), [arg.meta["example_value"]], [flat])
        except ValueError as error:
            raise self.fail(node, f"broadcasting {shape} to {out_shape}: {error}",
                            "broadcast along axes the mirror does not touch") from None

    def visit_reduction(self, node: fx.Node) -> Rep:
        """mean/sum over axes the mirror at most permutes (batch, time, joints without sign)."""
        x = node.args[0]
        flat = self.rep(x)
        shape = tuple(x.meta["example_value"].shape)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        ndim = len(shape)
        reduced = sorted(range(ndim) if dims is None else
                         {d % ndim for d in ((dims,) if isinstance(dims, int) else dims)})
        kept = [a for a in range(ndim) if a not in reduced]
        # list the kept axes last: a sign shared across axes is then placed on a kept one
        factors = factor_axes(shape, flat, [*reduced, *kept])
        flipping = [a for a in reduced if factors is not None and factors[a].n_negated]
        if factors is None or flipping:
            raise self.fail(node, f"the {_name(node.target)} over axes {reduced} mixes elements "
                                  "that flip sign under the mirror" if flipping else
                                  f"the {_name(node.target)} over axes {reduced} mixes axes the "
                                  "mirror acts on jointly",
                            "reduce over batch, time or joint axes only")
        new_axes = {}
        for axis in kept:
            new_axes[axis if keepdim else axis - sum(d < axis for d in reduced)] = factors[axis]
        return flat_rep(tuple(node.meta["example_value"].shape), new_axes)

    def visit_pooling(self, node: fx.Node, what: str, linear: bool) -> Rep:
        """Pooling along the trailing (time) axis of (N, C, L): channels keep their Rep."""
        x = node.args[0]
        channels = self.channel_rep(node, x, 1, what)
        if not linear and channels.n_negated:
            raise self.fail(node, f"{what} (max pooling) over channels that flip sign: "
                                  "max(-x) is not -max(x)",
                            "use average pooling, or hidden='regular' so no channel flips sign")
        self.inherit(node, x)
        return flat_rep(tuple(node.meta["example_value"].shape), {1: channels})

    def visit_movement(self, node: fx.Node) -> Any:
        args = node.args
        inputs = [self.value(a) for a in args]
        reps = [self.arg_rep(a) for a in args]
        if not any(_is_rep_like(r) for r in reps):
            return None
        kwargs = self.value(dict(node.kwargs))
        try:
            out = forward_rep(node.target, inputs, reps, kwargs=kwargs)
        except NotDataMovementError:
            raise self.fail(node, f"no rule for {_name(node.target)}",
                            "use ops symmetrize knows, or report the op") from None
        except ValueError as error:
            raise self.fail(node, str(error), "keep both joints of every mirror pair") from None
        tensor_args = [a for a in args if isinstance(a, fx.Node) and self.rep(a) is not None]
        if len(tensor_args) == 1 and isinstance(out, Rep) and tensor_args[0] in self.prov:
            path, chain, halve = self.prov[tensor_args[0]]
            self.prov[node] = (path, [*chain, node], halve)
        return tuple(out) if isinstance(out, list) else out

    def arg_rep(self, arg: Any) -> Any:
        if isinstance(arg, fx.Node):
            rep = self.rep(arg)
            value = arg.meta.get("example_value")
            if rep is None and isinstance(value, torch.Tensor) and value.is_floating_point():
                return Rep.trivial(value.numel())
            return rep
        if isinstance(arg, (list, tuple)):
            return [self.arg_rep(a) for a in arg]
        return None

    def inherit(self, node: fx.Node, source: Any) -> None:
        if isinstance(source, fx.Node) and source in self.prov:
            self.prov[node] = self.prov[source]

    def site(self, path: str, module: nn.Module, node: fx.Node) -> _Site:
        site = self.sites.get(path)
        if site is None:
            site = self.sites[path] = _Site(path, module, node)
        return site

    def record(self, node: fx.Node, module: nn.Module, path: str, rep_in: Rep,
               rep_out: Rep) -> None:
        site = self.site(path, module, node)
        if site.rep_in is not None and (site.rep_in != rep_in or site.rep_out != rep_out):
            raise self.fail(node, f"module '{path}' is called twice with different mirror Reps "
                                  f"({site.rep_in!r} and {rep_in!r} in)",
                            "use separate modules for inputs laid out differently")
        site.rep_in, site.rep_out = rep_in, rep_out


def _channel_axis(module: nn.Module) -> int:
    """The axis a channel-mixing layer mixes: 1 for Conv1d's (N, C, L), else the last."""
    return 1 if isinstance(module, nn.Conv1d) else -1


def _width(module: nn.Module) -> int:
    for attr in ("out_features", "out_channels", "hidden_size"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise ConversionError(f"invariant_at must name a Linear, Conv1d, LSTM or GRU, got a "
                          f"{type(module).__name__}")


def _check_path(modules: Mapping[str, nn.Module], path: str) -> None:
    if path not in modules or path == "":
        close = difflib.get_close_matches(path, [m for m in modules if m], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConversionError(f"no module named {path!r} in the model{hint}")


def _act_axis(node: fx.Node) -> int:
    value = node.meta["example_value"]
    return 1 if value.dim() == 3 and _feeds_conv(node) else -1


def _feeds_conv(node: fx.Node) -> bool:
    """Whether an activation sits on a channels-first (N, C, L) tensor: it follows a Conv1d or
    BatchNorm1d (directly or through element-wise modules)."""
    source = node.args[0]
    owner = node.graph.owning_module
    while isinstance(source, fx.Node) and source.op == "call_module":
        module = owner.get_submodule(str(source.target))
        if isinstance(module, (nn.Conv1d, nn.BatchNorm1d)):
            return True
        if not isinstance(module, (*_PASS_MODULES, *_POINTWISE_MODULES)):
            return False
        source = source.args[0]
    return False


def _apply_flat(rep: Rep, value: torch.Tensor) -> torch.Tensor:
    return rep.apply(value.reshape(-1)).reshape(value.shape)


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    return False


def _is_rep_like(rep: Any) -> bool:
    if isinstance(rep, Rep):
        return True
    return isinstance(rep, list) and any(_is_rep_like(r) for r in rep)


def _name(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


# --------------------------------------------------------------------------------- rewrite
def _rewrite(model: nn.Module, sites: dict[str, _Site], activation: str, weights: str,
             keep: set[str], report: ConversionReport) -> None:
    for path, site in sites.items():
        module = model.get_submodule(path)
        if path in keep or (site.rep_out is None and not site.switch):
            action = "kept (keep=)" if path in keep else "assumed equivariant"
            if path in keep or not isinstance(module, _POINTWISE_MODULES):
                report.rows.append((path, type(module).__name__, "-", "-", action))
            continue
        if site.rep_in is not None and site.rep_in.is_trivial and site.rep_out is not None \
                and site.rep_out.is_trivial:
            report.rows.append((path, type(module).__name__, _short(site.rep_in),
                                _short(site.rep_out), "kept (sees only invariant features)"))
            continue
        if isinstance(module, _POINTWISE_MODULES):
            if not site.switch:
                continue
            new: nn.Module
            if activation == "mixed" and site.rep_in is not None:
                new = ChiralActivation(site.rep_in, activation=module, odd=nn.Tanh(),
                                       dim=_act_axis(site.node))
                action = "activation: odd (tanh) on flipping channels"
            else:
                new = nn.Tanh()
                action = f"activation {type(module).__name__} -> Tanh"
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            cls = ChiralLSTM if isinstance(module, nn.LSTM) else ChiralGRU
            new = cls.from_dense(module, site.rep_in, site.rep_out)
            action = f"replaced by {cls.__name__}"
        elif isinstance(module, nn.BatchNorm1d):
            new = ChiralBatchNorm1d.from_dense(module, site.rep_in)
            action = "replaced by ChiralBatchNorm1d"
        elif isinstance(module, nn.Conv1d):
            new = ChiralConv1d.from_dense(module, site.rep_in, site.rep_out)
            action = "replaced by ChiralConv1d"
        elif isinstance(module, nn.Linear):
            new = ChiralLinear.from_dense(module, site.rep_in, site.rep_out)
            action = "replaced by ChiralLinear"
        else:  # pragma: no cover - the propagation only records the types above
            continue
        if weights == "reinit" and isinstance(new, ChiralModule):
            new.reset_parameters()
            action += " (re-initialised)"
        new.train(module.training)
        _set_submodule(model, path, new)
        report.rows.append((path, type(module).__name__, _short(site.rep_in),
                            _short(site.rep_out), action))


def _set_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, new)


def _short(rep: Rep | None) -> str:
    if rep is None:
        return "-"
    return f"{rep.size}: {rep.n_pairs}p {rep.n_negated}-"


# --------------------------------------------------------------------------------- check
def _check(model: nn.Module, spec: Spec, inputs: tuple[Any, ...]) -> float:
    """Max |f(T x) - T f(x)| in float64, eval mode.

    The model is switched to float64 and eval mode in place, then restored: every parameter and
    buffer gets its original tensor back, and every module its train flag. A deep copy of a
    large model would cost more than the two forward passes.
    """
    saved = [(t, t.data) for t in (*model.parameters(), *model.buffers())]
    modes = [(m, m.training) for m in model.modules()]
    xs = tuple(x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x
               for x in inputs)
    mirrored = tuple(spec.mirror_input(i, x) if isinstance(x, torch.Tensor) else x
                     for i, x in enumerate(xs))
    try:
        model.double().eval()
        with torch.no_grad():
            out, out_m = model(*xs), model(*mirrored)
    finally:
        for tensor, data in saved:
            tensor.data = data
        for module, mode in modes:
            module.training = mode
    outs = out if isinstance(out, (tuple, list)) else (out,)
    outs_m = out_m if isinstance(out_m, (tuple, list)) else (out_m,)
    error = 0.0
    for i, (y, y_m) in enumerate(zip(outs, outs_m, strict=True)):
        if isinstance(y, torch.Tensor):
            error = max(error, (spec.mirror_output(i, y) - y_m).abs().max().item())
    return error
