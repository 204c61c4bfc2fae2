"""The hidden-Rep policy: which Rep a channel-mixing layer's output gets when nothing fixes it.

- ``"auto"`` (default): the paper's skeleton layout; an op that cannot take negated channels
  (LayerNorm, GELU, softmax, attention) later switches the layer to regular pairs (see
  :meth:`~symmetrize.rules.context.Context.forbid_signs`).
- ``"skeleton"``: the paper's layout, always (non-odd activations become tanh).
- ``"regular"``: swapped pairs, nothing flips sign.
- ``"eigen"``: channels that stay in place, the last half of them (or ``negated_fraction``)
  flipping sign: the mirror's eigenbasis itself, so chiral layers between such channels change
  no basis (fastest; see ``docs/speed.md``); the non-linearities act on eigen-coordinates, not
  per joint.
- a fraction: the skeleton layout with that fraction of each joint's dims negated.
- a :class:`~symmetrize.rep.Rep`, a callable ``(path, width) -> Rep``, or a dict from module path
  to any of these (other paths: ``"auto"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton

__all__ = ["EIGEN_FRACTION", "SKELETON_FRACTION", "HiddenPolicy", "choose", "eigen_layout",
           "is_fraction", "negated_share", "sign_layout", "skeleton_layout"]

HiddenPolicy = str | Rep | Callable[[str, int], Rep] | Mapping[str, Any]
#: the share of negated hidden channels when ``negated_fraction`` is ``None``: the paper's third
#: in the skeleton (and sign) layout; equal halves in the eigen layout, where the two blocks of
#: a layer then keep half of its multiply-adds (``2/3 : 1/3`` would keep 5/9)
SKELETON_FRACTION = 1 / 3
EIGEN_FRACTION = 1 / 2
_NAMES = ("auto", "skeleton", "regular", "eigen")


def is_fraction(value: Any) -> bool:
    """A real number (``0``, ``0.5``, ``np.float32(1/3)``), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_policy(hidden: Any, where: str = "hidden") -> None:
    """Raise ``ValueError``/``TypeError`` for a policy :func:`choose` cannot read."""
    if isinstance(hidden, Mapping):
        for path, value in hidden.items():
            if not isinstance(path, str):
                raise TypeError(f"{where} keys must be module paths (str), got {path!r}")
            if isinstance(value, Mapping):
                raise TypeError(f"{where}[{path!r}] must be a policy, not another dict")
            check_policy(value, f"{where}[{path!r}]")
        return
    if isinstance(hidden, str):
        if hidden not in _NAMES:
            raise ValueError(f"{where} must be one of {', '.join(map(repr, _NAMES))}, a "
                             f"fraction, a Rep, a callable or a dict, got {hidden!r}")
    elif is_fraction(hidden):
        if not 0 <= float(hidden) <= 1:
            raise ValueError(f"{where} = {hidden!r}: a negated fraction must lie in [0, 1]")
    elif not isinstance(hidden, Rep) and not callable(hidden):
        raise TypeError(f"{where} must be 'auto', 'skeleton', 'regular', 'eigen', a fraction, a "
                        f"Rep, a callable (path, width) -> Rep or a dict, got "
                        f"{type(hidden).__name__}")


def negated_share(fraction: float | None, layout: str = "skeleton") -> float:
    """The ``negated_fraction`` option for ``layout`` (``"skeleton"``, also the sign layout, or
    ``"eigen"``): the layout's own share when the option is ``None``."""
    if fraction is not None:
        return fraction
    return EIGEN_FRACTION if layout == "eigen" else SKELETON_FRACTION


def choose(hidden: HiddenPolicy, path: str, width: int, skeleton: Skeleton,
           fraction: float | None, joints_elsewhere: bool,
           warn: Callable[[str], None]) -> tuple[Rep, bool, str]:
    """``(rep, automatic, reason)`` for ``width`` output channels of layer ``path``.

    ``fraction``: the ``negated_fraction`` option (``None``: :data:`SKELETON_FRACTION` or
    :data:`EIGEN_FRACTION`, by layout).

    ``joints_elsewhere``: the mirror swaps joints on another axis of this tensor (ST-GCN's
    ``(N, C, T, V)``, a transformer's joint tokens), so the channels are one joint's features.
    """
    choice: Any = hidden.get(path, "auto") if isinstance(hidden, Mapping) else hidden
    auto = isinstance(choice, str) and choice == "auto"
    if isinstance(choice, Rep):
        rep, reason = choice, "given"
    elif isinstance(choice, str) and choice == "regular":
        rep, reason = Rep.regular(width), "regular pairs (hidden='regular')"
    elif isinstance(choice, str) and choice == "eigen":
        rep = eigen_layout(width, negated_share(fraction, "eigen"))
        reason = f"eigenbasis layout ({rep.n_negated} of {width} channels flip sign)"
    elif isinstance(choice, str) and choice in ("skeleton", "auto") or is_fraction(choice):
        share = float(choice) if is_fraction(choice) else negated_share(fraction)
        rep = skeleton_layout(path, width, skeleton, share, joints_elsewhere, warn)
        if not joints_elsewhere and width < len(skeleton):
            reason = f"regular pairs (width {width} < {len(skeleton)} joints)"
        else:
            reason = ("skeleton layout" + (" (auto: nothing downstream forbids negated channels)"
                                           if auto else ""))
    elif callable(choice):
        rep, reason = choice(path, width), "given (callable)"
    else:
        raise ValueError(f"hidden policy for '{path}' must be 'auto', 'skeleton', 'regular', "
                         f"'eigen', a fraction, a Rep or a callable, got {choice!r}")
    if not isinstance(rep, Rep) or rep.size != width:
        raise ValueError(f"hidden policy for '{path}' gave {rep}, not a Rep of size {width}")
    return rep, auto, reason


def skeleton_layout(path: str, width: int, skeleton: Skeleton, fraction: float,
                    joints_elsewhere: bool, warn: Callable[[str], None]) -> Rep:
    """The paper's layout: ``J x D`` joint-major channels with ``fraction`` of each joint's
    dims negated (plus invariant channels for a width not divisible by ``J``); only the signs
    when the joints sit on another axis."""
    if joints_elsewhere:
        return sign_layout(width, fraction)
    joints = len(skeleton)
    dims, rest = divmod(width, joints)
    if dims == 0:
        return Rep.regular(width)
    rep = Rep.skeleton_hidden(skeleton, dims, round(dims * fraction))
    if rest:
        rep = rep + Rep.trivial(rest)
        warn(f"{path}: width {width} is not a multiple of {joints} joints: "
             f"{joints} x {dims} skeleton channels + {rest} invariant ones")
    return rep


def sign_layout(width: int, fraction: float) -> Rep:
    """Channels that stay in place, the first ``round(width * fraction)`` flipping sign: one
    joint's features when the joints sit on an axis of their own."""
    return Rep(np.arange(width), np.where(np.arange(width) < round(width * fraction), -1, 1))


def eigen_layout(width: int, fraction: float) -> Rep:
    """Channels that stay in place, the last ``round(width * fraction)`` flipping sign: the
    mirror's eigenbasis, so a chiral layer between two such axes is two half-width maps on
    ``narrow`` views, with no basis change."""
    negated = round(width * fraction)
    return Rep(np.arange(width), np.where(np.arange(width) >= width - negated, -1, 1))
