"""How the mirror acts on a model's inputs and outputs, written as einops-style layouts.

A :class:`Spec` annotates every forward argument and every output with a layout string such as
``"n t j c"`` or ``"n t (j c)"``. Two axis names are reserved: ``j`` is the joints axis (left and
right twins swap) and ``c`` the coordinates axis (the ``negate`` coordinates flip sign). Every other
name is an axis the mirror leaves alone; a layout with neither ``j`` nor ``c`` is an invariant
tensor. Parentheses flatten several names into one tensor axis (first name outermost, as
``reshape`` lays it out) and a single ``...`` stands for any number of untouched axes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from symmetrize.rep import Rep
from symmetrize.skeleton import Skeleton

__all__ = ["COORDS", "JOINTS", "SPEC_KEYS", "Layout", "Spec", "parse_layout"]

JOINTS = "j"
"""Reserved axis name: the joints axis."""
COORDS = "c"
"""Reserved axis name: the coordinates axis."""

_TOKEN = re.compile(r"\s+|\.\.\.|[()]|[A-Za-z0-9_]+|.", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ----------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class Layout:
    """A parsed layout; build it with :func:`parse_layout`.

    Attributes:
        axes: one entry per named tensor axis, each the tuple of names flattened into it
            (a single name is a 1-tuple); ``...`` is not included.
        ellipsis: index into ``axes`` before which ``...`` stands, or ``None`` without one.
        text: the layout string as written.
    """

    axes: tuple[tuple[str, ...], ...]
    ellipsis: int | None = None
    text: str = field(default="", compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        """Every axis name, in order of appearance."""
        return tuple(name for axis in self.axes for name in axis)

    @property
    def has_joints(self) -> bool:
        return JOINTS in self.names

    @property
    def has_coords(self) -> bool:
        return COORDS in self.names

    @property
    def is_invariant(self) -> bool:
        """True when the layout names neither ``j`` nor ``c``: the mirror leaves it unchanged."""
        return not (self.has_joints or self.has_coords)

    @property
    def min_rank(self) -> int:
        """Tensor axes the layout names (a tensor may have more where there is a ``...``)."""
        return len(self.axes)

    def accepts_rank(self, ndim: int) -> bool:
        """Whether a tensor with ``ndim`` axes fits this layout."""
        return ndim >= self.min_rank if self.ellipsis is not None else ndim == self.min_rank

    def dims(self, ndim: int) -> tuple[int, ...]:
        """The tensor axis of each entry of :attr:`axes` for a tensor with ``ndim`` axes."""
        if not self.accepts_rank(ndim):
            raise ValueError(f"layout {str(self)!r} does not fit a tensor with {ndim} axes")
        extra = ndim - self.min_rank
        return tuple(k if self.ellipsis is None or k < self.ellipsis else k + extra
                     for k in range(self.min_rank))

    def __str__(self) -> str:
        parts = [axis[0] if len(axis) == 1 else f"({' '.join(axis)})" for axis in self.axes]
        if self.ellipsis is not None:
            parts.insert(self.ellipsis, "...")
        return " ".join(parts)


def _layout_error(text: str, pos: int, length: int, problem: str, fix: str) -> ValueError:
    shown = re.sub(r"\s", " ", text)
    caret = " " * pos + "^" * max(length, 1)
    return ValueError(f"invalid layout {text!r}: {problem}\n    {shown}\n    {caret}\n{fix}")


def parse_layout(layout: str) -> Layout:
    """Parse an einops-style layout such as ``"n t (j c)"`` or ``"... j c"``.

    Raises:
        TypeError: ``layout`` is not a string.
        ValueError: a bad character or name, an empty, nested or unbalanced group, a repeated
            name, or a misplaced or repeated ``...``; the message points at the token.
    """
    if not isinstance(layout, str):
        raise TypeError(f"a layout must be a string such as 'n t j c', got {type(layout).__name__}")
    text = layout
    axes: list[tuple[str, ...]] = []
    group: list[str] | None = None
    group_start = 0
    ellipsis: int | None = None
    ellipsis_pos = 0
    seen: dict[str, int] = {}
    for match in _TOKEN.finditer(text):
        tok, pos = match.group(), match.start()
        if tok.isspace():
            continue
        if tok == "(":
            if group is not None:
                raise _layout_error(text, pos, 1, "nested parentheses ('(' inside a group)",
                                    "groups cannot contain groups: list all the flattened names in "
                                    "one group, e.g. '(j c)'")
            group, group_start = [], pos
        elif tok == ")":
            if group is None:
                raise _layout_error(text, pos, 1, "unbalanced parentheses: ')' closes no group",
                                    "remove the ')' or add the matching '('")
            if not group:
                raise _layout_error(text, group_start, pos + 1 - group_start, "empty group '()'",
                                    "put the axis names to flatten inside it, or remove it")
            axes.append(tuple(group))
            group = None
        elif tok == "...":
            if group is not None:
                raise _layout_error(text, pos, 3, "'...' inside a group",
                                    "'...' stands for whole tensor axes: move it out of the "
                                    "parentheses")
            if ellipsis is not None:
                raise _layout_error(text, pos, 3,
                                    f"a second '...' (the first is at position {ellipsis_pos})",
                                    "a layout may contain a single '...': name the other axes")
            ellipsis, ellipsis_pos = len(axes), pos
        elif _NAME.fullmatch(tok):
            if tok in seen:
                raise _layout_error(text, pos, len(tok),
                                    f"axis name {tok!r} repeated (first at position {seen[tok]})",
                                    "each name may appear once in a layout: rename one of them")
            seen[tok] = pos
            if group is None:
                axes.append((tok,))
            else:
                group.append(tok)
        elif tok[0] in "0123456789":
            raise _layout_error(text, pos, len(tok), f"axis name {tok!r} starts with a digit",
                                "names are a letter or '_' followed by letters, digits or '_' "
                                "(sizes cannot be written in a layout): rename the axis")
        else:
            raise _layout_error(text, pos, len(tok), f"unexpected character {tok!r}",
                                "a layout holds axis names ([A-Za-z_][A-Za-z0-9_]*) separated by "
                                "spaces, '(' ')' around names flattened into one axis, and at "
                                "most one '...'")
    if group is not None:
        raise _layout_error(text, group_start, 1, "unbalanced parentheses: '(' is never closed",
                            "add the matching ')'")
    return Layout(tuple(axes), ellipsis, text)


# ----------------------------------------------------------------------------- spec
LayoutArg = str | None


def _skeleton_label(skeleton: Skeleton) -> str:
    return f"skeleton {skeleton.name!r}" if skeleton.name is not None else "the skeleton"


def _normalise_negate(negate: int | Iterable[int], what: str) -> tuple[int, ...]:
    if isinstance(negate, (int, np.integer)) and not isinstance(negate, bool):
        negate = (negate,)
    if isinstance(negate, (str, bytes)) or not isinstance(negate, Iterable):
        raise TypeError(f"{what} must be a tuple of coordinate indices such as (0,), got {negate!r}")
    out: list[int] = []
    for c in negate:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"{what} must hold integer coordinate indices, got {c!r} in {negate!r}")
        if int(c) in out:
            raise ValueError(f"{what} = {tuple(negate)!r} lists coordinate {int(c)} twice; list it once")
        out.append(int(c))
    return tuple(out)


def _parse_side(value: LayoutArg | Sequence[LayoutArg], side: str) -> tuple[Layout | None, ...]:
    items: tuple[LayoutArg, ...]
    if value is None or isinstance(value, str):
        items = (value,)
    elif isinstance(value, Sequence):
        items = tuple(value)
    else:
        raise TypeError(f"Spec {side} must be a layout string or a tuple of them (one per "
                        f"{'forward argument' if side == 'input' else 'output'}), "
                        f"got {type(value).__name__}")
    if not items:
        raise ValueError(f"Spec {side} is empty: give one layout per "
                         f"{'forward argument' if side == 'input' else 'output'}")
    layouts: list[Layout | None] = []
    for i, item in enumerate(items):
        if item is None:
            layouts.append(None)
            continue
        if not isinstance(item, str):
            raise TypeError(f"Spec {side} {i}: a layout must be a string such as 'n t j c' or "
                            f"None, got {type(item).__name__}")
        try:
            layout = parse_layout(item)
        except ValueError as err:
            raise ValueError(f"Spec {side} {i}: {err}") from None
        _check_splittable(layout, f"Spec {side} {i}")
        layouts.append(layout)
    return tuple(layouts)


def _check_splittable(layout: Layout, where: str) -> None:
    """A group holding ``j`` or ``c`` may have at most one member of unknown size (not ``j``)."""
    for k, axis in enumerate(layout.axes):
        unknown = [name for name in axis if name != JOINTS]
        if (JOINTS in axis or COORDS in axis) and len(unknown) > 1:
            ungrouped = Layout(layout.axes[:k] + tuple((name,) for name in axis)
                               + layout.axes[k + 1:],
                               layout.ellipsis if layout.ellipsis is None or layout.ellipsis <= k
                               else layout.ellipsis + len(axis) - 1)
            raise ValueError(
                f"{where} (layout {layout.text!r}): the layout can't be split: group "
                f"'({' '.join(axis)})' flattens {len(unknown)} axes of unknown size "
                f"({', '.join(map(repr, unknown))}) and only the size of 'j' is known (from the "
                f"skeleton), so a group may hold at most one name besides 'j'; use a non-grouped "
                f"layout such as {str(ungrouped)!r} (reshape the tensor to match)")


class Spec:
    """How the mirror acts on each input and output of a model.

    Args:
        input: a layout string per forward argument (a single string for one argument); ``None``
            marks an argument the mirror leaves alone, of any rank.
        output: a layout string per output; ``None`` marks an invariant output of any rank.
        skeleton: the input skeleton, a :class:`~symmetrize.Skeleton` or a preset name.
        negate: input coordinate indices that flip sign (the horizontal one), e.g. ``(0,)``.
        output_skeleton: the output skeleton; defaults to ``skeleton``.
        output_negate: output coordinates that flip sign; defaults to ``negate``.

    Raises:
        ValueError: a bad layout (naming the input/output), duplicate ``negate`` entries, or no
            input that names ``j`` or ``c`` (the mirror would act on nothing).
        TypeError: arguments of the wrong type.
    """

    def __init__(self, input: LayoutArg | Sequence[LayoutArg], output: LayoutArg | Sequence[LayoutArg],
                 skeleton: Skeleton | str, negate: int | Iterable[int] = (0,),
                 output_skeleton: Skeleton | str | None = None,
                 output_negate: int | Iterable[int] | None = None) -> None:
        self._inputs = _parse_side(input, "input")
        self._outputs = _parse_side(output, "output")
        self._skeleton = Skeleton.coerce(skeleton)
        self._output_skeleton = (self._skeleton if output_skeleton is None
                                 else Skeleton.coerce(output_skeleton))
        self._negate = _normalise_negate(negate, "negate")
        self._output_negate = (self._negate if output_negate is None
                               else _normalise_negate(output_negate, "output_negate"))
        if all(layout is None or layout.is_invariant for layout in self._inputs):
            shown = ", ".join(repr(None if x is None else x.text) for x in self._inputs)
            raise ValueError(
                f"Spec input ({shown}) names neither the joints axis 'j' nor the coordinates axis "
                f"'c', so the mirror would act on no input; mark those axes with the reserved "
                f"names 'j' and 'c' (e.g. 'n t j c' or 'n t (j c)')")
        self._joint_reps = {"input": Rep.joints(self._skeleton),
                            "output": Rep.joints(self._output_skeleton)}
        self._dict: dict[str, Any] | None = None

    # ------------------------------------------------------------------- read-only views
    @property
    def inputs(self) -> tuple[Layout | None, ...]:
        """Parsed input layouts (``None``: untouched, any rank)."""
        return self._inputs

    @property
    def outputs(self) -> tuple[Layout | None, ...]:
        """Parsed output layouts (``None``: invariant, any rank)."""
        return self._outputs

    @property
    def skeleton(self) -> Skeleton:
        return self._skeleton

    @property
    def output_skeleton(self) -> Skeleton:
        return self._output_skeleton

    @property
    def negate(self) -> tuple[int, ...]:
        return self._negate

    @property
    def output_negate(self) -> tuple[int, ...]:
        return self._output_negate

    @property
    def n_inputs(self) -> int:
        return len(self._inputs)

    @property
    def n_outputs(self) -> int:
        return len(self._outputs)

    def is_invariant_input(self, index: int) -> bool:
        """True when the mirror leaves input ``index`` unchanged."""
        layout = self._layouts("input")[self._index("input", index)]
        return layout is None or layout.is_invariant

    def is_invariant_output(self, index: int) -> bool:
        """True when output ``index`` must not change under the mirror."""
        layout = self._layouts("output")[self._index("output", index)]
        return layout is None or layout.is_invariant

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
        """As :meth:`input_axes`, for output ``index`` (``{}`` for an invariant output)."""
        return self._axes("output", index, shape)

    def mirror_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The mirror ``T x`` of a concrete input tensor."""
        return self._mirror("input", index, x)

    def mirror_output(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """The mirror ``T y`` of a concrete output tensor (``y`` itself when invariant)."""
        return self._mirror("output", index, y)

    # ------------------------------------------------------------------- internals
    def _layouts(self, side: str) -> tuple[Layout | None, ...]:
        return self._inputs if side == "input" else self._outputs

    def _index(self, side: str, index: int) -> int:
        n = len(self._layouts(side))
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
        layout = self._layouts(side)[index]
        shape = tuple(shape)
        for s in shape:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(f"shape must hold non-negative integers, got {shape!r}")
        if layout is None:
            return {}
        where = f"Spec {side} {index} (layout {layout.text!r})"
        if not layout.accepts_rank(len(shape)):
            need = (f"at least {layout.min_rank}" if layout.ellipsis is not None
                    else f"{layout.min_rank}")
            raise ValueError(
                f"{where}: the tensor has {len(shape)} axes (shape {shape}) but the layout names "
                f"{need}; write one name per tensor axis (or use '...' for any number of "
                f"untouched axes)")
        out: dict[int, Rep] = {}
        for axis, dim in zip(layout.axes, layout.dims(len(shape))):
            if JOINTS in axis or COORDS in axis:
                out[dim] = self._axis_rep(side, where, axis, dim, shape[dim])
        return out

    def _axis_rep(self, side: str, where: str, axis: tuple[str, ...], dim: int, size: int) -> Rep:
        skeleton = self._skeleton if side == "input" else self._output_skeleton
        skeleton_kw = "skeleton" if side == "input" else "output_skeleton"
        label = axis[0] if len(axis) == 1 else f"({' '.join(axis)})"
        n_joints = len(skeleton)
        unknown = [name for name in axis if name != JOINTS]
        known = n_joints if JOINTS in axis else 1
        if not unknown and size != known:
            raise ValueError(
                f"{where}: axis {dim} ({label!r}) has size {size} but {_skeleton_label(skeleton)} "
                f"has {n_joints} joints; pass a tensor with {n_joints} joints or the right "
                f"{skeleton_kw}")
        if unknown and size % known:
            raise ValueError(
                f"{where}: axis {dim} ({label!r}) has size {size}, which is not a multiple of "
                f"the {n_joints} joints of {_skeleton_label(skeleton)}, so {unknown[0]!r} can't "
                f"be inferred; expected a multiple of {n_joints} ({n_joints} * {unknown[0]}): "
                f"check the {skeleton_kw} and the layout")
        inferred = size // known
        rep: Rep | None = None
        for name in axis:
            if name == JOINTS:
                part = self._joint_reps[side]
            elif name == COORDS:
                part = self._coords_rep(side, where, label, dim, inferred)
            else:
                part = Rep.trivial(inferred)
            rep = part if rep is None else rep.kron(part)
        assert rep is not None
        return rep

    def _coords_rep(self, side: str, where: str, label: str, dim: int, n_coords: int) -> Rep:
        negate = self._negate if side == "input" else self._output_negate
        negate_kw = "negate" if side == "input" else "output_negate"
        for c in negate:
            if not -n_coords <= c < n_coords:
                valid = f"0..{n_coords - 1}" if n_coords else "none (C = 0)"
                raise ValueError(
                    f"{where}: {negate_kw}={negate!r} names coordinate {c} but axis {dim} "
                    f"({label!r}) holds {n_coords} coordinates (C = {n_coords}); valid indices are "
                    f"{valid}: fix {negate_kw} or the layout")
        return Rep.coords(n_coords, negate)

    # ------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The Spec as JSON-able data, read back by :meth:`from_dict`.

        ``{"input": [layout or None, ...], "output": [...], "skeleton": preset name or skeleton
        dict, "negate": [...], "output_skeleton": None (the same as ``skeleton``) or as
        ``skeleton``, "output_negate": [...]}``. Layouts are written in canonical form (single
        spaces), so two Specs that act alike give equal dicts.
        """
        if self._dict is None:
            out_skeleton = (None if self._output_skeleton == self._skeleton
                            else _skeleton_data(self._output_skeleton))
            self._dict = {"input": [_layout_text(x) for x in self._inputs],
                          "output": [_layout_text(x) for x in self._outputs],
                          "skeleton": _skeleton_data(self._skeleton),
                          "negate": list(self._negate),
                          "output_skeleton": out_skeleton,
                          "output_negate": list(self._output_negate)}
        return json.loads(json.dumps(self._dict))  # a deep copy the caller may change

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        """Build a Spec from :meth:`to_dict` data or a hand-written table.

        Keys: ``input`` and ``output`` (a layout string or a list of them; ``None`` or ``"none"``
        for an untouched input / invariant output), ``skeleton`` (a preset name or a skeleton
        table, see :meth:`Skeleton.from_dict`), and optionally ``negate`` (default ``[0]``),
        ``output_skeleton`` and ``output_negate`` (default: as the input side).

        Raises:
            ValueError: not a mapping, an unknown or missing key, or a bad value; the message
                names the key.
        """
        if not isinstance(data, Mapping):
            raise ValueError(  # noqa: TRY004 - a file's content: every problem is a ValueError
                f"a spec must be a table/object with the keys "
                f"{', '.join(map(repr, SPEC_KEYS))}, got {type(data).__name__}")
        unknown = [key for key in data if key not in SPEC_KEYS]
        if unknown:
            raise ValueError(f"unknown spec key {unknown[0]!r}; allowed keys: "
                             f"{', '.join(map(repr, SPEC_KEYS))}")
        for key in ("input", "output", "skeleton"):
            if key not in data:
                raise ValueError(f"spec key {key!r} is missing; a spec needs 'input', 'output' "
                                 f"and 'skeleton' (a preset name such as 'h36m' or a skeleton "
                                 f"table)")
        kwargs: dict[str, Any] = {
            "input": _layouts_value(data["input"], "input"),
            "output": _layouts_value(data["output"], "output"),
            "skeleton": _skeleton_value(data["skeleton"], "skeleton"),
            "negate": _negate_value(data.get("negate", (0,)), "negate")}
        if data.get("output_skeleton") is not None:
            kwargs["output_skeleton"] = _skeleton_value(data["output_skeleton"], "output_skeleton")
        if data.get("output_negate") is not None:
            kwargs["output_negate"] = _negate_value(data["output_negate"], "output_negate")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None

    @classmethod
    def load(cls, path: str | Path) -> Spec:
        """Read a Spec from a ``.json`` or ``.toml`` file holding :meth:`from_dict`'s keys.

        The file is parsed as data (``json`` / ``tomllib``), never run.

        Raises:
            FileNotFoundError: no such file.
            ValueError: an unsupported extension, a file that does not parse, or bad content;
                the message starts with the file name.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".toml"):
            raise ValueError(f"spec file {str(path)!r}: unsupported extension {path.suffix!r}; "
                             f"write the spec as a .json or .toml file")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"spec file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"spec file {str(path)!r}: cannot read it: {err}") from None
        try:
            data = json.loads(text) if suffix == ".json" else _toml_loads(text)
        except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError
            kind = "JSON" if suffix == ".json" else "TOML"
            raise ValueError(f"spec file {str(path)!r}: not valid {kind}: {err}") from None
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"spec file {str(path)!r}: {err}") from None

    # ------------------------------------------------------------------- presets
    @classmethod
    def presets(cls) -> tuple[str, ...]:
        """Names accepted by :meth:`preset`: every skeleton preset name (a pose sequence) and the
        same name with ``-action`` (an action recogniser), e.g. ``"h36m"``, ``"ntu-action"``."""
        names = Skeleton.presets()
        return tuple(names) + tuple(f"{name}{_ACTION}" for name in names)

    @classmethod
    def preset(cls, name: str) -> Spec:
        """A ready-made Spec, by (case-insensitive) name.

        - ``"<skeleton>"`` (``"h36m"``, ``"coco"``, ...): a pose-sequence model such as a
          VideoPose3D lifter or a forecaster, ``Spec(input="n t j c", output="n t j c",
          skeleton=<skeleton>, negate=(0,))``: batch, time, joints, coordinates in and out, the
          first coordinate (x) flips.
        - ``"<skeleton>-action"``: an ST-GCN-style action recogniser, ``Spec(input="n c t j m",
          output=None, skeleton=<skeleton>, negate=(0,))``: batch, coordinates, time, joints,
          persons in; the outputs (class logits) are invariant.

        Raises:
            ValueError: an unknown name (the message lists the presets).
        """
        if not isinstance(name, str):
            raise TypeError(f"a Spec preset name must be a string, got {type(name).__name__}")
        key = name.strip().lower()
        skeleton = key.removesuffix(_ACTION)
        if skeleton not in Skeleton.presets():
            raise ValueError(f"unknown spec preset {name!r}; available presets: "
                             f"{', '.join(cls.presets())}")
        if key.endswith(_ACTION):
            return cls(input="n c t j m", output=None, skeleton=skeleton, negate=(0,))
        return cls(input="n t j c", output="n t j c", skeleton=skeleton, negate=(0,))

    # ------------------------------------------------------------------- equality
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def __repr__(self) -> str:
        def side(layouts: tuple[Layout | None, ...]) -> str:
            texts = [None if x is None else x.text for x in layouts]
            return repr(texts[0]) if len(texts) == 1 else repr(tuple(texts))

        def skel(s: Skeleton) -> str:
            return repr(s.name) if s.name is not None else repr(s)

        parts = [f"input={side(self._inputs)}", f"output={side(self._outputs)}",
                 f"skeleton={skel(self._skeleton)}", f"negate={self._negate!r}"]
        if self._output_skeleton is not self._skeleton:
            parts.append(f"output_skeleton={skel(self._output_skeleton)}")
        if self._output_negate is not self._negate:
            parts.append(f"output_negate={self._output_negate!r}")
        return f"Spec({', '.join(parts)})"


# ----------------------------------------------------------------------------- spec files
SPEC_KEYS = ("input", "output", "skeleton", "negate", "output_skeleton", "output_negate")
"""The keys of a spec file / :meth:`Spec.to_dict`."""

_ACTION = "-action"
_NONE_LAYOUTS = ("none", "null")


def _layout_text(layout: Layout | None) -> str | None:
    return None if layout is None else str(layout)


def _skeleton_data(skeleton: Skeleton) -> str | dict[str, Any]:
    preset = skeleton.preset_name()
    return preset if preset is not None else skeleton.to_dict()


def _layouts_value(value: Any, key: str) -> LayoutArg | list[LayoutArg]:
    """A layout string, ``None`` / ``"none"``, or a list of them, checked for type."""
    items = value if isinstance(value, list) else [value]
    out: list[LayoutArg] = []
    for i, item in enumerate(items):
        at = f"{key}[{i}]" if isinstance(value, list) else key
        if item is not None and not isinstance(item, str):
            raise ValueError(f"spec key {at!r}: a layout must be a string such as 'n t j c' (or "
                             f"null / 'none'), got {item!r}")
        if item is None or item.strip().lower() in _NONE_LAYOUTS:
            out.append(None)
            continue
        try:
            layout = parse_layout(item)
        except ValueError as err:
            raise ValueError(f"spec key {at!r}: {err}") from None
        _check_splittable(layout, f"spec key {at!r}")
        out.append(item)
    return out if isinstance(value, list) else out[0]


def _skeleton_value(value: Any, key: str) -> Skeleton:
    try:
        return Skeleton.from_dict(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec key {key!r}: {err}") from None


def _negate_value(value: Any, key: str) -> tuple[int, ...]:
    try:
        return _normalise_negate(value, key)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec key {key!r}: {err}") from None


def _toml_loads(text: str) -> dict[str, Any]:
    """Parse TOML with ``tomllib`` (Python >= 3.11) or ``tomli``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ValueError("reading TOML needs Python >= 3.11 or the 'tomli' package (pip "
                             "install tomli); or write the spec as JSON") from None
    return tomllib.loads(text)
