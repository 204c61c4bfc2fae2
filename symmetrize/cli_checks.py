"""The command line's errors (:class:`CLIError`) and its checks of values before any work
starts: numbers in range (argparse types), output files that can be written and are not inputs,
example shapes that fit in memory, and the training options
(:class:`~symmetrize.train.TrainConfig`) under their option names."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_HINT", "MEMORY_FACTOR", "CLIError", "available_memory", "check_example_memory",
           "check_paths", "config_from_args", "fraction", "non_negative_float", "non_negative_int",
           "positive_float", "positive_int", "seed", "subjects"]

DEFAULT_HINT = "run with --debug for the Python traceback"

#: the conversion's peak memory over the float32 bytes of its example input, measured on a
#: VideoPose3D-style lifter with 256 channels (560x to 1070x; wider models need more)
MEMORY_FACTOR = 1000


class CLIError(Exception):
    """An error the command line reports as ``error: ...`` / ``hint: ...`` (exit code 2)."""

    def __init__(self, message: str, hint: str = DEFAULT_HINT) -> None:
        super().__init__(message)
        self.hint = hint


# ----------------------------------------------------------------------------- argparse types
def _typed(kind: Callable[[str], Any], allowed: str, ok: Callable[[Any], bool]
           ) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
        return value

    convert.__name__ = allowed  # argparse names the type in some messages
    return convert


positive_int = _typed(int, "an integer >= 1", lambda v: v >= 1)
non_negative_int = _typed(int, "an integer >= 0", lambda v: v >= 0)
seed = _typed(int, "an integer in 0 .. 4294967295", lambda v: 0 <= v <= 2**32 - 1)
positive_float = _typed(float, "a finite number > 0", lambda v: math.isfinite(v) and v > 0)
non_negative_float = _typed(float, "a finite number >= 0",
                            lambda v: math.isfinite(v) and v >= 0)
fraction = _typed(float, "a number in [0, 1]", lambda v: math.isfinite(v) and 0 <= v <= 1)


def subjects(text: str) -> list[str]:
    """``S9,S11`` as a list of subject names, none empty."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty subject name: give names "
                                         "separated by commas, e.g. S9,S11")
    return names


# ----------------------------------------------------------------------------- files
def check_paths(outputs: Mapping[str, str | None], inputs: Mapping[str, str | None]) -> None:
    """Each output (``{option: path}``) can be written (its directory exists and is writable,
    it is not a directory), no two outputs are the same file, and no output is an input."""
    from symmetrize.atomic import check_writable

    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        try:
            target = check_writable(path, what=f"{option} file")
        except (OSError, ValueError, TypeError) as err:
            message, _, fix = str(err).partition(" Fix: ")
            raise CLIError(message.rstrip("."), fix or "choose another path") from None
        key = target.resolve()
        if key in seen:
            raise CLIError(f"{seen[key]} and {option} are the same file ({path}): one would "
                           "overwrite the other", f"give {option} another file name")
        seen[key] = option
    for option, path in inputs.items():
        if path is None or not Path(path).exists():
            continue
        for out_key, out_option in seen.items():
            if out_key == Path(path).resolve():
                raise CLIError(f"{out_option} {path} is also the {option} input: writing it "
                               "would destroy what the run reads",
                               f"give {out_option} a new file name")


# ----------------------------------------------------------------------------- memory
def available_memory() -> int | None:
    """Bytes of memory this process can still use (``MemAvailable``, capped by a cgroup
    limit), or ``None`` where that is unknown."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit.isdigit():
            room = max(int(limit) - used, 0)
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free


def check_example_memory(shapes: Sequence[Sequence[int]], texts: Sequence[str],
                         available: int | None = None) -> None:
    """Refuse ``--example`` shapes whose conversion would need more memory than there is (an
    estimate: :data:`MEMORY_FACTOR` times the examples' float32 bytes), before anything is
    allocated, instead of being killed by the system."""
    available = available_memory() if available is None else available
    if available is None:
        return
    nbytes = sum(4 * math.prod(shape) for shape in shapes)
    need = MEMORY_FACTOR * nbytes
    if need > available:
        biggest = max(range(len(shapes)), key=lambda i: math.prod(shapes[i]))
        smaller = ",".join(str(s) for s in [min(shapes[biggest][0], 2), *shapes[biggest][1:]])
        raise CLIError(f"--example {texts[biggest]}: the conversion would need about "
                       f"{_size(need)} of memory ({MEMORY_FACTOR}x the {_size(nbytes)} of "
                       f"example data, an estimate), more than the {_size(available)} "
                       "available",
                       f"the example only has to show the shapes: a batch of 2 is enough, "
                       f"e.g. --example {smaller}")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


# ----------------------------------------------------------------------------- training
def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~symmetrize.train.TrainConfig` of ``symmetrize finetune``'s options; a bad
    value is a :class:`CLIError` naming the option."""
    from symmetrize.finetune import train_config
    from symmetrize.train import ConfigError

    try:
        return train_config(args)
    except ConfigError as err:
        option = "--" + err.name.replace("_", "-")
        if err.name == "resume":
            raise CLIError("--resume needs --checkpoint FILE (the run to continue)",
                           "give --checkpoint FILE, or drop --resume") from None
        fix = _CLI_FIX.get(err.name, f"give {option} {err.allowed}")
        if err.name == "log" and "checkpoint" in err.allowed:
            fix = "give --log and --checkpoint different file names"
        raise CLIError(f"{option} {err.value}: not allowed, must be {err.allowed}", fix) from None


_CLI_FIX = {"device": "use --device auto (CUDA when present, else the CPU) or --device cpu",
            "amp": "use --amp auto, bf16 or off on the CPU (fp16 needs CUDA)",
            "log": "name the log FILE.csv or FILE.jsonl"}
