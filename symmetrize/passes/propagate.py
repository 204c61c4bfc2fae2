"""Propagate the mirror's action through a traced model, node by node.

Every tensor gets a *flat Rep* (see :mod:`symmetrize.flat_movement`), kept in
``node.meta["rep"]``. The per-op rules live in :mod:`symmetrize.rules`; this module holds what
they share: the hidden-Rep policy and its decisions, couplings (a residual add constrains the
decision of the layer that produced one side: the pass restarts with the constraint), learned
tensors that must be mirror-shared, and error messages that name the node and its source line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import fx, nn

from symmetrize.flat_movement import RESHAPES, factor_axes, flat_rep, pull_back_rep
from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton
from symmetrize.spec import Spec

__all__ = ["ConversionError", "Decision", "Propagation", "Site"]

HiddenPolicy = str | Callable[[str, int], Rep] | Mapping[str, Any]


def _is_fraction(value: Any) -> bool:
    """A real number (``0``, ``0.5``, ``np.float32(1/3)``), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class ConversionError(ValueError):
    """A model (or part of it) that cannot be converted as asked, with where and how to fix."""


@dataclass
class Decision:
    """The Rep chosen for a channel-mixing module's output (LSTM/GRU: its hidden state)."""

    path: str
    width: int
    rep: Rep
    constrained_by: str | None = None


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
    rep: Rep
    why: str


class Propagation:
    """One pass over the graph computing every tensor's flat Rep under the current decisions."""

    def __init__(self, gm: fx.GraphModule, modules: dict[str, nn.Module], spec: Spec,
                 decisions: dict[str, Decision], hidden: HiddenPolicy, fraction: float,
                 activation: str, assumed: set[str], averaged: set[str],
                 memo: dict[Any, tuple[Any, Any]] | None = None) -> None:
        self.gm, self.modules, self.spec = gm, modules, spec
        self.decisions, self.hidden, self.fraction = decisions, hidden, fraction
        self.activation = activation
        self.skeleton: Skeleton = spec.skeleton
        self.env: dict[fx.Node, Any] = {}
        # node -> (decision path, movement nodes since the decision, bidirectional halving)
        self.prov: dict[fx.Node, tuple[str, list[fx.Node], bool]] = {}
        self.sites: dict[str, Site] = {}
        self.shared: dict[str, SharedTensor] = {}
        self.switched_functions: dict[fx.Node, str] = {}
        #: decisions whose outputs meet in an add/sub (residual connections): one Rep each
        self.couplings = nx.Graph()
        self.n_input = 0
        self.assumed, self.averaged = assumed, averaged
        #: node -> (input Reps, result) of expensive rules, kept across restarts
        self.memo = {} if memo is None else memo
        self.notes: list[str] = []
        self.warnings: list[str] = []
        #: a decision was constrained during this pass: run it again
        self.dirty = False

    def run(self) -> dict[str, Site]:
        from symmetrize.rules import find_function_rule, find_module_rule
        for node in self.gm.graph.nodes:
            self.env[node] = self.visit(node, find_module_rule, find_function_rule)
            node.meta["rep"] = self.env[node]
        return self.sites

    def visit(self, node: fx.Node, find_module_rule: Callable[..., Any],
              find_function_rule: Callable[..., Any]) -> Any:
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
            path = str(node.target)
            module = self.modules[path]
            if path in self.assumed or path in self.averaged:
                return self.visit_opaque(node, module, path)
            rule = find_module_rule(module)
            if rule is None:
                raise self.fail(node, f"no rule for module '{path}' of type "
                                      f"{type(module).__name__}",
                                f"wrap it with average=['{path}'] (local symmetrisation), trust "
                                f"it with assume_equivariant=['{path}'], or register a rule with "
                                "symmetrize.rules.register_module_rule")
            return rule(self, node, module, path)
        if node.op == "call_method" and node.target in ("size", "dim", "numel"):
            return None
        if not _has_tensor(value):
            return None
        rule = find_function_rule(node.target)
        if rule is None:
            from symmetrize.rules.movement import movement_rule
            rule = movement_rule
        return rule(self, node)

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

    def visit_opaque(self, node: fx.Node, module: nn.Module, path: str) -> Rep:
        """A module trusted (``assume_equivariant``) or wrapped (``average``): one tensor in,
        one tensor out; the output Rep is the input's when the shapes agree, else decided on
        the last axis like a Linear's."""
        what = "assume_equivariant" if path in self.assumed else "average"
        x = node.args[0] if node.args else None
        out = node.meta["example_value"]
        if not isinstance(x, fx.Node) or not isinstance(out, torch.Tensor) or \
                self.rep(x) is None or len(node.args) + len(node.kwargs) != 1:
            raise self.fail(node, f"{what} module '{path}' must take one tensor with a known "
                                  "mirror Rep and return one tensor",
                            "apply it to a module with a single tensor input and output")
        flat = self.rep(x)
        in_shape = tuple(x.meta["example_value"].shape)
        site = self.site(path, module, node)
        if tuple(out.shape) == in_shape:
            rep_out = flat
        elif what == "average":
            factors = self.factors(node, x, -1, f"'{path}'")
            others = {a: r for a, r in factors.items() if a != len(in_shape) - 1}
            if len(out.shape) != len(in_shape) or tuple(out.shape[:-1]) != in_shape[:-1]:
                raise self.fail(node, f"average module '{path}' changes the shape {in_shape} -> "
                                      f"{tuple(out.shape)} beyond its last axis",
                                "average a module whose output differs from its input only in "
                                "the last (feature) axis")
            channel = self.decide(path, int(out.shape[-1]), factors[len(in_shape) - 1],
                                  joints_elsewhere=_moves(others))
            rep_out = flat_rep(tuple(out.shape), {**others, len(in_shape) - 1: channel})
            self.prov[node] = (path, [], False)
        else:
            raise self.fail(node, f"assume_equivariant module '{path}' maps shape {in_shape} to "
                                  f"{tuple(out.shape)}",
                            "assume a module whose output has its input's layout, or use "
                            f"average=['{path}']")
        site.rep_in, site.rep_out = flat, rep_out
        if tuple(out.shape) == in_shape:
            self.inherit(node, x)
        return rep_out

    # ----------------------------------------------------------------- helpers for rules
    def value(self, node: Any) -> Any:
        """The example value(s) behind a node (or a structure of nodes)."""
        return fx.node.map_arg(node, lambda n: n.meta.get("example_value"))

    def where(self, node: fx.Node) -> str:
        """``node 'name' in module 'path' (file:line)`` for messages."""
        source = node.meta.get("source")
        module = node.meta.get("module")
        return (f"node '{node.name}'" + (f" in module '{module}'" if module else "")
                + (f" ({source})" if source else ""))

    def fail(self, node: fx.Node, problem: str, fix: str) -> ConversionError:
        return ConversionError(f"{self.where(node)}: {problem}. Fix: {fix}")

    def rep(self, node: Any) -> Any:
        return self.env.get(node) if isinstance(node, fx.Node) else None

    def decide(self, path: str, width: int, rep_in: Rep, joints_elsewhere: bool = False) -> Rep:
        """The output Rep of channel-mixing module ``path`` (a decision kept across restarts)."""
        decision = self.decisions.get(path)
        if decision is None:
            rep = self.policy(path, width, joints_elsewhere)
            decision = self.decisions[path] = Decision(path, width, rep)
        if rep_in.is_trivial and decision.constrained_by is None:
            return Rep.trivial(width)  # after the invariance layer: nothing left to mirror
        return decision.rep

    def policy(self, path: str, width: int, joints_elsewhere: bool = False) -> Rep:
        """The hidden policy's Rep for ``width`` channels of ``path``.

        ``joints_elsewhere``: the mirror swaps joints on another axis of this tensor (ST-GCN's
        ``(N, C, T, V)``), so the channels hold one joint's features: the skeleton layout then
        only flips the sign of a fraction of them.
        """
        choice: Any = self.hidden
        if isinstance(choice, Mapping):
            choice = choice.get(path, "skeleton")
        if isinstance(choice, Rep):
            rep = choice
        elif callable(choice):
            rep = choice(path, width)
        elif choice == "regular":
            rep = Rep.regular(width)
        elif choice == "skeleton" or _is_fraction(choice):
            rep = self.skeleton_layout(path, width, self.fraction_for(path), joints_elsewhere)
        else:
            raise ConversionError(f"hidden policy for '{path}' must be 'skeleton', 'regular', a "
                                  f"fraction, a Rep or a callable, got {choice!r}")
        if not isinstance(rep, Rep) or rep.size != width:
            raise ConversionError(f"hidden policy for '{path}' gave {rep!r}, not a Rep of size "
                                  f"{width}")
        return rep

    def fraction_for(self, path: str) -> float:
        """The negated fraction of ``path``'s skeleton layout (per layer, else the default)."""
        choice = self.hidden.get(path) if isinstance(self.hidden, Mapping) else None
        return float(choice) if _is_fraction(choice) else self.fraction

    def skeleton_layout(self, path: str, width: int, fraction: float,
                        joints_elsewhere: bool) -> Rep:
        if joints_elsewhere:
            return sign_layout(width, fraction)
        joints = len(self.skeleton)
        dims, rest = divmod(width, joints)
        if dims == 0:
            return Rep.regular(width)
        rep = Rep.skeleton_hidden(self.skeleton, dims, round(dims * fraction))
        if rest:
            rep = rep + Rep.trivial(rest)
            self.warn(f"{path}: width {width} is not a multiple of {joints} joints: "
                      f"{joints} x {dims} skeleton channels + {rest} invariant ones")
        return rep

    def note(self, text: str) -> None:
        """Add a fact to the report's notes (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def warn(self, text: str) -> None:
        """Add a warning to the report (once)."""
        if text not in self.warnings:
            self.warnings.append(text)

    def require(self, node: fx.Node, wanted: Rep, why: str) -> None:
        """Make ``node``'s flat Rep equal ``wanted``, constraining its decision if it is free.

        A constrained decision takes effect at once for the rest of this pass (``node`` gets
        ``wanted``) and marks the pass *dirty*: the caller goes on as if the Reps matched, and
        the pass is run again from the inputs with the decision fixed, until one pass ends
        clean. So constraints from a whole network settle in two or three passes.
        """
        have = self.env.get(node)
        if have == wanted:
            return
        if self.is_constant(node):  # computed from no input: fine if symmetric under wanted
            self.check_constant(node, wanted, why)
            self.env[node] = wanted
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
                    self.dirty = True
                    self.env[node] = wanted
                    return
        raise self.fail(node, f"its Rep {have!r} differs from the Rep required by {why} "
                              f"({wanted!r})",
                        "make both sides carry the same joints/coordinates layout, or choose "
                        "the hidden Rep of the layer that produces it with hidden={path: Rep}")

    def remember(self, key: Any, inputs: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, or its result for ``key`` (a node, or a description of an op) from
        this or an earlier pass, when the input Reps were equal."""
        hit = self.memo.get(key)
        if hit is not None and _same_reps(hit[0], inputs):
            return hit[1]
        result = compute()
        self.memo[key] = (inputs, result)
        return result

    def couple(self, nodes: list[Any], where: fx.Node) -> None:
        """Record that the decisions behind ``nodes`` meet at ``where`` (for the report)."""
        paths = [self.prov[n][0] for n in nodes if isinstance(n, fx.Node) and n in self.prov]
        for a, b in zip(paths, paths[1:]):
            if a != b:
                self.couplings.add_edge(a, b, node=where.name)

    def coupled_groups(self) -> list[list[str]]:
        """Sets of decisions tied together by couplings, each sorted, largest first."""
        groups = [sorted(c) for c in nx.connected_components(self.couplings)]
        return sorted(groups, key=lambda g: (-len(g), g))

    def can_constrain(self, node: Any) -> bool:
        prov = self.prov.get(node) if isinstance(node, fx.Node) else None
        return prov is not None and self.decisions[prov[0]].constrained_by is None

    def pull_back(self, node: fx.Node, chain: list[fx.Node], wanted: Rep, path: str,
                  halve: bool) -> Rep | None:
        """The decision's channel Rep that would give ``node`` the flat Rep ``wanted``."""
        rep = wanted
        for step in reversed(chain):
            if step.target in RESHAPES:
                continue  # the flat Rep is unchanged by a shape-only op
            source = step.args[0]
            shape = tuple(source.meta["example_value"].shape)
            args = self.value(tuple(step.args[1:]))
            kwargs = self.value(dict(step.kwargs))
            try:
                rep = pull_back_rep(step.target, shape, rep, args=args, kwargs=kwargs)
            except ValueError:
                return None
        site = self.sites.get(path)
        origin = chain[0].args[0] if chain else node
        shape = tuple(origin.meta["example_value"].shape)
        axis = site.extra.get("axis", -1) if site else -1
        axis = axis % len(shape)
        factors = factor_axes(shape, rep, [*(a for a in range(len(shape)) if a != axis), axis])
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

    def factors(self, node: fx.Node, arg: fx.Node, axis: int, what: str) -> dict[int, Rep]:
        """Per-axis Reps of ``arg`` (keys 0..ndim-1), any global sign on ``axis``."""
        flat = self.rep(arg)
        if flat is None:
            raise self.fail(node, f"the input of {what} carries no known mirror Rep",
                            "check the Spec covers every tensor input")
        shape = tuple(arg.meta["example_value"].shape)
        axis = axis % len(shape)
        found = factor_axes(shape, flat, [*(a for a in range(len(shape)) if a != axis), axis])
        if found is None:
            raise self.fail(node, f"the mirror does not act axis by axis on {what}'s input of "
                                  f"shape {shape} (it moves elements across axes)",
                            "lay the input out so joints and coordinates are axes (or groups "
                            "of one axis) of their own")
        return found

    def channel_rep(self, node: fx.Node, arg: fx.Node, axis: int, what: str) -> Rep:
        """The Rep of ``arg``'s channel ``axis``, which must be the only axis the mirror acts on."""
        factors = self.factors(node, arg, axis, what)
        shape = tuple(arg.meta["example_value"].shape)
        axis = axis % len(shape)
        if any(not r.is_trivial for a, r in factors.items() if a != axis):
            raise self.fail(node, f"the mirror acts on {what}'s input of shape {shape} along "
                                  f"axes other than the channel axis {axis}",
                            "lay the input out so joints and coordinates are on the channel axis")
        return factors[axis]

    def inherit(self, node: fx.Node, source: Any) -> None:
        if isinstance(source, fx.Node) and source in self.prov:
            self.prov[node] = self.prov[source]

    def site(self, path: str, module: nn.Module, node: fx.Node) -> Site:
        site = self.sites.get(path)
        if site is None:
            site = self.sites[path] = Site(path, module, node)
        return site

    def record(self, node: fx.Node, module: nn.Module, path: str, rep_in: Rep, rep_out: Rep,
               build: Callable[[nn.Module, Site], tuple[nn.Module, str]] | None = None,
               **extra: Any) -> Site:
        site = self.site(path, module, node)
        if site.rep_in is not None and not self.dirty and (site.rep_in != rep_in or
                                                           site.rep_out != rep_out):
            raise self.fail(node, f"module '{path}' is called twice with different mirror Reps "
                                  f"({site.rep_in!r} and {rep_in!r} in)",
                            "use separate modules for inputs laid out differently")
        site.rep_in, site.rep_out, site.build = rep_in, rep_out, build
        site.extra.update(extra)
        return site

    def share(self, node: fx.Node, rep: Rep, why: str) -> None:
        """Learned tensor or buffer ``node`` (a ``get_attr``) must equal its mirror image under
        the flat ``rep``: a parameter becomes mirror-shared, a buffer must already be."""
        target = str(node.target)
        value = node.meta.get("example_value")
        if not isinstance(value, torch.Tensor):
            return
        if self.is_parameter(target):
            self.share_parameter(node, target, rep, why)
            return
        self.check_constant(node, rep, why)

    def share_parameter(self, node: fx.Node, target: str, rep: Rep, why: str) -> None:
        """Parameter ``target`` (its attribute path), used at ``node``, becomes mirror-shared
        under the flat ``rep``."""
        known = self.shared.get(target)
        if known is not None and known.rep != rep:
            raise self.fail(node, f"parameter '{target}' is used by {known.why} and by {why}, "
                                  "which need different mirror symmetries",
                            "use separate parameters for the two uses")
        self.shared[target] = SharedTensor(target, rep, why)

    def is_constant(self, node: fx.Node) -> bool:
        """Whether ``node``'s values come from no forward input (parameters, buffers, factories
        such as ``torch.zeros(x.shape[0], h)``: sizes and dtypes read off inputs do not count)."""
        def is_input(n: fx.Node) -> bool:
            return n.op == "placeholder" and isinstance(n.meta.get("example_value"), torch.Tensor)

        # x.shape[0], x.dtype: read off an input, not its values
        return not any_ancestor(node, is_input, skip=lambda n: n.meta.get("size_derived", False))

    def is_parameter(self, target: str) -> bool:
        """Whether ``target`` (a ``get_attr`` path) is a parameter of the user's model."""
        owner_path, _, name = target.rpartition(".")
        owner = self.modules.get(owner_path)
        return owner is not None and name in owner._parameters

    def check_constant(self, node: fx.Node, rep: Rep, why: str) -> None:
        """A constant tensor must equal its mirror image under the flat ``rep``."""
        value = node.meta.get("example_value")
        target = str(node.target) if node.op == "get_attr" else node.name
        exact = value.detach().to(torch.float64)
        mirrored = rep.apply(exact.reshape(-1)).reshape(exact.shape)
        scale = float(exact.abs().max()) if exact.numel() else 0.0
        if torch.allclose(mirrored, exact, rtol=1e-6, atol=1e-6 * scale):
            return
        bad = int((mirrored - exact).abs().reshape(-1).argmax())
        index = tuple(int(i) for i in np.unravel_index(bad, tuple(exact.shape)))
        have, need = exact.reshape(-1)[bad].item(), mirrored.reshape(-1)[bad].item()
        raise self.fail(node, f"the constant '{target}' (used by {why}) is not mirror-symmetric:"
                              f" entry {index} is {have:.6g} but its mirror image needs {need:.6g}",
                        "make the constant (adjacency, mask, offset) symmetric under the "
                        "left/right swap, e.g. build it from a mirror-symmetric edge list")


def sign_layout(width: int, fraction: float) -> Rep:
    """Channels that stay in place, the first ``round(width * fraction)`` flipping sign: one
    joint's features when the joints sit on an axis of their own."""
    return Rep(np.arange(width), np.where(np.arange(width) < round(width * fraction), -1, 1))


def any_ancestor(node: fx.Node, predicate: Callable[[fx.Node], bool],
                 skip: Callable[[fx.Node], bool] = lambda n: False) -> bool:
    """Whether ``node`` or a node it is computed from satisfies ``predicate``; nodes for which
    ``skip`` holds are neither tested nor walked through."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current in seen or skip(current):
            continue
        seen.add(current)
        if predicate(current):
            return True
        todo.extend(current.all_input_nodes)
    return False


def check_path(modules: Mapping[str, nn.Module], path: str) -> None:
    """Raise if ``path`` names no sub-module, suggesting close names."""
    if path not in modules or path == "":
        close = difflib.get_close_matches(path, [m for m in modules if m], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConversionError(f"no module named {path!r} in the model{hint}")


def _moves(factors: Mapping[int, Rep]) -> bool:
    """Whether any of these axis Reps moves elements (a non-identity permutation)."""
    return any(r.n_pairs for r in factors.values())


def _same_reps(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_reps(x, y) for x, y in zip(a, b))
    return a == b if isinstance(a, Rep) and isinstance(b, Rep) else a is b


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    return False
