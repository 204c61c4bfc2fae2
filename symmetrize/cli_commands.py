"""What each ``symmetrize`` command does once its arguments are parsed. Every command checks
its files first (outputs writable and not inputs, inputs present), so a mistake is reported
before any work starts."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symmetrize.cli_args import (
    CLIError,
    build_model,
    conversion_options,
    examples,
    factory_path,
    spec_from_args,
)
from symmetrize.cli_checks import check_paths, config_from_args

__all__ = ["COMMANDS"]


def _inputs(args: argparse.Namespace) -> dict[str, str | None]:
    """The files a command reads, by option (an output may be none of them)."""
    module = getattr(args, "target", "").rpartition(":")[0]
    found: dict[str, str | None] = {"MODULE:FACTORY": module if module.endswith(".py") else None}
    for option in ("spec", "state_dict", "load", "data"):
        found["--" + option.replace("_", "-")] = getattr(args, option, None)
    for i, path in enumerate(getattr(args, "joint_map", None) or []):
        found[f"--joint-map #{i + 1}"] = path
    return found


def _need_file(option: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        what = "is a directory, not a file" if Path(path).is_dir() else "does not exist"
        raise CLIError(f"{option} {path} {what}",
                       "give an existing file (relative paths start at the working directory)")


# ----------------------------------------------------------------------------- commands
def _run_demo(args: argparse.Namespace) -> int:
    from symmetrize.demo import run_demo

    options: dict[str, Any] = {}
    if getattr(args, "joint_map", None):
        options["joint_map"] = args.joint_map
    run_demo(quick=args.quick, seed=args.seed, data=args.data, epochs=args.epochs,
             progress=not args.no_progress, full=getattr(args, "full", False), **options)
    return 0


def _run_skeletons(args: argparse.Namespace) -> int:
    from symmetrize.skeleton import Skeleton
    from symmetrize.spec import Spec

    for name in Skeleton.presets():
        skeleton = Skeleton.preset(name)
        pairs = ", ".join(f"{skeleton.names[a]}/{skeleton.names[b]}" for a, b in skeleton.pairs)
        print(f"{name:<9} {len(skeleton):>2} joints  {len(skeleton.pairs)} pairs: {pairs}")
    print("\nspec presets (--spec NAME):")
    width = max(map(len, Spec.presets()))
    for name in Spec.presets():
        spec = Spec.preset(name)
        layouts = f"input {spec.inputs[0]}"
        layouts += (", output invariant (class logits)" if spec.is_invariant_output(0)
                    else f", output {spec.outputs[0]}")
        kind = "action recogniser" if name.endswith("-action") else "pose sequence"
        print(f"  {name:<{width}}  {kind}: {layouts}, {spec.skeleton.name} skeleton, x flips")
    return 0


def _model_spec_inputs(args: argparse.Namespace) -> tuple[Any, Any, tuple[Any, ...]]:
    """The factory's model, the Spec and the random example inputs the arguments describe."""
    model = build_model(args)
    spec = spec_from_args(args)
    return model, spec, examples(args.example, spec, args)


def _run_explain(args: argparse.Namespace) -> int:
    from symmetrize.api import explain

    if args.graph:
        check_paths({"--graph": args.graph}, _inputs(args))
        if Path(args.graph).suffix.lower() not in (".dot", ".svg", ".png"):
            raise CLIError(f"--graph {args.graph}: the suffix must be .dot, .svg or .png",
                           "name the file graph.dot (text), graph.svg or graph.png")
    with factory_path(args.target):
        report = explain(*_model_spec_inputs(args), **conversion_options(args))
    if args.json:
        print(report.to_json())
    elif args.markdown:
        print(report.to_markdown())
    else:
        print(report)
    if args.graph:
        report.write_graph(args.graph)
        print(f"graph written to {args.graph}", file=sys.stderr)
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from symmetrize.passes.check import check

    if args.load and args.state_dict:
        raise CLIError("--state-dict and --load cannot be combined",
                       "--load brings the converted model's own weights: drop --state-dict")
    if not args.load and (not args.spec or not args.example):
        raise CLIError("check needs --spec and --example (or --load FILE)",
                       "e.g. symmetrize check models.py:make_model --spec h36m "
                       "--example 2,27,17,2")
    _need_file("--load", args.load)
    with factory_path(args.target):
        model = build_model(args)
        if args.load:
            from symmetrize.io import load_converted

            model = load_converted(args.load, model)
            spec = spec_from_args(args) if args.spec else None
            inputs = examples(args.example, spec or model.symmetrize_report.spec, args) \
                if args.example else None
        else:
            spec = spec_from_args(args)
            inputs = examples(args.example, spec, args)
        result = check(model, spec, inputs, seed=args.seed)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0 if result.passed else 1


def _run_convert(args: argparse.Namespace) -> int:
    from symmetrize.io import save_converted
    from symmetrize.api import symmetrize

    check_paths({"-o": args.out}, _inputs(args))
    with factory_path(args.target):
        converted = symmetrize(*_model_spec_inputs(args), **conversion_options(args))
    report = converted.symmetrize_report
    save_converted(converted, args.out, factory=args.target)
    print(f"Converted {report.model} from {args.target}: {report.parameters_before:,} -> "
          f"{report.parameters_after:,} trainable parameters (x{report.parameter_ratio:.4f}); "
          f"{len(report.replaced)} modules replaced by chiral twins, {len(report.switched)} "
          f"activations switched, {len(report.shared)} tensors mirror-shared; float64 "
          f"equivariance error {report.equivariance_error:.1e}"
          + (f"; {len(report.warnings)} warnings (see 'symmetrize explain')"
             if report.warnings else "")
          + f". Saved to {args.out}: reload it with symmetrize.io.load_converted(path, model) or "
          f"check it with 'symmetrize check {args.target} --load {args.out}'.")
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    from symmetrize.atomic import file_lock
    from symmetrize.finetune import finetune

    config = config_from_args(args)
    check_paths({"-o": args.out, "--checkpoint": args.checkpoint, "--log": args.log},
                _inputs(args))
    _need_file("--load", args.load)
    _need_file("--state-dict", args.state_dict)
    if args.load and args.variant != "chiral":
        raise CLIError(f"--variant {args.variant} trains the plain model: it cannot start from "
                       "the converted model --load brings", "drop --load, or use --variant "
                       "chiral")
    with contextlib.ExitStack() as outputs:
        if int(os.environ.get("RANK", "0")) == 0:  # a second run writing them: refused at once
            for path in (args.out, args.checkpoint, args.log):
                if path is not None:
                    outputs.enter_context(file_lock(path))
        with factory_path(args.target):
            model = build_model(args)
            spec = spec_from_args(args) if args.spec else None
            return finetune(model, spec, args, conversion_options(args), config=config)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _run_demo, "skeletons": _run_skeletons, "explain": _run_explain,
    "check": _run_check, "convert": _run_convert, "finetune": _run_finetune}
