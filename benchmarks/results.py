"""Every figure of the README's results, regenerated from scratch in one run, as Markdown.

Sections (``--only`` picks some; default all):

- ``lifting``: the lifting protocol (``examples/lift_3d.py``): each lifter (27- and 81-frame
  temporal convnets, a PoseFormer-style transformer) in five variants, each trained until its
  validation error stops improving, mean ± std over 3 seeds; learning curves as a PNG.
- ``efficiency``: the 27-frame lifter on 10 %, 25 % and 50 % of the training takes (by take),
  every variant; the data-efficiency curve as a PNG.
- ``speed``: train step and inference of each lifter, plain, chiral, exported and with flip
  test-time averaging, interleaved rounds against plain; conversion time and parameters.
- ``forecasting``, ``actions`` (``accuracy`` = these two and ``lifting``): the paper's other
  applications through ``examples/``, mean ± std over seeds.

Every comparison gets a verdict by one rule (``results_tables.RULE``). The Markdown goes to
stdout and ``--out FILE`` (the PNG files next to it), the raw figures to ``--json FILE``;
progress to stderr. ``--render FILE`` rewrites the Markdown and the plots from a ``--json``
file without training::

    python benchmarks/results.py --out benchmarks/RESULTS.md --json results.json --cache runs/
    python benchmarks/results.py --quick                 # every section at smoke scale
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE.parent / "examples", HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import lift_3d
import results_apps
import results_merge
import results_plots
import results_protocol as protocol
import results_runs
import results_speed
import results_tables as tables
import torch

from symmetrize.atomic import check_writable, write_atomic

SECTIONS = ("lifting", "efficiency", "speed", "forecasting", "actions")
ALIASES = {"accuracy": ("lifting", "forecasting", "actions")}
QUICK_NOTE = ("**`--quick`: smoke-scale settings (tiny models, a few training steps, one "
              "seed). These figures test the script; they mean nothing.**")
PLOTS = {"curves": "learning_curves.png", "efficiency": "data_efficiency.png"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=(*SECTIONS, *ALIASES), metavar="SECTION",
                        help="run only these sections: lifting, efficiency, speed, "
                        "forecasting, actions, accuracy (default: all)")
    parser.add_argument("--protocol", choices=sorted(lift_3d.PROTOCOLS),
                        default=lift_3d.DEFAULT_PROTOCOL,
                        help="hour (default: the whole study in about an hour on 2 CPU cores) "
                        "or plateau (slower lr decay, twice the patience: lower errors, about "
                        "3x the time); see examples/lift_3d.py")
    parser.add_argument("--quick", action="store_true",
                        help="every section at smoke scale (tiny models, a few steps, 1 seed)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--models", nargs="+", choices=protocol.MODELS,
                        default=list(protocol.MODELS), help="the lifters (default: all)")
    parser.add_argument("--fractions", type=float, nargs="+",
                        help="shares of the training takes for the efficiency section "
                        "(default 0.1 0.25 0.5; --quick: 0.25)")
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "cmu"),
                        help="folder of CMU .bvh takes (default: %(default)s); procedural "
                        "motion when absent")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--jobs", type=int, help="training processes at once (default: 2 on a "
                        "CPU with 2+ cores, 1 on a GPU or with --quick)")
    parser.add_argument("--threads", type=int, help="torch threads per job (default: the "
                        "cores / jobs)")
    parser.add_argument("--rounds", type=int, help="timing rounds (default 7; --quick 2)")
    parser.add_argument("--cache", type=Path, help="keep each training's figures here as JSON "
                        "and reuse them: an interrupted run resumes")
    parser.add_argument("--out", type=Path, help="also write the Markdown here (the PNG "
                        "plots next to it)")
    parser.add_argument("--json", type=Path, help="write the raw figures to this file")
    parser.add_argument("--render", type=Path, nargs="+", metavar="JSON", help="no training: "
                        "rewrite the Markdown (and plots) from the --json file of an earlier "
                        "run, or merge several (results_merge.py says how)")
    args = parser.parse_args(argv)
    chosen = {s for name in (args.only or SECTIONS) for s in ALIASES.get(name, (name,))}
    args.sections = [s for s in SECTIONS if s in chosen]
    args.seeds = args.seeds or ([0] if args.quick else list(protocol.SEEDS))
    fractions = args.fractions or ([0.25] if args.quick else list(protocol.FRACTIONS[:-1]))
    if any(not 0 < f < 1 for f in fractions):
        parser.error(f"--fractions {fractions}: each must lie in (0, 1) (1 is the lifting run)")
    args.fractions = sorted(set(fractions))
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    cores = os.cpu_count() or 1
    cpu = args.device == "cpu"
    args.jobs = args.jobs or (2 if cpu and cores >= 2 and not args.quick else 1)
    args.threads = args.threads or max(1, cores // args.jobs if cpu else cores)
    if args.jobs < 1 or args.threads < 1:
        parser.error(f"--jobs {args.jobs} --threads {args.threads}: each must be at least 1")
    args.rounds = args.rounds or (2 if args.quick else 7)
    for path in args.render or []:
        if not path.is_file():
            parser.error(f"--render {path}: no such file (give the --json file of a run)")
    for name in ("out", "json"):
        if getattr(args, name) is not None:
            try:
                check_writable(getattr(args, name), f"--{name} file")
            except (OSError, ValueError) as error:
                parser.error(str(error))
    if "efficiency" in args.sections and protocol.EFFICIENCY_MODEL not in args.models:
        parser.error(f"the efficiency section trains {protocol.EFFICIENCY_MODEL}: add it to "
                     "--models or drop efficiency from --only")
    return args


def device_name(device: str, threads: int, jobs: int) -> str:
    """The GPU's name, or the CPU's model, its cores and the jobs and threads used."""
    if device.startswith("cuda"):
        return f"GPU {torch.cuda.get_device_name(torch.device(device))} (CUDA " \
               f"{torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"CPU {model} ({os.cpu_count()} cores), {jobs} training job(s) x {threads} torch "
            "thread(s)")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen sections; the raw figures."""
    figures: dict[str, Any] = {"wall_s": {}}
    started = datetime.datetime.now(datetime.timezone.utc)
    if {"lifting", "efficiency"} & set(args.sections):
        start = time.perf_counter()
        todo = protocol.tasks(args.models if "lifting" in args.sections
                              else [protocol.EFFICIENCY_MODEL], args.fractions, args.seeds,
                              "efficiency" in args.sections, args.protocol)
        records, cost = results_runs.run_tasks(
            todo, args.data, quick=args.quick, device=args.device, jobs=args.jobs,
            threads=args.threads, cache=args.cache)
        figures.update(results_runs.assemble(todo, records))
        figures["study"] = {"cost": cost, "records": list(records.values())}
        figures["wall_s"]["lifting + efficiency"] = time.perf_counter() - start
    if "speed" in args.sections:
        start = time.perf_counter()
        torch.set_num_threads(args.threads)
        figures["speed"] = results_speed.run_speed(args.device, args.rounds, args.quick,
                                                   args.models)
        figures["wall_s"]["speed"] = time.perf_counter() - start
    for app in ("forecasting", "actions"):
        if app in args.sections:
            start = time.perf_counter()
            figures[app] = results_apps.run_app(app, args.data, args.seeds, args.device,
                                                args.quick)
            figures["wall_s"][app] = time.perf_counter() - start
    figures["meta"] = {
        "date": started.isoformat(timespec="seconds"), "torch": torch.__version__,
        "device": args.device, "device_name": device_name(args.device, args.threads, args.jobs),
        "jobs": args.jobs, "threads": args.threads, "seeds": args.seeds, "quick": args.quick,
        "protocol": args.protocol,
        "models": args.models, "fractions": args.fractions, "sections": args.sections,
        "rounds": args.rounds, "data": args.data, "data_found": Path(args.data).is_dir(),
        "argv": sys.argv[1:], "rule": tables.RULE}
    return figures


def _wall(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes
            else f"{seconds:.1f} s")


def render(figures: dict[str, Any], plots: Path | None) -> tuple[str, list[tables.Comparison]]:
    """The Markdown of ``figures`` (and, with ``plots``, the PNG files in that folder)."""
    meta = figures["meta"]
    protocol_name = meta.get("protocol", lift_3d.DEFAULT_PROTOCOL)
    cost = figures.get("study", {}).get("cost")
    records = figures.get("study", {}).get("records", [])
    walls = ", ".join(f"{k} {_wall(v)}" for k, v in figures["wall_s"].items())
    header = (f"Generated {meta['date']} · torch {meta['torch']} · {meta['device_name']} · "
              f"protocol `{protocol_name}` · "
              f"seeds {' '.join(map(str, meta['seeds']))} · wall time: {walls}"
              + (f" · {len(records)} trainings, {_wall(sum(r['cpu_s'] for r in records))} of "
                 "training-process CPU time in all" if cost else "")
              + (" (resumed from the cache of earlier processes: the wall time counts only "
                 "the last ones)" if cost and cost["cached"] else ""))
    commands = [f"`{' '.join(['python benchmarks/results.py', *argv])}`"
                for argv in meta.get("commands", [meta["argv"]])]
    lines = ["# symmetrize: results", "", header, "",
             ("Command: " if len(commands) == 1 else "Commands (merged with `--render`): ")
             + ", ".join(commands), ""]
    if not meta["data_found"]:
        lines += [(f"Data: `{meta['data']}` not found, so every application uses procedural "
                   "motion (`symmetrize.data.synthetic`) instead of the CMU takes."), ""]
    if meta["quick"]:
        lines += [QUICK_NOTE, ""]
    lift_3d.use_protocol(protocol_name)  # the paragraph quotes its settings
    efficiency_shares = meta["fractions"] if figures.get("efficiency") else []
    lines += [protocol.protocol_paragraph(meta["quick"], len(meta["seeds"]), efficiency_shares),
              "", f"Verdict rule: {tables.RULE}"]
    per_model = meta.get("seeds_per_model", {})
    if len(set(per_model.values())) > 1:
        lines += ["", "**Seeds per lifter** (where they differ from the paragraph above): "
                  + ", ".join(f"`{m}` {_n_seeds(n)}" for m, n in per_model.items()) + "."]
    comparisons: list[tables.Comparison] = []
    lifting, efficiency = figures.get("lifting", {}), figures.get("efficiency", {})
    if lifting:
        lines += ["", "## Lifting at the plateau", "",
                  ("Test figures: the validation subjects filmed by the test cameras (every "
                   "frame). *Best step*: the evaluation whose weights are kept; *to plateau*: "
                   "the training time up to it. Inference: see [Speed](#speed).")]
        if plots is not None:
            titles = {k: v.title for k, v in lift_3d.LIFTERS.items()}
            size = results_plots.learning_curves(lifting, titles, plots / PLOTS["curves"])
            lines += ["", f"![learning curves]({PLOTS['curves']}) ({size // 1024} KB)"]
        for model, rows in lifting.items():
            text, found = tables.lifting_markdown(model, rows, figures.get("speed"))
            lines += ["", text]
            comparisons += found
    if efficiency:
        lines += ["", f"## Data efficiency ({protocol.EFFICIENCY_MODEL})", "",
                  (f"The study trains {protocol.EFFICIENCY_WHY}. Each seed draws its own "
                   "takes; 100 % is the lifting run above.")]
        if plots is not None:
            title = f"{lift_3d.LIFTERS[protocol.EFFICIENCY_MODEL].title}, mean ± std over seeds"
            size = results_plots.data_efficiency(efficiency, title, plots / PLOTS["efficiency"])
            lines += ["", f"![data efficiency]({PLOTS['efficiency']}) ({size // 1024} KB)"]
        text, found = tables.efficiency_markdown(efficiency)
        lines += ["", text]
        comparisons += found
    if lifting:
        text, figures["targets"] = tables.targets_markdown(
            lifting, efficiency, comparisons, figures["study"]["records"])
        lines += ["", "## The issue's targets", "", text]
        limits = tables.limits_markdown(lifting, efficiency)
        if limits:
            lines += ["", "## What limits the error", "", limits]
        lines += ["", _run_times(figures)]
    if "speed" in figures:
        lines += ["", results_speed.speed_markdown(figures["speed"], meta["device"],
                                                   meta["threads"], meta["rounds"])]
    apps = [a for a in ("forecasting", "actions") if a in figures]
    if apps:
        lines += ["", "## Other applications", ""]
        for app, fn in (("forecasting", results_apps.forecasting_markdown),
                        ("actions", results_apps.actions_markdown)):
            if app in figures:
                text, found = fn(figures[app])
                lines += ["", text]
                comparisons += found
    return "\n".join(lines), comparisons


def _n_seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s") + (" (verdicts *undecided*)" if n == 1 else "")


def _run_times(figures: dict[str, Any]) -> str:
    """Per model, share and training: the runs' wall and CPU seconds and steps."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in figures["study"]["records"]:
        groups.setdefault((r["model"], r["fraction"], r["training"]), []).append(r)
    lines = ["## Run times", "", ("Per training (mean ± std over seeds; wall time on a shared "
             "machine, so it swings with other users' load; CPU time is the training process's "
             "own):"), "", "| lifter | takes | training | steps | wall s | CPU s |",
             "|---|---:|---|---:|---:|---:|"]
    for (model, fraction, training), runs in sorted(groups.items()):
        lines.append(f"| {model} | {fraction:.0%} | {training} | "
                     f"{tables.cell([r['steps'] for r in runs], '.0f')} | "
                     f"{tables.cell([r['train_s'] for r in runs], '.0f')} | "
                     f"{tables.cell([r['cpu_s'] for r in runs], '.0f')} |")
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure (or ``--render``), print the Markdown, write ``--out``, its plots and
    ``--json``; return the figures."""
    args = parse_args(argv)
    if args.render is not None:
        runs = [json.loads(path.read_text()) for path in args.render]
        figures = runs[0] if len(runs) == 1 else results_merge.merge(runs)
    else:
        figures = _finite(measure(args))
    plots = args.out.parent if args.out is not None else None
    markdown, comparisons = render(figures, plots)
    figures["verdicts"] = [c.figures() for c in comparisons]
    print(markdown)
    if args.out is not None:
        _write(args.out, markdown + "\n")
    if args.json is not None:
        _write(args.json, json.dumps(_finite(figures), indent=1, allow_nan=False) + "\n")
    return figures


if __name__ == "__main__":
    main()
