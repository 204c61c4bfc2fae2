"""Skeletons as plain data (:meth:`Skeleton.to_dict` / :meth:`Skeleton.from_dict`): a preset
name, ``{"preset": name}``, or ``{"names": [...]}`` with optional ``name``, ``pairs``, ``parents``
and ``edges``; every problem is a ``ValueError`` naming the key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from symmetrize.skeleton import Skeleton

__all__ = ["skeleton_from_dict"]

_DICT_KEYS = ("names", "name", "pairs", "parents", "edges")


def _field(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]`` (``None`` when absent), checked to be a list where one is expected."""
    value = data.get(key)
    if key == "name":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"skeleton key 'name' must be a string, got {value!r}")
        return value
    if value is not None and (isinstance(value, (str, bytes, Mapping))
                              or not isinstance(value, Sequence)):
        raise ValueError(f"skeleton key {key!r} must be a list, got {type(value).__name__}")
    return value


def _from_fields(cls: type[Skeleton], data: Mapping[str, Any]) -> Skeleton:
    """Build a skeleton key by key, so that an error names the key it comes from."""
    values = {key: _field(data, key) for key in _DICT_KEYS}
    steps = [("names", {"pairs": ()}), ("pairs", {"pairs": values["pairs"]}),
             ("parents", {"parents": values["parents"]}), ("edges", {"edges": values["edges"]})]
    kwargs: dict[str, Any] = {"names": values["names"], "name": values["name"]}
    skeleton = None
    for key, extra in steps:
        kwargs.update(extra)
        try:
            skeleton = cls(**kwargs)
        except (TypeError, ValueError) as err:
            blame = "names" if key == "pairs" and values["pairs"] is None else key
            raise ValueError(f"skeleton key {blame!r}: {err}") from None
    assert skeleton is not None
    return skeleton


def skeleton_from_dict(cls: type[Skeleton], data: Any) -> Skeleton:
    """A skeleton from a preset name or a table (see the module docstring)."""
    if isinstance(data, str):
        return cls.preset(data)
    if not isinstance(data, Mapping):
        raise ValueError(  # noqa: TRY004 - a file's content: every problem is a ValueError
            f"a skeleton must be a preset name or a table/object with the keys "
            f"'names' (and optionally {', '.join(map(repr, _DICT_KEYS[1:]))}) "
            f"or 'preset', got {type(data).__name__}")
    if "preset" in data:
        extra = sorted(set(data) - {"preset"})
        if extra:
            raise ValueError(f"skeleton key 'preset' excludes other keys, got also "
                             f"{', '.join(map(repr, extra))}; give either 'preset' or "
                             f"'names' with {', '.join(map(repr, _DICT_KEYS[1:]))}")
        try:
            return cls.preset(data["preset"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"skeleton key 'preset': {err}") from None
    unknown = [key for key in data if key not in _DICT_KEYS]
    if unknown:
        raise ValueError(f"unknown skeleton key {unknown[0]!r}; allowed keys: 'preset' or "
                         f"{', '.join(map(repr, _DICT_KEYS))}")
    if "names" not in data:
        raise ValueError("skeleton key 'names' is missing: list the joint names (or give "
                         "'preset' = a preset name)")
    return _from_fields(cls, data)
