"""einops-style layout strings for a Spec: ``"n t j c"``, ``"n t (j c)"``, ``"n t (j c) + k"``.

Two axis names are reserved: ``j`` is the joints axis (left and right twins swap) and ``c`` the
coordinates axis (the negated coordinates flip sign). Every other name is an axis the mirror leaves
alone. Parentheses flatten several names into one tensor axis (first name outermost, as
``reshape`` lays it out); ``+`` concatenates terms along one tensor axis (``(j c) + k``: the pose
followed by ``k`` invariant features, e.g. an action one-hot); a single ``...`` stands for any
number of untouched axes. The layout ``"free"`` (outputs only) prescribes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["COORDS", "FREE", "JOINTS", "Layout", "parse_layout"]

JOINTS = "j"
"""Reserved axis name: the joints axis."""
COORDS = "c"
"""Reserved axis name: the coordinates axis."""
FREE = "free"
"""An output layout that prescribes no action: the output transforms as the conversion chose."""

_TOKEN = re.compile(r"\s+|\.\.\.|[()+]|[A-Za-z0-9_]+|.", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Term = tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """A parsed layout; build it with :func:`parse_layout`.

    Attributes:
        axes: one entry per named tensor axis: every name on it (a single name is a 1-tuple;
            ``...`` is not included).
        ellipsis: index into ``axes`` before which ``...`` stands, or ``None`` without one.
        text: the layout string as written.
        terms: per axis, the terms ``+`` concatenates (each a tuple of flattened names);
            ``None`` (the default) means one term per axis.
    """

    axes: tuple[tuple[str, ...], ...]
    ellipsis: int | None = None
    text: str = field(default="", compare=False)
    terms: tuple[tuple[Term, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.terms is None:
            object.__setattr__(self, "terms", tuple((axis,) for axis in self.axes))

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
        assert self.terms is not None
        parts = [" + ".join(term[0] if len(term) == 1 else f"({' '.join(term)})"
                            for term in terms) for terms in self.terms]
        if self.ellipsis is not None:
            parts.insert(self.ellipsis, "...")
        return " ".join(parts)


def _layout_error(text: str, pos: int, length: int, problem: str, fix: str) -> ValueError:
    shown = re.sub(r"\s", " ", text)
    caret = " " * pos + "^" * max(length, 1)
    return ValueError(f"invalid layout {text!r}: {problem}\n    {shown}\n    {caret}\n{fix}")


def parse_layout(layout: str) -> Layout:
    """Parse an einops-style layout such as ``"n t (j c)"``, ``"... j c"`` or
    ``"n t (j c) + k"``.

    Raises:
        TypeError: ``layout`` is not a string.
        ValueError: a bad character or name, an empty, nested or unbalanced group, a repeated
            name, a misplaced ``+`` or a misplaced or repeated ``...``; the message points at the
            token.
    """
    if not isinstance(layout, str):
        raise TypeError(f"a layout must be a string such as 'n t j c', got {type(layout).__name__}")
    text = layout
    axes: list[list[Term]] = []
    group: list[str] | None = None
    group_start = 0
    ellipsis: int | None = None
    ellipsis_pos = 0
    seen: dict[str, int] = {}
    joining = False  # a '+' waits for its right-hand term
    plus_pos = 0

    def add_term(term: Term, pos: int) -> None:
        nonlocal joining
        if joining:
            axes[-1].append(term)
            joining = False
        else:
            axes.append([term])

    for match in _TOKEN.finditer(text):
        tok, pos = match.group(), match.start()
        if tok.isspace():
            continue
        if tok == "+":
            if group is not None or not axes or joining or (ellipsis == len(axes)):
                raise _layout_error(text, pos, 1, "'+' without a term on its left",
                                    "write '+' between two terms of one axis, e.g. '(j c) + k'")
            joining, plus_pos = True, pos
        elif tok == "(":
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
            add_term(tuple(group), group_start)
            group = None
        elif tok == "...":
            if group is not None or joining:
                raise _layout_error(text, pos, 3, "'...' inside a group or after '+'",
                                    "'...' stands for whole tensor axes: move it out")
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
                add_term((tok,), pos)
            else:
                group.append(tok)
        elif tok[0] in "0123456789":
            raise _layout_error(text, pos, len(tok), f"axis name {tok!r} starts with a digit",
                                "names are a letter or '_' followed by letters, digits or '_' "
                                "(sizes go in Spec(sizes={...})): rename the axis")
        else:
            raise _layout_error(text, pos, len(tok), f"unexpected character {tok!r}",
                                "a layout holds axis names ([A-Za-z_][A-Za-z0-9_]*) separated by "
                                "spaces, '(' ')' around names flattened into one axis, '+' "
                                "between terms concatenated on one axis, and at most one '...'")
    if group is not None:
        raise _layout_error(text, group_start, 1, "unbalanced parentheses: '(' is never closed",
                            "add the matching ')'")
    if joining:
        raise _layout_error(text, plus_pos, 1, "'+' without a term on its right",
                            "write '+' between two terms of one axis, e.g. '(j c) + k'")
    terms = tuple(tuple(axis) for axis in axes)
    flat = tuple(tuple(name for term in axis for name in term) for axis in axes)
    return Layout(flat, ellipsis, text, terms)
