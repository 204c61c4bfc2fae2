"""The vocabulary rules share: the propagation context they read and write, the sites they
record, and the error they raise.

One :class:`Context` is one pass over the traced graph: it holds every node's
:class:`~symmetrize.action.Action` (``None`` for values the mirror does not touch), the hidden-Rep
decisions of channel-mixing layers, the provenance of each value (which decision it comes from,
through which data movement), and what the rewrite will do (sites, mirror-shared tensors,
switched functional activations). Rules call its helpers; the driver in
:mod:`symmetrize.passes.propagate` walks the graph and :mod:`symmetrize.passes.decide` repeats
passes until the decisions settle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import fx, nn

from symmetrize.action import Action
from symmetrize.rep import Rep
from symmetrize.rules.hidden_policy import HiddenPolicy, choose
from symmetrize.rules.records import (
    ConversionError,
    Decision,
    Provenance,
    SharedTensor,
    Site,
    Step,
)
from symmetrize.spec import Spec

__all__ = ["Context", "ConversionError", "Decision", "Provenance", "SharedTensor", "Site", "Step",
           "any_ancestor"]

#: ``rule(context, user node, constant node, wanted action, why)``
ConstantRule = Callable[..., None]


class Context:
    """One propagation pass: Actions of every node under the current decisions."""

    def __init__(self, gm: fx.GraphModule, modules: dict[str, nn.Module], spec: Spec,
                 decisions: dict[str, Decision], hidden: HiddenPolicy, fraction: float | None,
                 activation: str, assumed: set[str], averaged: set[str],
                 constant_rule: ConstantRule, memo: dict[Any, Any] | None = None,
                 marks: dict[str, str] | None = None, explore: bool = False) -> None:
        self.gm, self.modules, self.spec = gm, modules, spec
        #: how a constant meets a required action (share a learned tensor, check a buffer)
        self.constant_rule = constant_rule
        self.decisions, self.hidden, self.fraction = decisions, hidden, fraction
        self.activation = activation
        self.assumed, self.averaged = assumed, averaged
        self.env: dict[fx.Node, Any] = {}
        self.prov: dict[fx.Node, Provenance] = {}
        self.sites: dict[str, Site] = {}
        self.shared: dict[str, SharedTensor] = {}
        self.switched_functions: dict[fx.Node, str] = {}
        #: decisions whose outputs meet in an add/sub (residual connections)
        self.couplings = nx.Graph()
        self.memo = {} if memo is None else memo
        self.notes: list[str] = []
        self.warnings: list[str] = []
        #: a decision was constrained during this pass: run it again
        self.dirty = False
        #: a decision changed for good (an automatic layout became regular): derived
        #: constraints are recomputed from scratch
        self.sticky = False
        #: decision path -> why its channels must not flip sign (kept across passes)
        self.marks = {} if marks is None else marks
        #: exploring: every automatic layout is regular pairs, to find the marks in one go
        self.explore = explore
        #: decisions made regular during this pass, in order
        self.flipped: list[str] = []

    # ----------------------------------------------------------------- reading nodes
    def action(self, node: Any) -> Any:
        """The Action of a node (a tuple for tuple values, ``None`` for untouched ones)."""
        return self.env.get(node) if isinstance(node, fx.Node) else None

    def value(self, node: Any) -> Any:
        """The example value(s) behind a node or a structure of nodes (shape-only stand-ins
        for tensors computed from the inputs)."""
        return fx.node.map_arg(node, lambda n: n.meta.get("example_value"))

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(node.meta["example_value"].shape)

    def where(self, node: fx.Node) -> str:
        """``node 'name' in module 'path' (file:line)`` for messages."""
        source = node.meta.get("source")
        module = node.meta.get("module")
        return (f"node '{node.name}'" + (f" in module '{module}'" if module else "")
                + (f" ({source})" if source else ""))

    def fail(self, node: fx.Node, problem: str, fix: str) -> ConversionError:
        return ConversionError(f"{self.where(node)}: {problem}. Fix: {fix}")

    def axes(self, node: fx.Node, arg: fx.Node, axis: int, what: str) -> dict[int, Rep]:
        """A Rep for every axis of ``arg`` (global sign folded into ``axis``)."""
        action = self.action(arg)
        if not isinstance(action, Action):
            raise self.fail(node, f"the input of {what} carries no known mirror action",
                            "check the Spec covers every tensor input")
        found = action.axes(sign_on=axis)
        if found is None:
            raise self.fail(node, f"the mirror does not act axis by axis on {what}'s input of "
                                  f"shape {action.shape} (it mixes axes {_groups_text(action)})",
                            "lay the input out so joints and coordinates are axes (or groups "
                            "of one axis) of their own")
        return found

    def channel(self, node: fx.Node, arg: fx.Node, axis: int, what: str) -> Rep:
        """The Rep of ``arg``'s ``axis``, which must be the only axis the mirror acts on."""
        found = self.axes(node, arg, axis, what)
        axis = axis % len(found)
        if any(not r.is_trivial for a, r in found.items() if a != axis):
            raise self.fail(node, f"the mirror acts on {what}'s input of shape "
                                  f"{self.shape(arg)} along axes other than the channel axis "
                                  f"{axis}",
                            "lay the input out so joints and coordinates are on the channel axis")
        return found[axis]

    # ----------------------------------------------------------------- decisions
    def decide(self, path: str, width: int, rep_in: Rep, joints_elsewhere: bool = False) -> Rep:
        """The output Rep of channel-mixing module ``path`` (a decision kept across passes)."""
        decision = self.decisions.get(path)
        if decision is None:
            rep, auto, reason = choose(self.hidden, path, width, self.spec.skeleton,
                                       self.fraction, joints_elsewhere, self.warn)
            decision = self.decisions[path] = Decision(path, width, rep, auto=auto,
                                                       reason=reason)
            if auto and (self.explore or path in self.marks):
                decision.rep = Rep.regular(width)
                decision.unsigned_only = decision.sticky = True
                if path in self.marks:
                    decision.constrained_by = decision.reason = self.marks[path]
        if rep_in.is_trivial and decision.constrained_by is None:
            return Rep.trivial(width)  # after the invariance layer: nothing left to mirror
        return decision.rep

    def forbid_signs(self, node: Any, why: str,
                     need: str = "needs channels that do not flip sign") -> bool:
        """``node`` carries what an op cannot take: negated channels (LayerNorm, softmax, GELU,
        ...) or mirror twins in an order it splits (a slice). When they come from an automatic
        hidden layout, that layer switches to regular pairs (adjacent twins, no negated
        channel) and the pass restarts: returns True. Otherwise returns False and the caller
        raises its error."""
        prov = self.prov.get(node) if isinstance(node, fx.Node) else None
        if prov is None:
            return False
        decision = self.decisions[prov.path]
        self.mark_unsigned(node, why, need)
        if decision.auto and decision.unsigned_only and self.dirty:
            return True  # already regular: the signs are stale, the pass runs again
        if not decision.auto or decision.constrained_by is not None:
            return False
        decision.rep = Rep.regular(decision.width)
        decision.constrained_by = decision.reason = f"regular pairs: {why} {need}"
        decision.sticky = decision.unsigned_only = True
        self.sticky = self.dirty = True
        self.flipped.append(prov.path)
        return True

    def refreshed(self, node: fx.Node) -> Action | None:
        """``node``'s action recomputed from its decision's current Rep (after a change in this
        pass), through the movement since; ``None`` when it cannot be."""
        prov = self.prov.get(node)
        site = self.sites.get(prov.path) if prov is not None else None
        if site is None or "shape" not in site.extra:
            return None
        decision = self.decisions[prov.path]
        shape = site.extra["shape"]
        axis = site.extra.get("axis", -1) % len(shape)
        channel = decision.rep.repeat(2) if prov.halve else decision.rep
        if channel.size != shape[axis]:
            return None
        action: Action | None = Action.from_axes(shape, {**site.extra.get("others", {}),
                                                         axis: channel})
        for step in prov.steps:
            action = step.run(action) if action is not None else None
        return action if action is not None and action.shape == self.shape(node) else None

    def mark_unsigned(self, node: Any, why: str,
                      need: str = "needs channels that do not flip sign") -> None:
        """Record that the automatic layout behind ``node`` must have no negated channel (an op
        that cannot take them reads it), whether or not it has some in this pass."""
        prov = self.prov.get(node) if isinstance(node, fx.Node) else None
        if prov is not None and self.decisions[prov.path].auto:
            self.marks.setdefault(prov.path, f"regular pairs: {why} {need}")

    def require(self, node: Any, wanted: Action, why: str) -> None:
        """Make ``node``'s action equal ``wanted``: a constant must be symmetric under it (a
        learned one becomes mirror-shared), a free decision behind ``node`` is constrained
        (the pass goes on as if they matched, and is run again)."""
        if not isinstance(node, fx.Node):
            return
        have = self.env.get(node)
        if have == wanted:
            return
        if self.is_constant(node):
            self.constant_rule(self, node, node, wanted, why)
            self.env[node] = wanted
            return
        prov = self.prov.get(node)
        if prov is not None:
            decision = self.decisions[prov.path]
            rep = self.pull_back(node, prov, wanted)
            if rep is not None and rep.size == decision.width and decision.accepts(rep):
                decision.rep = rep
                decision.constrained_by = why
                decision.unsigned_only = False
                decision.reason = f"fixed by {why}"
                self.dirty = True
                self.env[node] = wanted
                return
        raise self.fail(node, f"its mirror action {have} differs from the one required by "
                              f"{why} ({wanted})",
                        "make both sides carry the same joints/coordinates layout, or choose "
                        "the hidden Rep of the layer that produces it with hidden={path: Rep}")

    def can_constrain(self, node: Any) -> bool:
        prov = self.prov.get(node) if isinstance(node, fx.Node) else None
        if prov is None:
            return False
        decision = self.decisions[prov.path]
        return decision.constrained_by is None or decision.unsigned_only

    def pull_back(self, node: fx.Node, prov: Provenance, wanted: Action) -> Rep | None:
        """The decision's channel Rep that would give ``node`` the action ``wanted``."""
        action: Action | None = wanted
        for step in reversed(prov.steps):
            action = step.run_back(action)
            if action is None:
                return None
        site = self.sites.get(prov.path)
        if site is None or action is None:
            return None
        axis = site.extra.get("axis", -1) % action.ndim
        channel = action.axis(axis, with_sign=True)
        others = site.extra.get("others")
        if channel is None or others is None:
            return None
        if Action.from_axes(action.shape, {**others, axis: channel}) != action:
            return None
        if prov.halve:
            half = channel.size // 2
            if not (channel.perm[:half] < half).all():
                return None
            first = Rep._trusted(channel.perm[:half], channel.sign[:half])
            if first.repeat(2) != channel:
                return None
            channel = first
        return channel

    # ----------------------------------------------------------------- provenance
    def inherit(self, node: fx.Node, source: Any) -> None:
        """``node`` carries the same decision as ``source`` (element-wise ops)."""
        if isinstance(source, fx.Node) and source in self.prov:
            self.prov[node] = self.prov[source]

    def moved(self, node: fx.Node, source: fx.Node, step: Step) -> None:
        """``node`` is ``source`` moved by ``step`` (a reshape, permute, slice, ...)."""
        prov = self.prov.get(source)
        if prov is not None:
            self.prov[node] = Provenance(prov.path, (*prov.steps, step), prov.halve)

    def origin(self, node: fx.Node, path: str, halve: bool = False) -> None:
        """``node`` is the output of decision ``path``."""
        self.prov[node] = Provenance(path, (), halve)

    def channel_axes(self, node: fx.Node) -> list[int]:
        """Axes of ``node`` that the channel axis of its decision's layer was moved into."""
        prov = self.prov.get(node)
        site = self.sites.get(prov.path) if prov is not None else None
        if site is None or "shape" not in site.extra:
            return []
        shape = site.extra["shape"]
        axis = site.extra.get("axis", -1) % len(shape)
        width = shape[axis]
        marker = Rep._trusted(np.arange(width), np.where(np.arange(width) == 0, -1, 1))
        probe = Action.from_axes(shape, {axis: marker})
        for step in prov.steps:
            probe = step.run(probe)
            if probe is None:
                return []
        return probe.acting_axes()

    def couple(self, nodes: list[Any], where: fx.Node) -> None:
        """Record that the decisions behind ``nodes`` meet at ``where`` (for the report)."""
        paths = [self.prov[n].path for n in nodes if isinstance(n, fx.Node) and n in self.prov]
        for a, b in zip(paths, paths[1:]):
            if a != b:
                self.couplings.add_edge(a, b, node=where.name)

    def coupled_groups(self) -> list[list[str]]:
        """Sets of decisions tied together by couplings, each sorted, largest first."""
        groups = [sorted(c) for c in nx.connected_components(self.couplings)]
        return sorted(groups, key=lambda g: (-len(g), g))

    # ----------------------------------------------------------------- sites
    def site(self, path: str, module: nn.Module, node: fx.Node) -> Site:
        site = self.sites.get(path)
        if site is None:
            site = self.sites[path] = Site(path, module, node)
        return site

    def record(self, node: fx.Node, module: nn.Module, path: str, rep_in: Rep, rep_out: Rep,
               build: Callable[[nn.Module, Site], tuple[nn.Module, str]] | None = None,
               **extra: Any) -> Site:
        """The module at ``path`` maps ``rep_in`` to ``rep_out``; a second call of the same
        module must agree (else the module is used for two different layouts)."""
        site = self.site(path, module, node)
        if site.rep_in is not None and not self.dirty and (site.rep_in != rep_in or
                                                           site.rep_out != rep_out):
            first = site.node
            raise self.fail(node, f"module '{path}' is called at two places with different "
                                  f"mirror Reps: at {self.where(first)} with {site.rep_in} -> "
                                  f"{site.rep_out}, here with {rep_in} -> {rep_out}",
                            "use separate module instances for inputs laid out differently "
                            "(a shared instance can only have one pair of Reps)")
        site.rep_in, site.rep_out, site.build = rep_in, rep_out, build
        site.extra.update(extra)
        return site

    # ----------------------------------------------------------------- report
    def note(self, text: str) -> None:
        """Add a fact to the report's notes (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def warn(self, text: str) -> None:
        """Add a warning to the report (once)."""
        if text not in self.warnings:
            self.warnings.append(text)

    def remember(self, key: Any, inputs: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, or its result for ``key`` from this or an earlier pass when the
        input actions were equal."""
        hit = self.memo.get(key)
        if hit is not None and hit[0] == inputs:
            return hit[1]
        result = compute()
        self.memo[key] = (inputs, result)
        return result

    # ----------------------------------------------------------------- constants
    def is_constant(self, node: fx.Node) -> bool:
        """Whether ``node``'s values come from no forward input (parameters, buffers, factories
        such as ``torch.zeros(x.shape[0], h)``: sizes and dtypes read off inputs do not count)."""
        cache = self.memo.setdefault("constant", {})
        found = cache.get(node)
        if found is None:
            def is_input(n: fx.Node) -> bool:
                return n.op == "placeholder" and isinstance(n.meta.get("example_value"),
                                                            torch.Tensor)

            found = cache[node] = not any_ancestor(
                node, is_input, skip=lambda n: n.meta.get("size_derived", False))
        return found

    def is_parameter(self, target: str) -> bool:
        """Whether ``target`` (a ``get_attr`` path) is a parameter of the user's model."""
        owner_path, _, name = target.rpartition(".")
        owner = self.modules.get(owner_path)
        return owner is not None and name in owner._parameters


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


def _groups_text(action: Action) -> str:
    return ", ".join(f"{f}..{s - 1}" for f, s, _ in action.groups if s - f > 1)
