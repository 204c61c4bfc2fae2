"""The ``symmetrize`` command line (also ``python -m symmetrize``): ``demo``, ``skeletons``,
``explain``, ``check``, ``convert``, ``finetune``. This module builds the parser; the commands
are in :mod:`symmetrize.cli_commands`, the value checks in :mod:`symmetrize.cli_checks`.

Every option is checked before any work starts. Errors print ``symmetrize: error: <what>`` and
``  hint: <how to fix it>`` on stderr and exit with code 2 (``--debug`` shows the Python
traceback instead); ``check`` exits 1 when the model is not equivariant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from symmetrize.cli_args import CLIError, add_training_args, describe_error, one_line
from symmetrize.cli_checks import fraction, positive_int, seed

__all__ = ["CLIError", "main"]

_PROG = "symmetrize"


class _Parser(argparse.ArgumentParser):
    """Usage errors in the same two-line form as every other error (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        hint = f"see '{self.prog} --help'"
        if message.endswith("expected one argument"):
            hint = ("give the option its value; a value that starts with '-' is read as an "
                    f"option unless attached with '=', e.g. --seed=-1 ({hint})")
        _print_error(message, hint)
        self.exit(2)


# ----------------------------------------------------------------------------- the parser
_EXPLAIN_EPILOG = """\
examples:
  symmetrize explain mypkg.models:make_model --spec h36m --example 2,243,17,2
  symmetrize explain models.py:TemporalModel --spec spec.toml --example 2x27x17x2 --markdown
  symmetrize explain models.py:make_stgcn --spec ntu-action --example 2,3,64,25,2 \\
      --invariant-at st_gcn_networks.3 --json > report.json
  symmetrize explain models.py:make_model --spec h36m --example 2,27,17,2 --graph graph.svg

Prints the conversion report (a dry run: nothing is saved): one row per traced node with the
Reps it reads and makes and what the conversion did there (replaced, switched, shared, kept...),
parameters before/after and the projection error of the weights; totals with the float64
equivariance error; warnings and notes. --json and --markdown print it in those formats; --graph
also writes the graph (.dot text; .svg/.png drawn with matplotlib)."""

_CHECK_EPILOG = """\
examples:
  symmetrize check mypkg.models:make_model --spec h36m --example 2,243,17,2
  symmetrize check models.py:make_model --load converted.pt
  symmetrize check models.py:make_model --load converted.pt --json

Compares f(T x) with T f(x) on random inputs in eval and train mode, in float64 and the model's
dtype, and prints a table (with the first node that breaks the symmetry when it fails). Without
--load it checks the plain model the factory builds; with --load, the converted model saved by
'symmetrize convert' (its spec and example shapes are the saved ones unless given).
Exit code: 0 equivariant, 1 not equivariant, 2 error."""

_CONVERT_EPILOG = """\
examples:
  symmetrize convert mypkg.models:make_model --spec h36m --example 2,243,17,2 -o converted.pt
  symmetrize convert models.py:make_model --state-dict pretrained.pt --spec h36m \\
      --example 2,243,17,2 --hidden regular -o converted.pt
  symmetrize convert models.py:make_stgcn --spec ntu-action --example 2,3,64,25,2 \\
      --invariant-at st_gcn_networks.3 -o converted.pt

Converts the model, prints a summary (parameters before -> after, replaced modules, float64
equivariance error) and saves it with symmetrize.io.save_converted. Reload it in Python with
symmetrize.io.load_converted(path, make_model()), or check it with
'symmetrize check MODULE:FACTORY --load converted.pt'."""

_FINETUNE_EPILOG = """\
examples:
  symmetrize finetune models.py:make_model --data synthetic --epochs 5 -o chiral.pt
  symmetrize finetune models.py:make_model --data ../shared/data/cmu --val-subjects 09 \\
      --epochs 20 --checkpoint run.ckpt --log run.csv -o chiral.pt
  symmetrize finetune models.py:make_model --data data_3d_h36m.npz --val-subjects S9,S11 \\
      --load converted.pt --max-minutes 60 --checkpoint run.ckpt --resume -o chiral.pt
  torchrun --nproc_per_node 2 -m symmetrize.cli finetune models.py:make_model --data synthetic \\
      -o chiral.pt

The model maps (N, frames, J, 2) normalised 2D keypoints to (N, frames_out, J, 3) root-relative
3D poses in the camera frame (a VideoPose3D-style lifter; frames = its receptive_field() or
--frames). --data is 'synthetic[:N]' (procedural motion), a folder of motion-capture takes
(.bvh of a known naming or with --joint-map FILE, .amc with one .asf per subject; in metres,
mapped to the spec's skeleton, split by subject = file prefix) or a VideoPose3D data_3d_*.npz;
each sequence is filmed by --cameras random virtual cameras. The model is checked for
equivariance before training, trained with Adam (VideoPose3D's schedules), validated by MPJPE
every epoch, and saved like 'symmetrize convert' does."""

_SKELETONS_EPILOG = """\
example:
  symmetrize skeletons

Lists each skeleton preset (joint count and mirror pairs), then the Spec presets that --spec
accepts."""

_TARGET_HELP = ("the model factory: a dotted module or a .py file, ':', and a function (called "
                "with no arguments) or class that returns the torch.nn.Module, e.g. "
                "mypkg.models:make_model or path/to/models.py:TemporalModel")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG,
                     description="Make PyTorch human-pose networks chirality-equivariant.",
                     epilog="run 'symmetrize COMMAND --help' for a command's options and "
                            "examples")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="convert, check and fine-tune a VideoPose3D-style lifter, plain vs chiral",
        description="Build a VideoPose3D-style temporal lifter (27 frames), convert it, print the "
                    "report and the equivariance check, fine-tune the plain and the chiral model "
                    "for the same epochs on procedural motion (or --data DIR of BVH takes) and "
                    "print parameters, MPJPE (plain, plain + flip test-time averaging, chiral) "
                    "and inference time. A few minutes on a CPU.",
        epilog="examples:\n  symmetrize demo\n  symmetrize demo --quick\n"
               "  symmetrize demo --data ../shared/data/cmu --epochs 3\n"
               "  symmetrize demo --full --data ../shared/data/cmu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--quick", action="store_true", help="a smoke run of well under a minute")
    demo.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    demo.add_argument("--data", metavar="SOURCE",
                      help="a folder of motion-capture takes (.bvh, .amc with one .asf per "
                           "subject) or a data_3d_*.npz instead of procedural motion")
    demo.add_argument("--joint-map", action="append", metavar="FILE",
                      help="a TOML joint map for takes of another naming (repeatable; see "
                           "docs/data.md)")
    demo.add_argument("--epochs", type=positive_int,
                      help="epochs per model (default 4; 1 with --quick)")
    demo.add_argument("--full", action="store_true",
                      help="train to the plateau (early stopping, the best weights kept) with "
                           "benchmarks/results.py's protocol for the 27-frame lifter (docs/"
                           "results.md); minutes to an hour on a CPU")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_debug(demo)

    skeletons = commands.add_parser(
        "skeletons", help="list the skeleton presets and their mirror pairs, and the spec presets",
        description="List the skeleton presets and their mirror pairs, and the Spec presets.",
        epilog=_SKELETONS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_debug(skeletons)

    explain = _command(commands, "explain", "print what the conversion would do",
                       "Convert a model in memory and print the conversion report.",
                       _EXPLAIN_EPILOG)
    _add_model_args(explain, need_spec=True)
    _add_conversion_args(explain)
    out = explain.add_argument_group("output")
    formats = out.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print the report as JSON")
    formats.add_argument("--markdown", action="store_true",
                         help="print the report as Markdown tables")
    out.add_argument("--graph", metavar="FILE",
                     help="also write the graph with its Reps: FILE.dot (Graphviz text), "
                          "FILE.svg or FILE.png (needs matplotlib)")

    check = _command(commands, "check", "test a model's equivariance on random inputs",
                     "Check f(T x) == T f(x) on random inputs; exit code 1 when it fails.",
                     _CHECK_EPILOG)
    _add_model_args(check, need_spec=False)
    check.add_argument("--load", metavar="FILE",
                       help="check the converted model saved in FILE (by 'symmetrize convert' "
                            "or save_converted), rebuilt on the factory's model")
    check.add_argument("--json", action="store_true", help="print the result as JSON")

    convert = _command(commands, "convert", "convert a model and save it",
                       "Convert a model, print a summary and save it for load_converted.",
                       _CONVERT_EPILOG)
    _add_model_args(convert, need_spec=True)
    _add_conversion_args(convert)
    convert.add_argument("-o", "--out", metavar="FILE", required=True,
                         help="where to save the converted model (written atomically)")

    finetune = _command(commands, "finetune", "convert a 2D-to-3D lifter and fine-tune it",
                        "Convert a temporal 2D-to-3D pose lifter (or reload a converted one) and "
                        "train it on 3D motion filmed by virtual cameras.", _FINETUNE_EPILOG)
    _add_model_args(finetune, need_spec=False)
    _add_conversion_args(finetune)
    add_training_args(finetune)
    finetune.add_argument("--load", metavar="FILE",
                          help="start from a converted model saved by 'symmetrize convert'")
    finetune.add_argument("--variant", choices=("chiral", "plain", "plain+flip"),
                          default="chiral",
                          help="chiral (convert; default), or train the plain model as it is "
                               "(plain) or as VideoPose3D does (plain+flip: flip augmentation); "
                               "plain variants also report flip test-time averaging and save a "
                               "plain state dict")
    finetune.add_argument("-o", "--out", metavar="FILE", required=True,
                          help="where to save the fine-tuned converted model (atomically)")
    return parser


def _command(commands: Any, name: str, summary: str, description: str,
             epilog: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: the global --debug (before the command) is not overwritten by this default
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks on errors (also accepted before COMMAND)")


def _add_model_args(parser: argparse.ArgumentParser, need_spec: bool) -> None:
    parser.add_argument("target", metavar="MODULE:FACTORY", help=_TARGET_HELP)
    group = parser.add_argument_group("model and spec")
    group.add_argument("--spec", required=need_spec, metavar="SPEC",
                       help="a spec preset (see 'symmetrize skeletons': h36m, ntu-action, ...) "
                            "or a .json/.toml spec file"
                            + ("" if need_spec else "; default with --load: the saved spec"))
    group.add_argument("--input", action="append", metavar="LAYOUT",
                       help="override the spec's input layout (repeat once per forward "
                            "argument), e.g. 'n t (j c)'")
    group.add_argument("--output", action="append", metavar="LAYOUT",
                       help="override the spec's output layout (repeat once per output); "
                            "'none' for an invariant output")
    group.add_argument("--negate", metavar="COORDS",
                       help="override the coordinates that flip sign: comma-separated indices "
                            "such as 0 or 0,2; 'none' for no sign flip")
    group.add_argument("--example", action="append", metavar="SHAPE",
                       help="the shape of a random example input, one per forward argument: "
                            "2,243,17,2 or 2x243x17x2"
                            + ("" if need_spec else " (default with --load: the saved shapes)"))
    group.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="dtype of the model and the example inputs (default float32)")
    group.add_argument("--seed", type=seed, default=0,
                       help="seed of the random example inputs and of the factory's initial "
                            "weights (default 0)")
    group.add_argument("--state-dict", metavar="FILE",
                       help="load pretrained plain weights (a state dict saved with torch.save, "
                            "read with weights_only=True) into the factory's model first")


def _add_conversion_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("conversion options (see symmetrize.symmetrize)")
    group.add_argument("--hidden", choices=("auto", "skeleton", "regular", "eigen"),
                       help="hidden Rep policy: auto (default: the paper's skeleton layout, "
                            "regular pairs where LayerNorm, GELU, softmax or attention need "
                            "them), skeleton (always the paper's layout), regular (swapped "
                            "pairs only, activations kept) or eigen (channels in the mirror's "
                            "eigenbasis: fastest)")
    group.add_argument("--negated-fraction", type=fraction, metavar="F",
                       help="fraction of hidden dims that flip sign (default: 1/3 in the "
                            "skeleton layout, 1/2 with --hidden eigen)")
    group.add_argument("--activation", choices=("tanh", "mixed"),
                       help="a non-odd activation on flipping channels becomes tanh (default) "
                            "or is kept on the channels that do not flip (mixed)")
    group.add_argument("--invariant-at", action="append", metavar="PATH",
                       help="module path of the invariance layer or block (repeatable)")
    group.add_argument("--weights", choices=("project", "reinit"),
                       help="project the pretrained weights (default) or re-initialise")
    group.add_argument("--keep", action="append", metavar="PATH",
                       help="leave this module untouched (repeatable)")
    group.add_argument("--assume-equivariant", action="append", metavar="PATH",
                       help="trust this module of yours as equivariant (repeatable)")
    group.add_argument("--average", action="append", metavar="PATH",
                       help="make this module equivariant by averaging f(x) and T f(T x) "
                            "(repeatable)")


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symmetrize`` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        from symmetrize.cli_commands import COMMANDS

        return COMMANDS[args.command](args)
    except Exception as error:  # every error becomes the two-line report (KeyboardInterrupt not)
        if getattr(args, "debug", False):
            raise
        _print_error(*describe_error(error))
        return 2


def _print_error(message: str, hint: str) -> None:
    print(f"{_PROG}: error: {one_line(message)}\n  hint: {one_line(hint)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
