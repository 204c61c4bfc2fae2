"""What the command line builds from its arguments: the model from ``MODULE:FACTORY`` (and
``--state-dict``), the Spec from ``--spec`` and its overrides, the example inputs from
``--example``, and the conversion options."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from symmetrize.cli_checks import (
    DEFAULT_HINT,
    CLIError,
    check_example_memory,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    subjects,
)

__all__ = ["CLIError", "build_model", "conversion_options", "describe_error", "examples",
           "factory_path", "one_line", "spec_from_args"]

_SHAPE_SPLIT = re.compile(r"\s*[,x×]\s*")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def _split_target(target: str) -> tuple[str, str]:
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr.isidentifier():
        raise CLIError(f"MODULE:FACTORY must be a module or .py file, ':', and a function or "
                       f"class name, got {target!r}",
                       "e.g. mypkg.models:make_model or path/to/models.py:TemporalModel")
    return module, attr


def _is_file(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


@contextlib.contextmanager
def factory_path(target: str) -> Iterator[None]:
    """The factory's directory (a file target) or the working directory (a dotted module) on
    ``sys.path`` while the module is imported and the model built and run."""
    module = target.rpartition(":")[0]
    directory = (str(Path(module).resolve().parent) if _is_file(module) else os.getcwd())
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def _import(module: str) -> Any:
    if not _is_file(module):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and (module == err.name or module.startswith(err.name + ".")):
                raise CLIError(f"cannot import module {module!r}: {err}",
                               "check the name, run from the directory that holds the package "
                               "(or install it), or give a file: path/to/models.py:FACTORY") \
                    from None
            raise CLIError(f"importing {module!r} failed: {err}",
                           "install the package it needs") from err
        except Exception as err:
            raise CLIError(f"importing {module!r} failed: {type(err).__name__}: {err}",
                           DEFAULT_HINT) from err
    path = Path(module)
    if not path.is_file():
        raise CLIError(f"no such file: {module}",
                       "give an existing .py file (relative to the working directory), or a "
                       "dotted module name")
    name = path.stem if path.stem.isidentifier() else "symmetrize_factory"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot load {module} as a Python module", "give a .py file")
    loaded = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = loaded  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(loaded)
    except Exception as err:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise CLIError(f"importing {module} failed: {type(err).__name__}: {err}",
                       DEFAULT_HINT) from err
    return loaded


def build_model(args: argparse.Namespace) -> Any:
    """Import the factory, build the model, load ``--state-dict``, cast to ``--dtype``."""
    import torch
    from torch import nn

    module_name, attr = _split_target(args.target)
    module = _import(module_name)
    factory = getattr(module, attr, None)
    if factory is None:
        names = [n for n in vars(module) if not n.startswith("_")
                 and callable(getattr(module, n))]
        raise CLIError(f"{module_name} has no {attr!r}",
                       f"name a function or class defined there: {', '.join(names[:8]) or '-'}")
    if not callable(factory):
        raise CLIError(f"{args.target} is a {type(factory).__name__}, not a function or class",
                       "name a function (called with no arguments) or a class that returns "
                       "the model")
    torch.manual_seed(args.seed)  # the factory's initial weights are reproducible too
    try:
        model = factory()
    except Exception as err:
        raise CLIError(f"{args.target}() failed: {type(err).__name__}: {err}",
                       "FACTORY is called with no arguments: write a function that builds the "
                       "model with the arguments it needs") from err
    if not isinstance(model, nn.Module):
        raise CLIError(f"{args.target}() returned an object of type {type(model).__name__}, not "
                       f"a torch.nn.Module", "make FACTORY return the model")
    if args.state_dict:
        _load_state_dict(model, args.state_dict)
    return model.double() if args.dtype == "float64" else model


def _load_state_dict(model: Any, path: str) -> None:
    import torch

    if not Path(path).is_file():
        raise CLIError(f"no such file: {path}", "--state-dict takes a file saved with "
                                                "torch.save(model.state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        from symmetrize.io import load_error_reason

        raise CLIError(f"cannot read {path} with torch.load(weights_only=True): "
                       f"{load_error_reason(err)}",
                       "save the weights with torch.save(model.state_dict(), path)") from err
    if not isinstance(state, dict):
        raise CLIError(f"{path} holds a {type(state).__name__}, not a state dict",
                       "save the weights with torch.save(model.state_dict(), path)")
    if state.get("format") == "symmetrize.converted":
        raise CLIError(f"{path} is a converted model, not plain weights",
                       "check it with --load, or give the plain model's state dict")
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        nested = [k for k in ("state_dict", "model") if isinstance(state.get(k), dict)]
        if not nested:
            raise CLIError(f"{path} holds a dict that is not a state dict (keys "
                           f"{', '.join(map(str, list(state)[:5]))})",
                           "save the weights with torch.save(model.state_dict(), path)")
        state = state[nested[0]]
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CLIError(f"the weights in {path} do not fit the model: "
                       f"{lines[1] if len(lines) > 1 else lines[0] if lines else err}",
                       "build the same architecture the weights were saved from") from err


def spec_from_args(args: argparse.Namespace) -> Any:
    """``--spec`` (a preset or a file) with the ``--input``/``--output``/``--negate`` overrides."""
    from symmetrize.spec import Spec

    value: str = args.spec
    if value.lower().endswith((".json", ".toml")) or Path(value).is_file():
        spec = Spec.load(value)
    elif value.strip().lower() in Spec.presets():
        spec = Spec.preset(value)
    else:
        raise CLIError(f"--spec {value!r} is neither a spec preset nor a .json/.toml file",
                       f"presets: {', '.join(Spec.presets())}")
    if not (args.input or args.output or args.negate is not None):
        return spec
    data = spec.to_dict()
    if data["output_negate"] == data["negate"]:
        data["output_negate"] = None  # follows an overridden negate
    if args.input:
        data["input"] = args.input
    if args.output:
        data["output"] = [None if o.strip().lower() == "none" else o for o in args.output]
    if args.negate is not None:
        data["negate"] = _negate(args.negate)
    try:
        return Spec.from_dict(data)
    except ValueError as err:
        message, hint = describe_error(err)
        raise CLIError(f"--input/--output/--negate override: {message}", hint) from err


def _negate(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise CLIError(f"bad --negate {text!r}: not comma-separated integers",
                       "e.g. --negate 0 (x flips) or --negate none") from None


def examples(shapes: Sequence[str] | None, spec: Any, args: argparse.Namespace) -> tuple:
    """One random tensor per ``--example`` shape, in ``--dtype``, from ``--seed``."""
    import torch

    if not shapes:
        raise CLIError("no --example given", "give the shape of each forward argument, e.g. "
                                             "--example 2,243,17,2")
    sizes = [_shape(text) for text in shapes]
    if len(sizes) != spec.n_inputs:
        raise CLIError(f"{len(sizes)} --example shapes for a spec with {spec.n_inputs} inputs",
                       "give one --example per forward argument (and one --input layout each)")
    check_example_memory(sizes, shapes)
    generator = torch.Generator().manual_seed(args.seed)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    return tuple(torch.randn(size, generator=generator, dtype=dtype) for size in sizes)


def _shape(text: str) -> list[int]:
    parts = _SHAPE_SPLIT.split(text.strip())
    if not parts or not all(part.isdigit() for part in parts):
        raise CLIError(f"bad --example {text!r}: not a shape",
                       "write the sizes of one forward argument separated by ',' or 'x', "
                       "e.g. --example 2,243,17,2")
    sizes = [int(part) for part in parts]
    if 0 in sizes:
        raise CLIError(f"bad --example {text!r}: a size of 0 (an empty tensor shows the "
                       "conversion nothing)", "give every size >= 1, e.g. --example 2,243,17,2")
    return sizes


def conversion_options(args: argparse.Namespace) -> dict[str, Any]:
    """The conversion options given on the command line (the rest keep their defaults)."""
    options: dict[str, Any] = {}
    for name in ("hidden", "negated_fraction", "activation", "weights"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.invariant_at:
        options["invariant_at"] = (args.invariant_at[0] if len(args.invariant_at) == 1
                                   else list(args.invariant_at))
    for name in ("keep", "assume_equivariant", "average"):
        if getattr(args, name):
            options[name] = list(getattr(args, name))
    return options



def describe_error(error: BaseException) -> tuple[str, str]:
    """``(error, hint)``: a ``Fix:`` part or, for a message of several lines, its last line is
    the hint; the first line is the error."""
    if isinstance(error, CLIError):
        return str(error), error.hint
    text = str(error).strip()
    if not text or not isinstance(error, (ValueError, OSError)):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    head, fix = text, ""
    if "Fix:" in text:
        head, _, fix = text.partition("Fix:")
        head = head.strip().rstrip(".;:")
    lines = [line for line in head.splitlines() if line.strip()]
    if len(lines) > 1 and not fix:
        fix = lines[-1]
    if not fix.strip() and isinstance(error, FileNotFoundError):
        fix = "check the file name (relative paths start at the working directory)"
    return lines[0] if lines else text, fix.strip() or DEFAULT_HINT


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """The data and training options of ``symmetrize finetune``."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="synthetic", metavar="SOURCE",
                      help="'synthetic' or 'synthetic:N' (procedural motion, default), a folder "
                           "of motion-capture takes (.bvh of any supported naming and .amc with "
                           "one .asf per subject, mixed), or a VideoPose3D data_3d_*.npz archive")
    data.add_argument("--joint-map", action="append", metavar="FILE",
                      help="a TOML joint map for takes of another naming (repeatable; tried "
                           "before the built-in maps; see docs/data.md)")
    data.add_argument("--val-subjects", metavar="S,S", type=subjects,
                      help="subjects held out for validation (default: the last one)")
    data.add_argument("--frames", type=positive_int, metavar="N",
                      help="input frames per sample (default: the model's receptive_field())")
    data.add_argument("--cameras", type=positive_int, default=2, metavar="N",
                      help="virtual cameras filming each sequence (default 2)")
    data.add_argument("--noise", type=non_negative_float, default=0.0, metavar="SIGMA",
                      help="Gaussian noise on the normalised 2D keypoints (default 0)")
    train = parser.add_argument_group("training (see symmetrize.train.TrainConfig)")
    train.add_argument("--epochs", type=positive_int, default=10, help="default 10")
    train.add_argument("--batch-size", type=positive_int, default=64,
                       help="per process (default 64)")
    train.add_argument("--lr", type=positive_float, default=1e-3,
                       help="Adam's learning rate (1e-3)")
    train.add_argument("--lr-decay", type=positive_float, default=0.95,
                       help="per epoch, at most 1 (default 0.95)")
    train.add_argument("--grad-clip", type=positive_float,
                       help="max gradient norm (default: 5 for recurrent models, none otherwise)")
    train.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                       help="mixed precision on CUDA (default auto: bf16 where supported)")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:0")
    train.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (atomic writes)")
    train.add_argument("--checkpoint-every", type=non_negative_int, default=0, metavar="STEPS",
                       help="also checkpoint every this many steps (default: epoch ends)")
    train.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint when it exists (a run that already "
                            "finished trains nothing and keeps -o as it is)")
    train.add_argument("--max-minutes", type=positive_float,
                       help="stop (with a checkpoint) after this")
    train.add_argument("--max-steps", type=positive_int, help="stop after this many steps in all")
    train.add_argument("--log", metavar="FILE.csv|FILE.jsonl", help="per-step and per-epoch log")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--no-check", action="store_true",
                       help="train even if the model fails the equivariance check")
