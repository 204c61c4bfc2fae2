"""The ``symmetrize`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symmetrize",
        description="Make PyTorch human-pose networks chirality-equivariant.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="build, check and train a small chiral temporal lifter",
        description="Build a VideoPose3D-style temporal lifter from chiral layers, measure its "
                    "equivariance, and train it and its plain twin briefly on synthetic poses.")
    demo.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    commands.add_parser("skeletons", help="list the skeleton presets and their mirror pairs")
    return parser


def _skeletons() -> None:
    from symmetrize.skeleton import Skeleton

    for name in Skeleton.presets():
        skeleton = Skeleton.preset(name)
        pairs = ", ".join(f"{skeleton.names[a]}/{skeleton.names[b]}" for a, b in skeleton.pairs)
        print(f"{name:<9} {len(skeleton):>2} joints  {len(skeleton.pairs)} pairs: {pairs}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symmetrize`` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from symmetrize.demo import run_demo

            run_demo(quick=args.quick, seed=args.seed)
        elif args.command == "skeletons":
            _skeletons()
    except (ValueError, TypeError, RuntimeError, OSError) as error:
        if args.debug:
            raise
        print(f"symmetrize: error: {error}\n  (run with --debug for the traceback)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
