"""Spec files: a :class:`~symmetrize.spec.Spec` as plain data (``to_dict`` / ``from_dict``) and
as a ``.json`` or ``.toml`` file, parsed as data and never run.

Keys: ``input`` and ``output`` (a layout string or a list of them; ``None`` / ``"none"`` for an
untouched input or invariant output, ``"free"`` for a free output), ``skeleton`` (a preset name,
a skeleton table, or a list of them, one per input), and optionally ``negate`` (default
``[0]``), ``output_skeleton``, ``output_negate`` and ``sizes`` (``{"c": 2}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symmetrize.layout import FREE, parse_layout
from symmetrize.skeleton import Skeleton

if TYPE_CHECKING:
    from symmetrize.spec import Spec

__all__ = ["SPEC_KEYS", "load_spec", "spec_from_dict", "spec_to_dict"]

SPEC_KEYS = ("input", "output", "skeleton", "negate", "output_skeleton", "output_negate", "sizes")
"""The keys of a spec file / :meth:`Spec.to_dict`."""

_NONE_LAYOUTS = ("none", "null")


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """JSON-able data; layouts in canonical form, so that Specs that act alike give equal
    dicts."""
    def layout(x: Any) -> str | None:
        return None if x is None else FREE if x == FREE else str(x)

    def skeletons(items: tuple[Skeleton, ...]) -> Any:
        data = [_skeleton_data(s) for s in items]
        return data[0] if all(d == data[0] for d in data) else data

    out_skeleton = (None if spec.output_skeletons == (spec.skeleton,) * spec.n_outputs
                    else skeletons(spec.output_skeletons))
    data: dict[str, Any] = {"input": [layout(x) for x in spec.inputs],
                            "output": [layout(x) for x in spec.outputs],
                            "skeleton": skeletons(spec.skeletons),
                            "negate": list(spec.negate),
                            "output_skeleton": out_skeleton,
                            "output_negate": list(spec.output_negate)}
    data["sizes"] = dict(spec.sizes)
    return json.loads(json.dumps(data))  # a deep copy the caller may change


def spec_from_dict(cls: type[Spec], data: Any) -> Spec:
    """A Spec from :func:`spec_to_dict` data or a hand-written table.

    Raises:
        ValueError: not a mapping, an unknown or missing key, or a bad value; the message names
            the key.
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
            raise ValueError(f"spec key {key!r} is missing; a spec needs 'input', 'output' and "
                             f"'skeleton' (a preset name such as 'h36m' or a skeleton table)")
    kwargs: dict[str, Any] = {
        "input": _layouts_value(data["input"], "input"),
        "output": _layouts_value(data["output"], "output"),
        "skeleton": _skeletons_value(data["skeleton"], "skeleton"),
        "negate": _list_value(data.get("negate", (0,)), "negate")}
    if data.get("output_skeleton") is not None:
        kwargs["output_skeleton"] = _skeletons_value(data["output_skeleton"], "output_skeleton")
    if data.get("output_negate") is not None:
        kwargs["output_negate"] = _list_value(data["output_negate"], "output_negate")
    if data.get("sizes") is not None:
        if not isinstance(data["sizes"], Mapping):
            raise ValueError(f"spec key 'sizes' must be a table of name -> size, got "
                             f"{data['sizes']!r}")
        kwargs["sizes"] = dict(data["sizes"])
    for key in ("input", "output", "negate", "output_negate"):
        if key in kwargs:
            try:
                cls.check_part(key, kwargs[key], kwargs.get("sizes"))
            except (TypeError, ValueError) as err:
                raise ValueError(f"spec key {key!r}: {err}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(str(err)) from None


def load_spec(cls: type[Spec], path: str | Path) -> Spec:
    """Read a Spec from a ``.json`` or ``.toml`` file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unsupported extension, a file that does not parse, or bad content; the
            message starts with the file name.
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
        return spec_from_dict(cls, data)
    except ValueError as err:
        raise ValueError(f"spec file {str(path)!r}: {err}") from None


def _skeleton_data(skeleton: Skeleton) -> str | dict[str, Any]:
    preset = skeleton.preset_name()
    return preset if preset is not None else skeleton.to_dict()


def _layouts_value(value: Any, key: str) -> Any:
    """A layout string, ``None`` / ``"none"``, ``"free"``, or a list of them, checked."""
    items = value if isinstance(value, list) else [value]
    out: list[str | None] = []
    for i, item in enumerate(items):
        at = f"{key}[{i}]" if isinstance(value, list) else key
        if item is not None and not isinstance(item, str):
            raise ValueError(f"spec key {at!r}: a layout must be a string such as 'n t j c' (or "
                             f"null / 'none'), got {item!r}")
        if item is None or item.strip().lower() in _NONE_LAYOUTS:
            out.append(None)
            continue
        if item.strip() != FREE:
            try:
                parse_layout(item)
            except ValueError as err:
                raise ValueError(f"spec key {at!r}: {err}") from None
        out.append(item)
    return out if isinstance(value, list) else out[0]


def _skeletons_value(value: Any, key: str) -> Any:
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        at = f"{key}[{i}]" if isinstance(value, list) else key
        try:
            out.append(Skeleton.from_dict(item))
        except (TypeError, ValueError) as err:
            raise ValueError(f"spec key {at!r}: {err}") from None
    return out if isinstance(value, list) else out[0]


def _list_value(value: Any, key: str) -> Any:
    """A list of coordinate indices (the Spec checks the rest)."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"spec key {key!r} must be a list of coordinate indices such as [0], "
                         f"got {value!r}")
    return tuple(items)


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
