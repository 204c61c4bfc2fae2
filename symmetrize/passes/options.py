"""The options of a conversion, validated together: :class:`ConversionOptions`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from symmetrize.rules.hidden_policy import HiddenPolicy, check_policy, is_fraction

__all__ = ["ConversionOptions"]


@dataclass(frozen=True)
class ConversionOptions:
    """How :func:`symmetrize.symmetrize` converts a model (every argument after the first three).

    Attributes:
        hidden: the hidden-Rep policy: ``"auto"`` (default: the paper's skeleton layout, regular
            pairs wherever LayerNorm, GELU, softmax or attention cannot take negated channels),
            ``"skeleton"``, ``"regular"``, ``"eigen"`` (the mirror's eigenbasis: the fastest
            layers), a fraction, a Rep, a callable
            ``(module_path, width) -> Rep``, or a dict from module path to any of these.
        negated_fraction: fraction of each joint's hidden dims that flip sign (skeleton layout;
            of all hidden channels in the eigen layout); ``None`` (default): the layout's own,
            1/3 for the skeleton layout (the paper's) and 1/2 for the eigen layout (equal
            halves: half the multiply-adds of the plain layer).
        activation: ``"tanh"`` (the paper) or ``"mixed"`` (tanh on flipping channels only).
        invariant_at: the path(s) of the invariance layer (a layer or a block).
        weights: ``"project"`` the pretrained weights or ``"reinit"``.
        keep: module paths left untouched.
        assume_equivariant: module paths trusted as equivariant.
        average: module paths made equivariant by local symmetrisation.
        check: check the result in float64 (eval and train mode) and refuse a failure.
        inplace: convert the model itself (all or nothing: on an error it is left as it was).
    """

    hidden: HiddenPolicy = "auto"
    negated_fraction: float | None = None
    activation: str = "tanh"
    invariant_at: str | Sequence[str] | None = None
    weights: str = "project"
    keep: Sequence[str] = field(default=())
    assume_equivariant: Sequence[str] = field(default=())
    average: Sequence[str] = field(default=())
    check: bool = True
    inplace: bool = False

    def __post_init__(self) -> None:
        check_policy(self.hidden)
        fraction = self.negated_fraction
        if fraction is not None and (not is_fraction(fraction) or not math.isfinite(
                float(fraction)) or not 0 <= float(fraction) <= 1):
            raise ValueError(f"negated_fraction must be a number in [0, 1] or None (the "
                             f"layout's own), got {fraction!r}")
        if self.activation not in ("tanh", "mixed"):
            raise ValueError(f"activation must be 'tanh' or 'mixed', got {self.activation!r}")
        if self.weights not in ("project", "reinit"):
            raise ValueError(f"weights must be 'project' or 'reinit', got {self.weights!r}")
        for name in ("keep", "assume_equivariant", "average"):
            object.__setattr__(self, name, _paths(getattr(self, name), name))
        if self.invariant_at is not None and not isinstance(self.invariant_at, str):
            object.__setattr__(self, "invariant_at", _paths(self.invariant_at, "invariant_at"))
        for name in ("check", "inplace"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> ConversionOptions:
        """Build from keyword arguments, naming an unknown one and the allowed ones."""
        allowed = [f.name for f in fields(cls)]
        unknown = [k for k in options if k not in allowed]
        if unknown:
            raise TypeError(f"symmetrize() got an unknown option {unknown[0]!r}; the options are "
                            f"{', '.join(allowed)}")
        return cls(**options)

    @property
    def invariant_paths(self) -> list[str]:
        if self.invariant_at is None:
            return []
        return [self.invariant_at] if isinstance(self.invariant_at, str) else \
            list(self.invariant_at)

    def paths(self) -> list[tuple[str, str]]:
        """``(option, module path)`` for every path the options name."""
        named = list(self.hidden) if isinstance(self.hidden, Mapping) else []
        return ([("hidden", p) for p in named] + [("keep", p) for p in self.keep]
                + [("assume_equivariant", p) for p in self.assume_equivariant]
                + [("average", p) for p in self.average]
                + [("invariant_at", p) for p in self.invariant_paths])

    def to_dict(self) -> dict[str, Any]:
        """The options that define the result (not ``check`` / ``inplace``), for the report and
        saved conversions."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("check", "inplace")}
        for name in ("keep", "assume_equivariant", "average"):
            out[name] = list(out[name])
        if isinstance(self.invariant_at, tuple):
            out["invariant_at"] = list(self.invariant_at)
        return out


def _paths(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of module paths, got the string {value!r} "
                        f"(write {name}=[{value!r}])")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of module paths, got "
                        f"{type(value).__name__}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold module paths (str), got {item!r}")
    return items
