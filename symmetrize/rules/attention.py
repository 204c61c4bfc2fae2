"""Rule for ``F.scaled_dot_product_attention`` (timm's fused ``Attention`` path).

``softmax(q k^T / sqrt(d) + mask) v`` is mirror-equivariant when the mirror acts on q and k with
the same signed permutation along their feature axis and on the same heads (the scores are then
unchanged up to the permutation of the tokens, signs cancelling in the dot product), permutes
the query and key tokens as it does the tokens of q and k, and acts on v's heads like on q's.
The output then transforms like v on heads and features and like q on its tokens. Attention
dropout (``dropout_p``) is not mirror-tied: the report warns about it and :func:`check` switches
it off in train mode, like any dropout. Written out
(``q @ k.transpose(-2, -1)``, ``softmax``, ``@ v``), the same attention is covered by the
matmul and softmax rules; this rule checks the result numerically on the example values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx
from torch.nn import functional as F

from symmetrize.action import Action, periodic_block
from symmetrize.rep import Rep
from symmetrize.rules.constants import require_constant
from symmetrize.rules.context import Context
from symmetrize.rules.registry import register_function_rule

_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_FIX = ("give q, k and v per-head channel Reps: convert with hidden='regular' (mirror twins in "
        "adjacent channels, which stay inside a head when the head size is even)")


@register_function_rule(F.scaled_dot_product_attention)
def scaled_dot_product_attention(ctx: Context, node: fx.Node) -> Rep | None:
    bound = dict(zip(_ARGS, node.args))
    bound.update(node.kwargs)
    q, k, v = bound["query"], bound["key"], bound["value"]
    if all(ctx.action(a) is None for a in (q, k, v)):
        return None
    if bound.get("enable_gqa"):
        raise ctx.fail(node, "grouped-query attention (enable_gqa=True) has no rule",
                       "repeat the key/value heads to the query heads first")
    axes = {name: _axes(ctx, node, arg, name) for name, arg in (("q", q), ("k", k), ("v", v))}
    for arg in (q, k):
        ctx.mark_unsigned(arg, "attention")
    (rq, rk, rv), n = (axes["q"], axes["k"], axes["v"]), len(axes["q"])
    if len(rk) != n or len(rv) != n:
        raise ctx.fail(node, "q, k and v of different ranks (broadcast batch axes) have no rule",
                       "expand them to the same batch shape first")
    for a in range(n - 2):  # batch and head axes
        if not (rq[a].perm == rk[a].perm).all() or not (rq[a].perm == rv[a].perm).all():
            raise ctx.fail(node, f"the mirror permutes axis {a} (heads) of q, k and v "
                                 "differently", _FIX)
    same = (rq[n - 1].perm == rk[n - 1].perm).all() and \
        (rq[n - 1].sign * rk[n - 1].sign == rq[n - 1].sign[0] * rk[n - 1].sign[0]).all()
    if not same:
        raise ctx.fail(node, "q and k carry different mirror Reps on their feature axis, so the "
                             "attention scores are not mirror-symmetric", _FIX)
    if not (rk[n - 2].perm == rv[n - 2].perm).all():
        raise ctx.fail(node, "the mirror permutes the tokens of k and v differently",
                       "attend over keys and values laid out alike")
    score_sign = int(rq[n - 1].sign[0] * rk[n - 1].sign[0])
    batch_sign = [rq[a].sign * rk[a].sign for a in range(n - 2)]
    if score_sign < 0 or any((s < 0).any() for s in batch_sign) or \
            rq[n - 2].n_negated or rk[n - 2].n_negated:
        if ctx.forbid_signs(q, "attention") | ctx.forbid_signs(k, "attention"):
            return Action.trivial(ctx.shape(node))
        raise ctx.fail(node, "the mirror flips the sign of attention scores, and softmax is not "
                             "odd", _FIX)
    out_shape = ctx.shape(node)
    scores = {a: rq[a].unsigned() for a in range(n - 2)}
    scores[n - 2], scores[n - 1] = rq[n - 2].unsigned(), rk[n - 2].unsigned()
    if bound.get("is_causal") and (scores[n - 2].n_pairs or scores[n - 1].n_pairs):
        raise ctx.fail(node, "a causal mask over tokens that the mirror permutes",
                       "use is_causal only for attention over frames")
    mask = bound.get("attn_mask")
    if isinstance(mask, fx.Node):
        score_shape = (*out_shape[:-1], ctx.value(k).shape[-2])
        if ctx.action(mask) is not None:
            raise ctx.fail(node, "an attention mask computed from the inputs has no rule",
                           "use a constant (buffer) mask")
        require_constant(ctx, node, mask, Action.from_axes(score_shape, scores),
                         f"the attention mask of {ctx.where(node)}")
    out_axes = {a: Rep(rv[a].perm, rv[a].sign) for a in range(n - 2)}
    out_axes[n - 2] = scores[n - 2]
    out_axes[n - 1] = rv[n - 1]
    out = Action.from_axes(out_shape, out_axes)
    ctx.remember(("attention", node), [ctx.action(a) for a in (q, k, v)],
                 lambda: _verify(ctx, node, bound, rq, rk, rv, out_axes))
    return out


def _axes(ctx: Context, node: fx.Node, arg: Any, name: str) -> list[Rep]:
    shape = tuple(ctx.value(arg).shape)
    action = ctx.action(arg) if isinstance(arg, fx.Node) else None
    if action is None:
        action = Action.trivial(shape)
    found = action.axes(sign_on=len(shape) - 1)
    if found is None:
        raise ctx.fail(node, f"the mirror does not act axis by axis on {name} of shape {shape} "
                             "(batch, heads, tokens, features)", _FIX)
    return [found[a] for a in range(len(shape))]


def _verify(ctx: Context, node: fx.Node, bound: dict[str, Any], rq: list[Rep], rk: list[Rep],
            rv: list[Rep], out_axes: dict[int, Rep]) -> None:
    """``sdpa(T q, T k, T v) == T_out sdpa(q, k, v)`` on random values in float64, each batch
    axis cut to one period of its Reps (the mirror treats its blocks alike and apart)."""
    generator = torch.Generator().manual_seed(0)
    n = len(rq)
    keep = {}
    for a in range(n - 2):
        blocks = [periodic_block(r[a]).size for r in (rq, rk, rv)]
        size = max(blocks)
        keep[a] = size if all(size % b == 0 for b in blocks) else rq[a].size

    def shrunk(rep: Rep, a: int) -> Rep:
        size = keep.get(a, rep.size)
        return Rep._trusted(rep.perm[:size], rep.sign[:size])

    mask = ctx.value(bound.get("attn_mask"))
    plain, mirrored = [], []
    for reps in (rq, rk, rv):
        small = {a: shrunk(r, a) for a, r in enumerate(reps)}
        x = torch.randn([small[a].size for a in range(n)], generator=generator,
                        dtype=torch.float64)
        plain.append(x)
        mirrored.append(Action.from_axes(tuple(x.shape), small).apply(x))
    if isinstance(mask, torch.Tensor) and not mask.is_meta:
        if mask.dim() == n:
            mask = mask[tuple(slice(0, keep[a]) if a in keep and mask.shape[a] != 1 else
                              slice(None) for a in range(n))]
        mask = mask.to(torch.float64) if mask.is_floating_point() else mask
    options = {"attn_mask": mask, "is_causal": bool(bound.get("is_causal", False)),
               "scale": bound.get("scale")}
    y = F.scaled_dot_product_attention(*plain, **options)
    y_mirrored = F.scaled_dot_product_attention(*mirrored, **options)
    small = Action.from_axes(tuple(y.shape), {a: shrunk(r, a) for a, r in out_axes.items()})
    expected = small.apply(y)
    error = float((y_mirrored - expected).abs().max()) if y.numel() else 0.0
    if error > 1e-9 * max(1.0, float(y.abs().max()) if y.numel() else 1.0):
        raise ctx.fail(node, f"attention is not equivariant with the Reps of q, k and v (error "
                             f"{error:.2e})", _FIX)
