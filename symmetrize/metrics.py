"""Pose and action metrics on torch tensors or NumPy arrays.

Pose arrays have joints on the second-to-last axis, coordinates on the last and any leading axes
(batch, time). Each metric returns the kind it was given: a 0-d tensor for tensors (autograd
flows, so :func:`mpjpe` works as a loss) or a NumPy scalar for arrays; a tensor and an array
mixed give a tensor. Integer inputs are treated as float64. Inputs are checked: equal shapes, at
least two axes, not empty, finite.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["mpjpe", "mpjve", "n_mpjpe", "p_mpjpe", "pck", "topk_accuracy"]

ArrayLike = Tensor | np.ndarray


# -- input handling ------------------------------------------------------------------------------

def _to_tensor(x: Any, name: str) -> Tensor:
    """``x`` as a floating tensor (arrays are copied, tensors kept)."""
    if isinstance(x, Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must be real, got a tensor of dtype {x.dtype}")
        if x.is_meta:
            raise ValueError(f"{name} is a meta tensor (a shape without values): compute the "
                             "metric on real data")
        return x if x.is_floating_point() else x.to(torch.float64)
    a = np.asarray(x)
    if a.dtype.kind in "biu":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise TypeError(f"{name} must be a tensor or an array of real numbers, got dtype {a.dtype}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))


def _check_finite(x: Tensor, name: str) -> None:
    bad = int((~torch.isfinite(x.detach())).sum())
    if bad:
        raise ValueError(f"{name} contains {bad} NaN/inf value(s) (of {x.numel()})")


def _check_array(x: Tensor, name: str, min_dims: int = 2) -> None:
    if x.dim() < min_dims:
        raise ValueError(f"{name} needs at least {min_dims} dimensions "
                         f"(... joints, coordinates), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    _check_finite(x, name)


def _pair(pred: Any, target: Any, min_dims: int = 2) -> tuple[Tensor, Tensor, bool]:
    """Checked ``pred`` and ``target`` tensors of one dtype and device, and whether to answer
    with a tensor."""
    as_torch = isinstance(pred, Tensor) or isinstance(target, Tensor)
    p, t = _to_tensor(pred, "pred"), _to_tensor(target, "target")
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"shape mismatch: pred has shape {tuple(p.shape)} but target has shape "
                         f"{tuple(t.shape)}")
    if isinstance(pred, Tensor) and isinstance(target, Tensor) and p.device != t.device:
        raise ValueError(f"pred is on {p.device} but target is on {t.device}")
    device = p.device if isinstance(pred, Tensor) else t.device
    dtype = torch.promote_types(p.dtype, t.dtype)
    p, t = p.to(device=device, dtype=dtype), t.to(device=device, dtype=dtype)
    _check_array(p, "pred", min_dims)
    _check_array(t, "target", min_dims)
    return p, t, as_torch


def _operand(x: Any, name: str, like: Tensor) -> Tensor:
    """A secondary argument (weights, scales) as a finite tensor on ``like``'s device/dtype."""
    v = _to_tensor(x, name).to(device=like.device, dtype=like.dtype)
    _check_finite(v, name)
    return v


def _real(value: Any, name: str) -> float:
    """A real number argument (not a bool, string or array) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _out(value: Tensor, as_torch: bool) -> Any:
    return value if as_torch else value.detach().cpu().numpy()[()]


def _distances(p: Tensor, t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(p - t, dim=-1)


# -- pose metrics --------------------------------------------------------------------------------

def mpjpe(pred: ArrayLike, target: ArrayLike, weights: ArrayLike | None = None) -> Any:
    """Mean per-joint position error: the mean over joints and leading axes of the Euclidean
    distance between ``pred`` and ``target`` (in their units).

    ``weights`` (e.g. one per joint, shape ``(J,)``) must broadcast to the distances' shape
    ``pred.shape[:-1]``; the result is then ``mean(weights * distance)``, as VideoPose3D's
    ``weighted_mpjpe``.
    """
    p, t, as_torch = _pair(pred, target)
    dist = _distances(p, t)
    if weights is not None:
        w = _operand(weights, "weights", dist)
        if _broadcast(w.shape, dist.shape) != tuple(dist.shape):
            raise ValueError(f"weights of shape {tuple(w.shape)} do not broadcast to the "
                             f"per-joint distances of shape {tuple(dist.shape)}")
        dist = w * dist
    return _out(dist.mean(), as_torch)


def _broadcast(a: torch.Size, b: torch.Size) -> tuple[int, ...] | None:
    try:
        return tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        return None


def _procrustes_align(pred: Tensor, target: Tensor) -> Tensor:
    """``pred`` moved onto ``target`` per pose by the best similarity transform (rotation with
    det +1, uniform scale, translation), in float64. Shapes ``(..., J, D)``."""
    p, t = pred.to(torch.float64), target.to(torch.float64)
    mu_p, mu_t = p.mean(-2, keepdim=True), t.mean(-2, keepdim=True)
    p0, t0 = p - mu_p, t - mu_t
    norm_p = torch.linalg.vector_norm(p0, dim=(-2, -1), keepdim=True)
    norm_t = torch.linalg.vector_norm(t0, dim=(-2, -1), keepdim=True)
    # A collapsed pose (all joints at one point) has nothing to rotate: scale 0 below.
    norm_p = torch.where(norm_p > 0, norm_p, torch.ones_like(norm_p))
    norm_t = torch.where(norm_t > 0, norm_t, torch.ones_like(norm_t))
    h = (t0 / norm_t).mT @ (p0 / norm_p)
    u, s, vh = torch.linalg.svd(h)
    v = vh.mT
    sign = torch.sign(torch.linalg.det(v @ u.mT))
    fix = torch.ones_like(s)
    fix = torch.cat([fix[..., :-1], sign.unsqueeze(-1)], dim=-1)
    rotation = (v * fix.unsqueeze(-2)) @ u.mT
    scale = (s * fix).sum(-1)[..., None, None] * norm_t / norm_p
    return scale * (p0 @ rotation) + mu_t


def p_mpjpe(pred: ArrayLike, target: ArrayLike) -> Any:
    """MPJPE after aligning each pose of ``pred`` to ``target`` by the best rotation (a proper
    one: reflections are not allowed), uniform scale and translation (Procrustes, via a batched
    SVD in float64; any coordinate count D). Gradients flow through the SVD but are unreliable
    where singular values repeat; use it as an evaluation metric."""
    p, t, as_torch = _pair(pred, target)
    aligned = _procrustes_align(p, t)
    err = _distances(aligned, t.to(torch.float64)).mean().to(p.dtype)
    return _out(err, as_torch)


def n_mpjpe(pred: ArrayLike, target: ArrayLike) -> Any:
    """MPJPE after scaling each pose of ``pred`` by its optimal factor
    ``<pred, target> / <pred, pred>`` (no rotation or translation), as VideoPose3D."""
    p, t, as_torch = _pair(pred, target)
    num = (p * t).sum((-2, -1), keepdim=True)
    den = (p * p).sum((-2, -1), keepdim=True)
    scale = num / torch.where(den > 0, den, torch.ones_like(den))
    return _out(_distances(scale * p, t).mean(), as_torch)


def mpjve(pred: ArrayLike, target: ArrayLike, axis: int = -3, dt: float | None = None) -> Any:
    """Mean per-joint velocity error: MPJPE of the first differences along the time ``axis``
    (a leading axis; default the one before joints), divided by the frame time ``dt`` if given
    (units per second instead of per frame)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__} {axis!r}")
    if dt is not None:
        dt = _real(dt, "dt")
    p, t, as_torch = _pair(pred, target, min_dims=3)
    ndim = p.dim()
    ax = axis + ndim if axis < 0 else axis
    if not 0 <= ax <= ndim - 3:
        raise ValueError(f"axis {axis} is not a leading (time) axis of shape {tuple(p.shape)}; "
                         f"the last two axes are joints and coordinates")
    if p.shape[ax] < 2:
        raise ValueError(f"mpjve needs at least 2 frames along axis {axis}, "
                         f"got shape {tuple(p.shape)}")
    vp, vt = torch.diff(p, dim=ax), torch.diff(t, dim=ax)
    if dt is not None:
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive, finite frame time, got {dt!r}")
        vp, vt = vp / dt, vt / dt
    return _out(_distances(vp, vt).mean(), as_torch)


def pck(pred: ArrayLike, target: ArrayLike, threshold: float,
        normalize: ArrayLike | float | None = None) -> Any:
    """Percentage of correct keypoints, as a fraction in [0, 1]: joints whose distance to the
    target is at most ``threshold``.

    With ``normalize`` (one scale per pose, e.g. torso or bounding-box size, broadcasting to the
    leading shape ``pred.shape[:-2]``; positive), distances are divided by it first, so
    ``threshold`` is relative (e.g. 0.2 for PCK@0.2).
    """
    threshold = _real(threshold, "threshold")
    p, t, as_torch = _pair(pred, target)
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite, non-negative number, got {threshold!r}")
    dist = _distances(p, t)
    if normalize is not None:
        scale = _operand(normalize, "normalize", dist)
        lead = tuple(dist.shape[:-1])
        if _broadcast(scale.shape, torch.Size(lead)) != lead:
            raise ValueError(f"normalize of shape {tuple(scale.shape)} does not broadcast to "
                             f"the leading shape {lead} (one scale per pose)")
        if bool((scale <= 0).any()):
            raise ValueError(f"normalize must be positive; it has {int((scale <= 0).sum())} "
                             f"value(s) <= 0")
        dist = dist / scale.unsqueeze(-1)
    hits = (dist.detach() <= float(threshold)).to(p.dtype)
    return _out(hits.mean(), as_torch)


# -- classification ------------------------------------------------------------------------------

def _labels(labels: Any, shape: tuple[int, ...], classes: int, device: torch.device) -> Tensor:
    lab = labels if isinstance(labels, Tensor) else torch.as_tensor(np.asarray(labels))
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {lab.dtype}")
    if tuple(lab.shape) != shape:
        raise ValueError(f"shape mismatch: logits have shape {shape + (classes,)}, so labels "
                         f"need shape {shape}, got {tuple(lab.shape)}")
    lab = lab.to(device=device, dtype=torch.int64)
    bad = (lab < 0) | (lab >= classes)
    if bool(bad.any()):
        raise ValueError(f"{int(bad.sum())} label(s) outside 0..{classes - 1}, e.g. "
                         f"{int(lab[bad][0])}")
    return lab


def _ks(k: int | Iterable[int], classes: int) -> tuple[int, ...]:
    ks = (k,) if isinstance(k, (int, np.integer)) else tuple(k)
    if not ks:
        raise ValueError("k must name at least one value")
    for value in ks:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"each k must be a positive integer, got {value!r}")
        if value > classes:
            raise ValueError(f"k={value} is larger than the number of classes ({classes})")
    return tuple(int(v) for v in ks)


def topk_accuracy(logits: ArrayLike, labels: ArrayLike,
                  k: int | Iterable[int] = (1, 5)) -> dict[int, float]:
    """``{k: fraction of samples whose label is among the k highest logits}``.

    ``logits`` has classes on the last axis and any leading axes (at least one), ``labels`` the
    leading shape. Ties count against the label: a label tied with others ranks below them, so
    constant logits never score.
    """
    scores = _to_tensor(logits, "logits")
    if scores.dim() < 2:
        raise ValueError(f"logits need at least 2 dimensions (..., classes), got shape "
                         f"{tuple(scores.shape)}")
    if scores.numel() == 0:
        raise ValueError(f"logits are empty (shape {tuple(scores.shape)})")
    _check_finite(scores, "logits")
    scores = scores.detach()
    classes = scores.shape[-1]
    ks = _ks(k, classes)
    lab = _labels(labels, tuple(scores.shape[:-1]), classes, scores.device)
    own = scores.gather(-1, lab.unsqueeze(-1))
    rank = (scores > own).sum(-1) + (scores == own).sum(-1) - 1
    return {value: float((rank < value).double().mean()) for value in ks}
