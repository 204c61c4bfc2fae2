"""Rules for ``torch.einsum`` and matmul: graph convolutions over a skeleton adjacency,
contractions of features with features (adaptive graphs, attention scores).

Each subscript letter gets one Rep, read from the feature operands' per-axis actions. A letter
that only a constant operand has (the ``w`` of ST-GCN's ``'nkctv,kvw->nctw'``) is guessed: the
Rep of a same-sized letter of that operand, else trivial; the guess is verified numerically on
random features. Constant operands must equal their mirror image: a buffer (the adjacency) is
checked, a learned tensor (edge importance) becomes mirror-shared. A letter summed against a
constant must not flip sign; when it does because of the hidden layout, the decision of the
layer producing the operand is constrained (the pass restarts).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
from torch import fx

from symmetrize.action import Action, periodic_block
from symmetrize.rep import Rep
from symmetrize.rules.constants import require_constant
from symmetrize.rules.context import Context
from symmetrize.rules.hidden_policy import negated_share, sign_layout
from symmetrize.rules.registry import register_function_rule


@register_function_rule(torch.einsum)
def einsum(ctx: Context, node: fx.Node) -> Action | None:
    equation = node.args[0]
    operands = list(node.args[1:])
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = list(operands[0])
    return contraction(ctx, node, equation, operands)


@register_function_rule(torch.matmul, operator.matmul, "matmul", torch.bmm, torch.mm, "bmm", "mm")
def matmul(ctx: Context, node: fx.Node) -> Action | None:
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


def contraction(ctx: Context, node: fx.Node, equation: Any, operands: list[Any]) -> Action | None:
    """The rule shared by einsum and matmul."""
    if not isinstance(equation, str) or "->" not in equation or "..." in equation:
        raise ctx.fail(node, f"einsum {equation!r}: only explicit equations ('ab,bc->ac') "
                             "without '...' have a rule", "write the output subscripts out")
    inputs, output = equation.replace(" ", "").split("->")
    subscripts = inputs.split(",")
    features = [i for i, op in enumerate(operands) if isinstance(ctx.action(op), Action)]
    if not features:
        return None
    letters: dict[str, Rep] = {}
    for i in features:
        op = operands[i]
        found = ctx.action(op).axes(sign_on=0)
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
                letters[letter] = Rep._trusted(rep.perm, known.sign * rep.sign)
    if _fix_contracted_signs(ctx, node, operands, subscripts, output, features, letters):
        return contraction(ctx, node, equation, operands)
    constants = [i for i in range(len(operands)) if i not in features]
    for i in constants:
        for letter, size in zip(subscripts[i], ctx.shape(operands[i])):
            if letter not in letters:
                letters[letter] = _guess(letters, subscripts[i], int(size))
    for i in constants:  # constants carry permutations, never signs
        shape = ctx.shape(operands[i])
        wanted = Action.from_axes(shape, {a: letters[c].unsigned()
                                          for a, c in enumerate(subscripts[i])})
        require_constant(ctx, node, operands[i], wanted, f"the einsum in {ctx.where(node)}")
    sign = 1
    for c in set("".join(subscripts)) - set(output):
        signs = set(letters[c].sign.tolist())
        if signs == {-1}:
            sign = -sign  # a summed letter with one sign throughout: it factors out
    out = Action.from_axes(ctx.shape(node), {a: letters[c] for a, c in enumerate(output)}, sign)
    ctx.remember(("einsum", node), [ctx.action(operands[i]) for i in features],
                 lambda: _verify(ctx, node, equation, operands, subscripts, features, letters,
                                 sign))
    return out


def _fix_contracted_signs(ctx: Context, node: fx.Node, operands: list[Any], subscripts: list[str],
                          output: str, features: list[int], letters: dict[str, Rep]) -> bool:
    """A letter summed against a constant must carry one sign throughout; else constrain the
    decision behind the feature so that letter is unsigned. Returns whether it did."""
    constant_letters = {c for i, s in enumerate(subscripts) if i not in features for c in s}
    bad = [c for c, rep in letters.items() if c not in output and c in constant_letters
           and len(set(rep.sign.tolist())) > 1]
    if not bad:
        return False
    fixed = False
    for i in features:
        op = operands[i]
        if not any(c in subscripts[i] for c in bad):
            continue
        wanted = _unsigned_along(ctx, op, [subscripts[i].index(c) for c in bad
                                           if c in subscripts[i]])
        if wanted is not None and ctx.can_constrain(op):
            ctx.require(op, wanted, f"the einsum in {ctx.where(node)}")
            fixed = True
    if not fixed:
        raise ctx.fail(node, f"einsum letters {bad} are summed against a constant but flip sign "
                             "on some entries only",
                       "give the layer producing this operand a hidden Rep whose signs do not "
                       "depend on those axes (hidden={path: Rep})")
    return True


def _unsigned_along(ctx: Context, op: fx.Node, axes: list[int]) -> Action | None:
    """``op``'s action with the signs made independent of ``axes``: the hidden policy's
    fraction of negated entries moved to the remaining axis the producing layer's channels
    became."""
    prov = ctx.prov.get(op)
    found = ctx.action(op).axes()
    if prov is None or found is None:
        return None
    keep = [a for a in ctx.channel_axes(op) if a not in axes]
    if not keep:
        return None
    target = keep[-1]
    size = ctx.shape(op)[target]
    fraction = negated_share(ctx.fraction)
    hidden = ctx.hidden
    if isinstance(hidden, dict) and isinstance(hidden.get(prov.path), (int, float)):
        fraction = float(hidden[prov.path])
    reps = {a: r.unsigned() for a, r in found.items()}
    reps[target] = Rep(found[target].perm, sign_layout(size, fraction).sign)
    return Action.from_axes(ctx.shape(op), reps)


def _guess(letters: dict[str, Rep], subscript: str, size: int) -> Rep:
    for letter in subscript:
        rep = letters.get(letter)
        if rep is not None and rep.size == size and rep.n_pairs:
            return rep.unsigned()
    return Rep.trivial(size)


def _verify(ctx: Context, node: fx.Node, equation: str, operands: list[Any],
            subscripts: list[str], features: list[int], letters: dict[str, Rep],
            sign: int) -> None:
    """``einsum(T x, c) == T_out einsum(x, c)`` on random features, in float64. A letter the
    output keeps and no constant has (batch, time, joints folded into the batch) is cut to one
    period of its Reps: the mirror treats its blocks alike and apart."""
    constant_letters = {c for i, s in enumerate(subscripts) if i not in features for c in s}
    out_letters = equation.split("->")[1]
    own = {i: ctx.action(operands[i]).axes(sign_on=0) for i in features}
    period: dict[str, int] = {}
    for c in letters:
        if c in out_letters and c not in constant_letters:
            blocks = [periodic_block(own[i][a]).size for i in features
                      for a, d in enumerate(subscripts[i]) if d == c]
            blocks.append(periodic_block(letters[c]).size)
            size = max(blocks)
            if all(size % b == 0 for b in blocks) and size < letters[c].size:
                period[c] = size

    def shrunk(rep: Rep, letter: str) -> Rep:
        size = period.get(letter)
        return rep if size is None else Rep._trusted(rep.perm[:size], rep.sign[:size])

    generator = torch.Generator().manual_seed(0)
    plain, mirrored = [], []
    for i, (op, sub) in enumerate(zip(operands, subscripts)):
        if i in features:
            reps = {a: shrunk(own[i][a], c) for a, c in enumerate(sub)}
            x = torch.randn([reps[a].size for a in range(len(sub))], generator=generator,
                            dtype=torch.float64)
            plain.append(x)
            mirrored.append(Action.from_axes(tuple(x.shape), reps).apply(x))
        else:  # as the rewrite leaves it: symmetric (a learned tensor behind it is shared)
            value = op.meta["example_value"].detach().to(torch.float64).cpu()
            keep = Action.from_axes(tuple(value.shape), {a: letters[c].unsigned()
                                                         for a, c in enumerate(sub)})
            value = (value + keep.apply(value)) / 2
            plain.append(value)
            mirrored.append(value)
    y = torch.einsum(equation, *plain)
    y_mirrored = torch.einsum(equation, *mirrored)
    small = Action.from_axes(tuple(y.shape), {a: shrunk(letters[c], c)
                                              for a, c in enumerate(out_letters)}, sign)
    expected = small.apply(y)
    error = float((y_mirrored - expected).abs().max()) if y.numel() else 0.0
    if error > 1e-9 * max(1.0, float(y.abs().max()) if y.numel() else 1.0):
        raise ctx.fail(node, f"einsum {equation!r} is not equivariant with the Reps read off its "
                             f"operands (error {error:.2e})",
                       "check that constant operands are mirror-symmetric and that summed axes "
                       "carry matching layouts")
