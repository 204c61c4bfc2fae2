"""How the mirror acts on a model's inputs and outputs: :class:`Spec`.

A Spec annotates every forward argument and every output with a layout (see
:mod:`symmetrize.layout`): ``"n t j c"``, ``"n t (j c)"``, ``"n t (j c) + k"`` (the pose followed
by invariant features on one axis), ``None`` (untouched input / invariant output) or, for an
output, ``"free"`` (whatever the conversion chose, e.g. a returned hidden state). Each input and
output may have its own skeleton. Spec files (JSON, TOML) are read by
:mod:`symmetrize.spec_files`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symmetrize.layout import COORDS, FREE, JOINTS, Layout, parse_layout
from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton
from symmetrize.spec_layouts import (
    axis_rep,
    check_splittable,
    normalise_negate,
    parse_side,
    sizes_of,
    skeletons_of,
)

__all__ = ["COORDS", "FREE", "JOINTS", "Layout", "Spec", "parse_layout"]

LayoutArg = str | None
SkeletonArg = Skeleton | str
_SIDES = {"input": "forward argument", "output": "output"}


class Spec:
    """How the mirror acts on each input and output of a model.

    Args:
        input: a layout string per forward argument (a single string for one argument); ``None``
            marks an argument the mirror leaves alone, of any rank.
        output: a layout string per output (tensor leaves of the output in order: tuples, lists,
            dicts); ``None`` marks an invariant output of any rank, ``"free"`` one whose action
            is whatever the conversion chose.
        skeleton: the input skeleton (a :class:`~symmetrize.Skeleton` or a preset name), or one
            per input.
        negate: input coordinate indices that flip sign (the horizontal one), e.g. ``(0,)``.
        output_skeleton: the output skeleton, or one per output; defaults to the first input's.
        output_negate: output coordinates that flip sign; defaults to ``negate``.
        sizes: sizes of layout names that cannot be inferred, e.g. ``{"c": 2}`` for
            ``"n t (j c) + k"``.

    Raises:
        ValueError: a bad layout (naming the input/output), duplicate or negative ``negate``
            entries, a skeleton count that does not match, or no input that names ``j`` or ``c``.
        TypeError: arguments of the wrong type.
    """

    def __init__(self, input: LayoutArg | Sequence[LayoutArg], output: LayoutArg | Sequence[LayoutArg],
                 skeleton: SkeletonArg | Sequence[SkeletonArg], negate: int | Iterable[int] = (0,),
                 output_skeleton: SkeletonArg | Sequence[SkeletonArg] | None = None,
                 output_negate: int | Iterable[int] | None = None,
                 sizes: Mapping[str, int] | None = None) -> None:
        self._inputs = parse_side(input, "input")
        self._outputs = parse_side(output, "output")
        self._skeletons = skeletons_of(skeleton, len(self._inputs), "skeleton")
        self._output_skeletons = (
            skeletons_of(output_skeleton, len(self._outputs), "output_skeleton")
            if output_skeleton is not None else (self._skeletons[0],) * len(self._outputs))
        self._negate = normalise_negate(negate, "negate")
        self._output_negate = (self._negate if output_negate is None
                               else normalise_negate(output_negate, "output_negate"))
        self._sizes = sizes_of(sizes)
        for side, layouts in (("input", self._inputs), ("output", self._outputs)):
            for i, layout in enumerate(layouts):
                if isinstance(layout, Layout):
                    check_splittable(layout, f"Spec {side} {i}", self._sizes)
        if all(not isinstance(x, Layout) or x.is_invariant for x in self._inputs):
            shown = ", ".join(repr(x.text if isinstance(x, Layout) else x) for x in self._inputs)
            raise ValueError(
                f"Spec input ({shown}) names neither the joints axis 'j' nor the coordinates axis "
                f"'c', so the mirror would act on no input; mark those axes with the reserved "
                f"names 'j' and 'c' (e.g. 'n t j c' or 'n t (j c)')")

    # ------------------------------------------------------------------- read-only views
    @property
    def inputs(self) -> tuple[Layout | None, ...]:
        """Parsed input layouts (``None``: untouched, any rank)."""
        return self._inputs  # type: ignore[return-value]

    @property
    def outputs(self) -> tuple[Layout | str | None, ...]:
        """Parsed output layouts (``None``: invariant, any rank; ``"free"``)."""
        return self._outputs

    @property
    def skeleton(self) -> Skeleton:
        """The (first) input skeleton: the one hidden layouts follow."""
        return self._skeletons[0]

    @property
    def skeletons(self) -> tuple[Skeleton, ...]:
        """One skeleton per input."""
        return self._skeletons

    @property
    def output_skeleton(self) -> Skeleton:
        """The (first) output skeleton."""
        return self._output_skeletons[0]

    @property
    def output_skeletons(self) -> tuple[Skeleton, ...]:
        """One skeleton per output."""
        return self._output_skeletons

    @property
    def negate(self) -> tuple[int, ...]:
        return self._negate

    @property
    def output_negate(self) -> tuple[int, ...]:
        return self._output_negate

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    @property
    def n_inputs(self) -> int:
        return len(self._inputs)

    @property
    def n_outputs(self) -> int:
        return len(self._outputs)

    def is_invariant_input(self, index: int) -> bool:
        """True when the mirror leaves input ``index`` unchanged."""
        layout = self._inputs[self._index("input", index)]
        return not isinstance(layout, Layout) or layout.is_invariant

    def is_invariant_output(self, index: int) -> bool:
        """True when output ``index`` must not change under the mirror."""
        layout = self._outputs[self._index("output", index)]
        return layout is None or (isinstance(layout, Layout) and layout.is_invariant)

    def is_free_output(self, index: int) -> bool:
        """True when output ``index`` has no prescribed action (its Rep is whatever the
        conversion chose)."""
        return self._outputs[self._index("output", index)] == FREE

    # ------------------------------------------------------------------- axis Reps
    def input_axes(self, index: int, shape: Sequence[int]) -> dict[int, Rep]:
        """The Rep of every axis of input ``index`` (a tensor of ``shape``) that names ``j`` or
        ``c``; axes not in the dict are untouched.

        Raises:
            ValueError: the shape does not fit the layout (rank, joint count, a group that does
                not divide, a negated coordinate out of range).
        """
        return self._axes("input", index, shape)

    def output_axes(self, index: int, shape: Sequence[int]) -> dict[int, Rep]:
        """As :meth:`input_axes`, for output ``index`` (``{}`` for an invariant output).

        Raises:
            ValueError: also for a free output, which has no prescribed axes.
        """
        if self.is_free_output(index):
            raise ValueError(f"Spec output {index} is 'free': its action is the conversion's")
        return self._axes("output", index, shape)

    def mirror_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The mirror ``T x`` of a concrete input tensor."""
        return self._mirror("input", index, x)

    def mirror_output(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """The mirror ``T y`` of a concrete output tensor (``y`` itself when invariant)."""
        return self._mirror("output", index, y)

    # ------------------------------------------------------------------- internals
    def _index(self, side: str, index: int) -> int:
        n = len(self._inputs if side == "input" else self._outputs)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{side} index must be an integer, got {index!r}")
        if not -n <= index < n:
            raise IndexError(f"{side} index {index} is out of range: the Spec has {n} "
                             f"{side}{'s' if n != 1 else ''}")
        return int(index) % n

    def _mirror(self, side: str, index: int, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"mirror_{side} expects a torch.Tensor, got {type(x).__name__}")
        for dim, rep in self._axes(side, index, x.shape).items():
            x = rep.apply(x, dim)
        return x

    def _axes(self, side: str, index: int, shape: Sequence[int]) -> dict[int, Rep]:
        index = self._index(side, index)
        layout = (self._inputs if side == "input" else self._outputs)[index]
        shape = tuple(shape)
        for s in shape:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(f"shape must hold non-negative integers, got {shape!r}")
        if not isinstance(layout, Layout):
            return {}
        where = f"Spec {side} {index} (layout {layout.text!r})"
        if not layout.accepts_rank(len(shape)):
            need = (f"at least {layout.min_rank}" if layout.ellipsis is not None
                    else f"{layout.min_rank}")
            raise ValueError(
                f"{where}: the tensor has {len(shape)} axes (shape {shape}) but the layout names "
                f"{need}; write one name per tensor axis (or use '...' for any number of "
                f"untouched axes)")
        skeleton = (self._skeletons if side == "input" else self._output_skeletons)[index]
        negate = self._negate if side == "input" else self._output_negate
        out: dict[int, Rep] = {}
        assert layout.terms is not None
        for axis, terms, dim in zip(layout.axes, layout.terms, layout.dims(len(shape))):
            if JOINTS in axis or COORDS in axis:
                out[dim] = axis_rep(side, where, terms, dim, shape[dim], skeleton, negate,
                                     self._sizes)
        return out

    @staticmethod
    def check_part(key: str, value: Any, sizes: Mapping[str, int] | None = None) -> None:
        """Validate one constructor argument on its own (``input``, ``output``, ``negate``,
        ``output_negate``), as spec files do to name the key at fault."""
        if key in ("input", "output"):
            for i, layout in enumerate(parse_side(value, key)):
                if isinstance(layout, Layout):
                    check_splittable(layout, f"Spec {key} {i}", sizes_of(sizes))
        else:
            normalise_negate(value, key)

    # ------------------------------------------------------------------- files and presets
    def to_dict(self) -> dict[str, Any]:
        """The Spec as JSON-able data, read back by :meth:`from_dict` (see
        :mod:`symmetrize.spec_files`)."""
        from symmetrize.spec_files import spec_to_dict
        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """Build a Spec from :meth:`to_dict` data or a hand-written table; every problem is a
        ``ValueError`` naming the key."""
        from symmetrize.spec_files import spec_from_dict
        return spec_from_dict(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> Spec:
        """Read a Spec from a ``.json`` or ``.toml`` file (parsed as data, never run)."""
        from symmetrize.spec_files import load_spec
        return load_spec(cls, path)

    @classmethod
    def presets(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`: every skeleton preset name (a pose sequence) and the
        same name with ``-action`` (an action recogniser), e.g. ``"h36m"``, ``"ntu-action"``."""
        names = Skeleton.presets()
        return tuple(names) + tuple(f"{name}-action" for name in names)

    @classmethod
    def preset(cls, name: str) -> Spec:
        """A ready-made Spec, by (case-insensitive) name.

        - ``"<skeleton>"`` (``"h36m"``, ``"coco"``, ...): a pose-sequence model (VideoPose3D
          lifter, forecaster): ``Spec(input="n t j c", output="n t j c", skeleton=<skeleton>)``.
        - ``"<skeleton>-action"``: an ST-GCN-style action recogniser: ``Spec(input="n c t j m",
          output=None, skeleton=<skeleton>)``.

        Raises:
            ValueError: an unknown name (the message lists the presets).
        """
        if not isinstance(name, str):
            raise TypeError(f"a Spec preset name must be a string, got {type(name).__name__}")
        key = name.strip().lower()
        skeleton = key.removesuffix("-action")
        if skeleton not in Skeleton.presets():
            raise ValueError(f"unknown spec preset {name!r}; available presets: "
                             f"{', '.join(cls.presets())}")
        if key.endswith("-action"):
            return cls(input="n c t j m", output=None, skeleton=skeleton, negate=(0,))
        return cls(input="n t j c", output="n t j c", skeleton=skeleton, negate=(0,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> str:
        import json
        return json.dumps(self.to_dict(), sort_keys=True)

    def __repr__(self) -> str:
        def side(layouts: tuple[Any, ...]) -> str:
            texts = [x.text if isinstance(x, Layout) else x for x in layouts]
            return repr(texts[0]) if len(texts) == 1 else repr(tuple(texts))

        def skel(items: tuple[Skeleton, ...]) -> str:
            names = [repr(s.name) if s.name is not None else repr(s) for s in items]
            return names[0] if len(set(names)) == 1 else f"({', '.join(names)})"

        parts = [f"input={side(self._inputs)}", f"output={side(self._outputs)}",
                 f"skeleton={skel(self._skeletons)}", f"negate={self._negate!r}"]
        if self._output_skeletons != (self._skeletons[0],) * len(self._outputs):
            parts.append(f"output_skeleton={skel(self._output_skeletons)}")
        if self._output_negate != self._negate:
            parts.append(f"output_negate={self._output_negate!r}")
        if self._sizes:
            parts.append(f"sizes={self._sizes!r}")
        return f"Spec({', '.join(parts)})"
