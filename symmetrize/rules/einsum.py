"""Rules for ``torch.einsum`` and matmul: graph convolutions over a skeleton adjacency,
contractions of features with features (adaptive graphs, attention scores).

Each subscript letter gets one Rep, read from the feature operands (the per-axis factors of
their flat Reps). A letter that only a constant operand has (the ``w`` of ST-GCN's
``'nkctv,kvw->nctw'``) is guessed: the Rep of a same-sized letter of that operand, else
trivial; the guess is verified numerically on random features. Constant operands must equal
their mirror image: a buffer (the adjacency) is checked, a learned tensor (edge importance)
becomes mirror-shared. A letter summed against a constant must not flip sign; when it does
because of the hidden layout, the decision of the layer producing the operand is constrained
(the pass restarts).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import fx

from symmetrize.flat_movement import factor_axes, flat_rep
from symmetrize.passes.propagate import sign_layout
from symmetrize.rep import Rep
from symmetrize.rules import register_function_rule
from symmetrize.rules.arithmetic import require_constant

if TYPE_CHECKING:
    from symmetrize.passes.propagate import Propagation


@register_function_rule(torch.einsum)
def einsum(ctx: Propagation, node: fx.Node) -> Rep | None:
    equation = node.args[0]
    operands = list(node.args[1:])
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    return contraction(ctx, node, equation, operands)


@register_function_rule(torch.matmul, operator.matmul, "matmul", torch.bmm, torch.mm, "bmm", "mm")
def matmul(ctx: Propagation, node: fx.Node) -> Rep | None:
    """``a @ b`` as the einsum it is (batch axes equal, or one side a plain matrix)."""
    a, b = node.args[0], node.args[1]
    sa = tuple(ctx.value(a).shape) if isinstance(a, fx.Node) else ()
    sb = tuple(ctx.value(b).shape) if isinstance(b, fx.Node) else ()
    if len(sa) < 2 or len(sb) < 2 or (len(sa) > 2 and len(sb) > 2 and
                                      (len(sa) != len(sb) or sa[:-2] != sb[:-2])):
        raise ctx.fail(node, f"a matmul of shapes {sa} and {sb} (a vector, or broadcast batch "
                             "axes) has no rule", "expand both to the same batch shape first, or "
                                                  "write it as torch.einsum")
    batch = "abcdefgh"[: max(len(sa), len(sb)) - 2]
    left = (batch if len(sa) > 2 else "") + "ik"
    right = (batch if len(sb) > 2 else "") + "kj"
    return contraction(ctx, node, f"{left},{right}->{batch}ij", [a, b])


def contraction(ctx: Propagation, node: fx.Node, equation: Any,
                operands: list[Any]) -> Rep | None:
    """The rule shared by einsum and matmul."""
    if not isinstance(equation, str) or "->" not in equation or "..." in equation:
        raise ctx.fail(node, f"einsum {equation!r}: only explicit equations ('ab,bc->ac') "
                             "without '...' have a rule", "write the output subscripts out")
    inputs, output = equation.replace(" ", "").split("->")
    subscripts = inputs.split(",")
    features = [i for i, op in enumerate(operands) if ctx.rep(op) is not None]
    if not features:
        return None
    letters: dict[str, Rep] = {}
    sign = np.ones(1, dtype=np.int64)  # global sign of the product
    for i in features:
        op = operands[i]
        shape = tuple(op.meta["example_value"].shape)
        found = factor_axes(shape, ctx.rep(op), list(range(len(shape))))
        if found is None:
            raise ctx.fail(node, f"einsum operand {i} ({op.name}) has a mirror action that does "
                                 "not act axis by axis", "lay joints and coordinates on axes")
        for axis, letter in enumerate(subscripts[i]):
            rep = found[axis]
            known = letters.get(letter)
            if known is None:
                letters[letter] = rep
            elif not np.array_equal(known.perm, rep.perm):
                raise ctx.fail(node, f"einsum letter '{letter}' is permuted differently by the "
                                     "mirror in two operands", "contract matching layouts")
            else:
                letters[letter] = Rep(rep.perm, known.sign * rep.sign)
    try:
        _fix_contracted_signs(ctx, node, operands, subscripts, output, features, letters)
    except _Resolved:
        return contraction(ctx, node, equation, operands)
    constants = [i for i in range(len(operands)) if i not in features]
    for i in constants:
        for letter, size in zip(subscripts[i], operands[i].meta["example_value"].shape):
            if letter not in letters:
                letters[letter] = _guess(letters, subscripts[i], operands[i], int(size))
    for i in constants:  # constants carry permutations, never signs
        shape = tuple(operands[i].meta["example_value"].shape)
        rep = flat_rep(shape, {a: letters[c].unsigned() for a, c in enumerate(subscripts[i])})
        require_constant(ctx, node, operands[i], rep, shape, f"the einsum in {ctx.where(node)}")
    out_shape = tuple(node.meta["example_value"].shape)
    summed = [c for c in set("".join(subscripts)) - set(output) if letters[c].n_negated]
    for c in summed:  # a summed letter's sign is a constant +-1 (checked above); move it out
        sign = sign * int(letters[c].sign[0])
    out_axes = {a: letters[c] for a, c in enumerate(output)}
    if sign[0] < 0 and output:
        out_axes[0] = Rep(out_axes[0].perm, -out_axes[0].sign)
    out = flat_rep(out_shape, out_axes)
    ctx.remember(node, [ctx.rep(operands[i]) for i in features],
                 lambda: _verify(ctx, node, equation, operands, features, out))
    return out


def _fix_contracted_signs(ctx: Propagation, node: fx.Node, operands: list[Any],
                          subscripts: list[str], output: str, features: list[int],
                          letters: dict[str, Rep]) -> None:
    """A letter summed against a constant must carry one sign throughout; else constrain the
    decision behind the feature so that letter is unsigned."""
    constant_letters = {c for i, s in enumerate(subscripts) if i not in features for c in s}
    bad = [c for c, rep in letters.items() if c not in output and c in constant_letters
           and len(set(rep.sign.tolist())) > 1]
    if not bad:
        return
    fixed = False
    for i in features:
        op = operands[i]
        if not any(c in subscripts[i] for c in bad):
            continue
        shape = tuple(op.meta["example_value"].shape)
        wanted = _unsigned_along(ctx, op, shape, [subscripts[i].index(c) for c in bad
                                                  if c in subscripts[i]])
        if wanted is not None and ctx.can_constrain(op):
            ctx.require(op, wanted, f"the einsum in {ctx.where(node)}")
            fixed = True
    if not fixed:
        raise ctx.fail(node, f"einsum letters {bad} are summed against a constant but flip sign "
                             "on some entries only",
                       "give the layer producing this operand a hidden Rep whose signs do not "
                       "depend on those axes (hidden={path: Rep})")
    raise _Resolved


class _Resolved(Exception):
    """The operands' Reps were constrained: read the letters again."""


def _unsigned_along(ctx: Propagation, op: fx.Node, shape: tuple[int, ...],
                    axes: list[int]) -> Rep | None:
    """``op``'s Rep with the signs made independent of ``axes``: the hidden policy's fraction
    of negated entries moved to the remaining axes the producing layer's channels became."""
    prov = ctx.prov.get(op)
    if prov is None:
        return None
    path, chain, _ = prov
    found = factor_axes(shape, ctx.rep(op), list(range(len(shape))))
    channel_axes = _channel_axes(ctx, op, chain, path, shape)
    keep = [a for a in channel_axes if a not in axes]
    if found is None or not keep:
        return None
    target = keep[-1]
    size = shape[target]
    axes_reps = {a: r.unsigned() for a, r in found.items()}
    axes_reps[target] = Rep(found[target].perm, sign_layout(size, ctx.fraction_for(path)).sign)
    return flat_rep(shape, axes_reps)


def _channel_axes(ctx: Propagation, op: fx.Node, chain: list[fx.Node], path: str,
                  shape: tuple[int, ...]) -> list[int]:
    """Axes of ``op`` that the producing layer's channel axis was reshaped into."""
    site = ctx.sites.get(path)
    origin = chain[0].args[0] if chain else op
    origin_shape = tuple(origin.meta["example_value"].shape)
    axis = (site.extra.get("axis", -1) if site else -1) % len(origin_shape)
    index = torch.arange(origin_shape[axis], dtype=torch.float64).reshape(
        [-1 if a == axis else 1 for a in range(len(origin_shape))]).expand(origin_shape)
    for step in chain:
        args = ctx.value(tuple(step.args[1:]))
        kwargs = ctx.value(dict(step.kwargs))
        index = (getattr(index, step.target)(*args, **kwargs) if isinstance(step.target, str)
                 else step.target(index, *args, **kwargs))
    if tuple(index.shape) != shape:
        return []
    return [a for a in range(len(shape)) if shape[a] > 1 and
            bool((index.diff(dim=a) != 0).any())]


def _guess(letters: dict[str, Rep], subscript: str, operand: fx.Node, size: int) -> Rep:
    for letter in subscript:
        rep = letters.get(letter)
        if rep is not None and rep.size == size and rep.n_pairs:
            return rep.unsigned()
    return Rep.trivial(size)


def _verify(ctx: Propagation, node: fx.Node, equation: str, operands: list[Any],
            features: list[int], out: Rep) -> None:
    """``einsum(T x, c) == T_out einsum(x, c)`` on the example features, in float64."""
    plain, mirrored = [], []
    for i, op in enumerate(operands):
        value = op.meta["example_value"] if isinstance(op, fx.Node) else op
        if i in features:
            x = value.detach().to(torch.float64)
            plain.append(x)
            mirrored.append(ctx.rep(op).apply(x.reshape(-1)).reshape(x.shape))
        else:
            plain.append(value.detach().to(torch.float64))
            mirrored.append(plain[-1])
    y = torch.einsum(equation, *plain)
    y_mirrored = torch.einsum(equation, *mirrored)
    expected = out.apply(y.reshape(-1)).reshape(y.shape)
    error = float((y_mirrored - expected).abs().max()) if y.numel() else 0.0
    if error > 1e-9 * max(1.0, float(y.abs().max()) if y.numel() else 1.0):
        raise ctx.fail(node, f"einsum {equation!r} is not equivariant with the Reps read off its "
                             f"operands (error {error:.2e})",
                       "check that constant operands are mirror-symmetric and that summed axes "
                       "carry matching layouts")
