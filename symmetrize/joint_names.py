"""Left/right pairing of joints by name: ``left_hip``/``right_hip``, ``LeftUpLeg``/``RightUpLeg``,
``hip.L``/``hip.R``, ``lhip``/``rhip``, ...; the mirror pairs a :class:`~symmetrize.Skeleton`
infers when none are given."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["infer_pairs", "tokenize_name"]

_SEPARATORS = re.compile(r"[\s_\-.]+")
# An upper-case run followed by a capitalised word ("LHip" -> "L", "Hip"), a
# (capitalised) lower-case word, an upper-case run, a number, or any other
# run of word characters (non-ASCII letters).
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+|[^\W\d_A-Za-z]+")
_SIDE_WORDS = {"left": "l", "right": "r"}
_SIDE_LETTERS = {"l": "l", "r": "r"}
_SIDE_NAME = {"l": "left", "r": "right"}
_OTHER = {"l": "r", "r": "l"}

Base = tuple[str, ...]


def tokenize_name(name: str) -> tuple[str, ...]:
    """Split a joint name into lower-case tokens.

    Splits on ``_ - . whitespace`` and on camelCase / PascalCase boundaries and
    between letters and digits: ``"LHipJoint"`` -> ``("l", "hip", "joint")``,
    ``"RightHandIndex1"`` -> ``("right", "hand", "index", "1")``.
    """
    tokens: list[str] = []
    for part in _SEPARATORS.split(name):
        tokens.extend(m.group(0).lower() for m in _WORD.finditer(part))
    return tuple(tokens)


def _has_letters(tokens: Iterable[str]) -> bool:
    return any(not t.isdigit() for t in tokens)


def _explicit_side(index: int, name: str, tokens: Base) -> tuple[str, Base] | None:
    """Return ``(side, base)`` if the name carries an explicit side marker."""
    marked: dict[int, str] = {}
    for i, tok in enumerate(tokens):
        if tok in _SIDE_WORDS:
            marked[i] = _SIDE_WORDS[tok]
    letter_marks: dict[int, str] = {}
    if len(tokens) > 1:
        for i in (0, len(tokens) - 1):
            if tokens[i] in _SIDE_LETTERS:
                letter_marks[i] = _SIDE_LETTERS[tokens[i]]
    if letter_marks:
        base_wo_letters = [t for i, t in enumerate(tokens) if i not in letter_marks and i not in marked]
        # "L1", "R_2": a lone letter before a number is only an implicit side
        # (lumbar vertebra "L1" must not demand a twin).
        if marked or _has_letters(base_wo_letters):
            marked.update(letter_marks)
    if not marked:
        return _glued_side(index, name, tokens)
    sides = set(marked.values())
    if len(sides) > 1:
        raise _both_sides_error(index, name, tokens)
    base = tuple(t for i, t in enumerate(tokens) if i not in marked)
    return sides.pop(), base


def _both_sides_error(index: int, name: str, tokens: Base) -> ValueError:
    return ValueError(
        f"joint {index} ({name!r}) carries both a left and a right marker in its name "
        f"(tokens {tokens}); rename it or pass pairs=[(left, right), ...] explicitly"
    )


def _glued_side(index: int, name: str, tokens: Base) -> tuple[str, Base] | None:
    """A side word glued to a word, as in ``leftarm`` or ``armright``: ``(side, base)`` with the
    word left over in place of the token (so ``leftarm`` and ``right_arm`` are twins)."""
    found: dict[int, tuple[str, str]] = {}
    for i, tok in enumerate(tokens):
        for word, side in _SIDE_WORDS.items():
            if len(tok) < len(word) + 2:
                continue
            rest = tok[len(word):] if tok.startswith(word) else (
                tok[: -len(word)] if tok.endswith(word) else None)
            if rest is not None and rest.isalpha():
                found[i] = (side, rest)
    if not found:
        return None
    if len({side for side, _ in found.values()}) > 1:
        raise _both_sides_error(index, name, tokens)
    base = tuple(found[i][1] if i in found else t for i, t in enumerate(tokens))
    return next(iter(found.values()))[0], base


def _implicit_sides(tokens: Base) -> list[tuple[str, Base]]:
    """Possible ``(side, base)`` readings used only when the twin exists."""
    out: list[tuple[str, Base]] = []
    if not tokens:
        return out
    first = tokens[0]
    if len(first) >= 3 and first[0] in _SIDE_LETTERS and first[1:3].isalpha():
        out.append((first[0], (first[1:],) + tokens[1:]))
    elif len(tokens) > 1 and first in _SIDE_LETTERS:
        out.append((first, tokens[1:]))  # "L1" / "R1"
    elif len(tokens) > 1 and tokens[-1] in _SIDE_LETTERS:
        out.append((tokens[-1], tokens[:-1]))  # "1_l" / "1_r"
    return out


def _ambiguous(names: Sequence[str], i: int, j: int, side: str, base: Base) -> ValueError:
    return ValueError(
        f"ambiguous mirror twins: joints {i} ({names[i]!r}) and {j} ({names[j]!r}) are both "
        f"{_SIDE_NAME[side]} joints with base name {'_'.join(base)!r}; rename one of them "
        f"or pass pairs=[(left, right), ...] explicitly"
    )


def infer_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Infer ``(left, right)`` mirror pairs from joint names.

    Explicit sides: a ``left``/``right`` token anywhere, or an ``l``/``r`` token
    first or last (``left_hip``, ``ShoulderLeft``, ``hip.R``, ``LThumb``).  Every
    explicitly sided joint must have a twin.  Implicit sides (``lhip``/``rhip``)
    pair only when both exist.  Twins share the token list left after removing
    the side marker.  Pairs are sorted by left index.
    """
    tokens = [tokenize_name(n) for n in names]
    explicit: dict[tuple[str, Base], list[int]] = {}
    implicit: dict[tuple[str, Base], list[int]] = {}
    implicit_of: dict[int, list[tuple[str, Base]]] = {}
    for i, (name, toks) in enumerate(zip(names, tokens)):
        found = _explicit_side(i, name, toks)
        if found is not None:
            explicit.setdefault(found, []).append(i)
        else:
            cands = _implicit_sides(toks)
            implicit_of[i] = cands
            for key in cands:
                implicit.setdefault(key, []).append(i)

    for (side, base), idxs in explicit.items():
        if len(idxs) > 1:
            raise _ambiguous(names, idxs[0], idxs[1], side, base)

    partner: dict[int, int] = {}
    left_of: dict[int, int] = {}  # left index -> right index

    def link(left: int, right: int) -> None:
        partner[left] = right
        partner[right] = left
        left_of[left] = right

    for (side, base), (i,) in sorted(explicit.items(), key=lambda kv: kv[1][0]):
        if i in partner:
            continue
        other = _OTHER[side]
        twins = explicit.get((other, base))
        if twins:
            j = twins[0]
        else:
            cands = [j for j in implicit.get((other, base), []) if j not in partner]
            if len(cands) > 1:
                raise _ambiguous(names, cands[0], cands[1], other, base)
            if not cands:
                example = f"{_SIDE_NAME[other]}_{'_'.join(base)}" if base else _SIDE_NAME[other]
                raise ValueError(
                    f"joint {i} ({names[i]!r}) is marked {_SIDE_NAME[side]} by its name but has no "
                    f"{_SIDE_NAME[other]} twin (expected a joint such as {example!r}); add the twin, "
                    f"rename the joint so it carries no side marker, or pass "
                    f"pairs=[(left, right), ...] explicitly"
                )
            j = cands[0]
        if side == "l":
            link(i, j)
        else:
            link(j, i)

    for i, cands in implicit_of.items():
        for side, base in cands:
            if i in partner:
                break
            other = _OTHER[side]
            twins = [j for j in implicit.get((other, base), []) if j not in partner and j != i]
            if not twins:
                continue
            same = [k for k in implicit.get((side, base), []) if k not in partner]
            if len(same) > 1:
                raise _ambiguous(names, same[0], same[1], side, base)
            if len(twins) > 1:
                raise _ambiguous(names, twins[0], twins[1], other, base)
            if side == "l":
                link(i, twins[0])
            else:
                link(twins[0], i)

    return tuple(sorted(left_of.items()))
