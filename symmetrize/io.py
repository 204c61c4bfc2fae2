"""Saving and reloading a converted model.

A converted model's state dict (the eigenbasis blocks of its layers, its mirror-shared tensors)
only loads into a model converted the same way, and pickling a whole model ties the file to code.
:func:`save_converted` therefore stores the state dict together with what the conversion needs to
be repeated: the Spec, the options and the example inputs' shapes, all as
plain data (the file loads with ``torch.load(..., weights_only=True)``). :func:`load_converted`
re-converts a freshly built plain model with them and loads the weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symmetrize.atomic import check_writable, write_atomic
from symmetrize.rep import Rep
from symmetrize.spec import Spec

__all__ = ["FORMAT", "VERSION", "check_readable", "load_converted", "load_error_reason",
           "read_converted", "save_converted"]

FORMAT = "symmetrize.converted"
"""The ``format`` entry of a file written by :func:`save_converted`."""
VERSION = 1
"""The ``version`` entry this module writes and reads."""

_SEED = 0
_HIDDEN_FIX = ("pass hidden as 'auto', 'skeleton', 'regular', 'eigen', a fraction, a Rep or a dict "
               "{module_path: 'auto' | 'regular' | 'skeleton' | 'eigen' | fraction | Rep} (a callable's "
               "choices can be written as such a "
               "dict: {path: fn(path, width)}), or save converted.state_dict() yourself and "
               "re-convert with the same callable before load_state_dict")


# ----------------------------------------------------------------------------- saving
def save_converted(converted: nn.Module, path: str | os.PathLike[str],
                   factory: str | None = None) -> None:
    """Write a model returned by :func:`~symmetrize.symmetrize` to ``path``.

    The file (written with ``torch.save``) holds ``{"format": "symmetrize.converted",
    "version": 1, "model": class name, "factory": factory, "spec": spec.to_dict(), "options":
    the conversion options, "inputs": the example inputs' shapes and dtypes, "state_dict":
    converted.state_dict() on the CPU}``. It is written to a temporary file in the same
    directory and renamed over ``path``, so ``path`` never holds a partial file.

    Args:
        converted: the converted model (it carries ``symmetrize_report``).
        path: the file to write.
        factory: how to build the plain model again, e.g. ``"mypkg.models:make_model"``; stored
            for the command line and for the reader's information.

    Raises:
        TypeError: ``converted`` was not made by ``symmetrize``; ``path`` is not a path.
        FileNotFoundError, IsADirectoryError, PermissionError: ``path`` cannot be written (its
            directory is missing or read-only, or it is a directory); checked first.
        FileLockedError: another process is writing ``path``.
        ValueError: an option or example input that is not plain data (a callable ``hidden``,
            an object as a forward argument); the message says what to pass instead.
    """
    check_writable(path, "converted-model file")
    report = getattr(converted, "symmetrize_report", None)
    spec = getattr(report, "spec", None)
    if report is None or not isinstance(spec, Spec):
        raise TypeError(f"{type(converted).__name__} is not a converted model (it has no "
                        "symmetrize_report with a Spec): pass the model returned by "
                        "symmetrize(model, spec, ...)")
    if factory is not None and not isinstance(factory, str):
        raise TypeError(f"factory must be a string such as 'mypkg.models:make_model', got "
                        f"{type(factory).__name__}")
    payload = {"format": FORMAT, "version": VERSION, "model": report.model, "factory": factory,
               "spec": spec.to_dict(), "options": _encode_options(report.options),
               "inputs": _encode_inputs(report.inputs),
               "state_dict": {key: value.detach().cpu() if isinstance(value, torch.Tensor)
                              else value for key, value in converted.state_dict().items()}}
    write_atomic(path, lambda f: torch.save(payload, f))


def _encode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        out[key] = _encode_hidden(value) if key == "hidden" else _plain(value, f"option {key}=")
    return out


def _encode_hidden(hidden: Any) -> Any:
    if isinstance(hidden, str) or (isinstance(hidden, (int, float)) and
                                   not isinstance(hidden, bool)):
        return hidden
    if isinstance(hidden, Rep):
        return hidden.to_dict()
    if isinstance(hidden, Mapping):
        return {str(path): _encode_hidden_entry(path, value) for path, value in hidden.items()}
    if callable(hidden):
        name = getattr(hidden, "__qualname__", type(hidden).__name__)
        raise ValueError(  # noqa: TRY004 - an option that cannot be saved: a ValueError
            f"cannot save the conversion options: hidden= is a callable ({name}), which "
            f"cannot be stored as data. Fix: {_HIDDEN_FIX}")
    raise ValueError(f"cannot save the conversion options: hidden={hidden!r} is not plain data. "
                     f"Fix: {_HIDDEN_FIX}")


def _encode_hidden_entry(path: Any, value: Any) -> Any:
    if isinstance(value, Rep):
        return value.to_dict()
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    what = f"a callable ({getattr(value, '__qualname__', type(value).__name__)})" \
        if callable(value) else f"{value!r}"
    raise ValueError(f"cannot save the conversion options: hidden[{path!r}] is {what}, which "
                     f"cannot be stored as data. Fix: {_HIDDEN_FIX}")


def _encode_inputs(inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(inputs):
        if "shape" in item:
            out.append({"shape": [int(s) for s in item["shape"]], "dtype": str(item["dtype"])})
        else:
            out.append({"value": _plain(item.get("value"), f"forward argument {i}")})
    return out


def _plain(value: Any, what: str) -> Any:
    """``value`` as plain data (tuples become lists), or a ValueError naming ``what``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, what) for k, v in value.items()}
    raise ValueError(f"cannot save {what}: a {type(value).__name__} cannot be stored as plain "
                     f"data. Fix: pass strings, numbers and lists of them (a tensor argument is "
                     f"stored by its shape)")


# ----------------------------------------------------------------------------- loading
def read_converted(path: str | os.PathLike[str],
                   map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """The content of a file written by :func:`save_converted`, checked, with ``spec`` as a
    :class:`~symmetrize.Spec` and ``options`` ready to pass to ``symmetrize``.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError, IsADirectoryError: no such file; a directory.
        ValueError: not such a file (another pickle, a plain state dict, a file torch.load
            refuses), an empty file, a newer format version, or damaged content; the message
            names the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or pathlib.Path), got "
                        f"{type(path).__name__}")
    where = check_readable(path, "converted-model file",
                           "give the file 'symmetrize convert -o' or save_converted wrote",
                           ": an interrupted copy? Fix: save or copy the model again")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"{where} is not a converted-model file that torch.load can read "
                         f"safely: {load_error_reason(err)}. Fix: pass a file written by "
                         f"save_converted or 'symmetrize convert'") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{where} is not a converted-model file (format {found!r}, expected "
                         f"{FORMAT!r}). Fix: pass a file written by save_converted; a plain "
                         f"state dict loads with model.load_state_dict(torch.load(path))")
    version = data.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise ValueError(f"{where} has format version {version!r}; this symmetrize reads "
                         f"version {VERSION}. Fix: "
                         + ("upgrade symmetrize" if newer else "save the model again"))
    for key, kind in (("spec", dict), ("options", dict), ("inputs", list),
                      ("state_dict", dict)):
        if not isinstance(data.get(key), kind):
            what = "no" if key not in data else f"a damaged ({type(data[key]).__name__})"
            raise ValueError(f"{where} has {what} {key!r} entry: the file is damaged. Fix: save "
                             f"the model again")
    try:
        spec = Spec.from_dict(data["spec"])
        options = _decode_options(data["options"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: bad stored spec or options: {err}") from None
    return {**data, "spec": spec, "options": options}


def load_converted(path: str | os.PathLike[str], model: nn.Module,
                   map_location: str | torch.device | None = "cpu") -> nn.Module:
    """Rebuild a converted model saved by :func:`save_converted`.

    ``model`` is a freshly built plain model of the saved architecture (its weights do not
    matter). It is converted again with the stored Spec, options and example-input shapes
    (random inputs from a fixed seed, no check), then the stored state dict is loaded strictly.

    Args:
        path: the file.
        model: the plain model, built as before (same class and constructor arguments).
        map_location: where ``torch.load`` puts the tensors (they are then copied into the
            model's parameters, on the model's device).

    Returns:
        The converted model, with the saved weights, as :func:`~symmetrize.symmetrize` returns
        it (``model`` itself is not modified).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_converted`; also a ``model`` that is not
            the saved architecture (the message names the first missing/unexpected keys).
    """
    from symmetrize.api import symmetrize

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a freshly built torch.nn.Module of the saved "
                        f"architecture, got {type(model).__name__}")
    data = read_converted(path, map_location)
    where = f"{os.fspath(path)!r}"
    inputs = _example_inputs(data["inputs"], *_device_dtype(model))
    try:
        converted = symmetrize(model, data["spec"], inputs, check=False, **data["options"])
    except Exception as err:
        first = _first_line(err)
        raise ValueError(f"{where}: converting the given {type(model).__name__} as the saved "
                         f"{data.get('model')} was converted failed ({type(err).__name__}: "
                         f"{first}). Fix: pass a freshly built model of the saved architecture"
                         f"{_factory_hint(data)}") from err
    state = data["state_dict"]
    _check_keys(converted, state, where, data)
    converted.load_state_dict(state, strict=True)
    return converted


def check_readable(path: str | os.PathLike[str], what: str, directory_fix: str,
                   empty_note: str) -> str:
    """Raise unless ``path`` is a non-empty file (``what``: how messages name it); return its
    quoted name for further messages."""
    where = repr(os.fspath(path))
    if Path(path).is_dir():
        raise IsADirectoryError(f"{what} {where} is a directory. Fix: {directory_fix}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {where} does not exist")
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{what} {where} is empty (0 bytes){empty_note}")
    return where


def load_error_reason(error: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` refused a file, in a few words (never the
    advice to load it with ``weights_only=False``, which would run code from the file)."""
    text = str(error)
    if "Weights only load failed" in text:
        lines = [line.strip() for line in text.splitlines()]
        culprit = next((line for line in lines if "GLOBAL" in line), "") or \
            next((line for line in lines if line.startswith("Unsupported")), "")
        return ("it holds pickled Python objects, not only tensors and plain containers"
                + (f" ({culprit.rstrip('.')})" if culprit else "")
                + "; such files are never loaded, because loading could run code")
    if "central directory" in text or "PytorchStreamReader" in text:
        return "the file is truncated or damaged (not a complete torch.save archive)"
    if isinstance(error, (KeyError, EOFError)) or "invalid load key" in text:
        return "it is not a file written by torch.save"
    first = _first_line(error)
    return first if len(first) <= 160 else first[:157] + "..."


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, without a ``Fix:`` part."""
    text = str(error).split("Fix:")[0].strip()
    return text.splitlines()[0].rstrip(" .") if text else type(error).__name__


def _factory_hint(data: Mapping[str, Any]) -> str:
    return f" (it was built by {data['factory']})" if data.get("factory") else ""


def _check_keys(converted: nn.Module, state: Mapping[str, Any], where: str,
                data: Mapping[str, Any]) -> None:
    """A ValueError naming the first missing/unexpected/mis-shaped keys, if any."""
    own = converted.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    shapes = [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
              for key, value in own.items() if key in state
              and isinstance(value, torch.Tensor) and isinstance(state[key], torch.Tensor)
              and state[key].shape != value.shape]
    if shapes:
        problems.append(f"shapes differ (saved vs model): {_first(shapes)}")
    if problems:
        raise ValueError(f"{where} does not fit the given {type(converted).__name__} (saved from "
                         f"a {data.get('model')}): {'; '.join(problems)}. Fix: pass a freshly "
                         f"built model of the saved architecture{_factory_hint(data)}")


def _first(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (and {len(items) - n} more)" if len(items) > n else "")


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    """Where the model lives and its floating dtype (``None`` without floating parameters)."""
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), None)
    return device, dtype


def _example_inputs(inputs: Sequence[Mapping[str, Any]], device: torch.device,
                    float_dtype: torch.dtype | None = None) -> tuple[Any, ...]:
    """Random tensors of the stored shapes (fixed seed), floating ones in ``float_dtype`` (the
    model's, so a model built in another precision traces) or the stored dtype; stored values as
    they are."""
    generator = torch.Generator().manual_seed(_SEED)
    out: list[Any] = []
    for i, item in enumerate(inputs):
        if "shape" not in item:
            out.append(item.get("value"))
            continue
        dtype = getattr(torch, str(item.get("dtype", "float32")), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(  # noqa: TRY004 - damaged file content
                f"forward argument {i}: unknown stored dtype {item.get('dtype')!r}")
        shape = [int(s) for s in item["shape"]]
        if dtype.is_floating_point:
            x = torch.randn(shape, generator=generator, dtype=float_dtype or dtype)
        elif dtype.is_complex:
            x = torch.randn(shape, generator=generator, dtype=dtype)
        else:
            x = torch.zeros(shape, dtype=dtype)
        out.append(x.to(device))
    return tuple(out)


def _decode_options(options: Any) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise ValueError(  # noqa: TRY004 - damaged file content
            f"options must be a dict, got {type(options).__name__}")
    out = dict(options)
    if "hidden" in out:
        out["hidden"] = _decode_hidden(out["hidden"])
    return out


def _decode_hidden(hidden: Any) -> Any:
    if _is_rep(hidden):
        return Rep.from_dict(hidden)
    if isinstance(hidden, Mapping):
        return {path: Rep.from_dict(v) if _is_rep(v) else v
                for path, v in hidden.items()}
    return hidden


def _is_rep(value: Any) -> bool:
    return (isinstance(value, Mapping) and set(value) == {"perm", "sign"}
            and all(isinstance(v, list) for v in value.values()))
