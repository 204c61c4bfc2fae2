"""The speed section of ``benchmarks/results.py``: for each lifter of the study (and, on a GPU,
a 243-frame VideoPose3D model at its published width) the train step and inference of the plain
model, of each chiral layout, of the chiral model exported to plain modules, and of plain + flip
test-time averaging, timed in interleaved rounds against the plain model; conversion time and
parameters."""

from __future__ import annotations

import copy
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lift_3d
import torch
from torch import nn

from symmetrize import Spec, symmetrize
from symmetrize.data.windows import flip_test_average
from symmetrize.export import export_plain
from symmetrize.metrics import mpjpe

SPEC = Spec.preset("h36m")


@dataclass
class SpeedCase:
    """A model to time: its builder, chiral layouts, training windows and batch sizes."""

    key: str
    title: str
    build: Callable[[], nn.Module]
    layouts: tuple[str, ...]
    frames_out: int
    train_batch: int
    infer_batch: int


def speed_cases(quick: bool, cuda: bool, models: list[str]) -> list[SpeedCase]:
    """The study's lifters at their protocol size (``--quick``: tiny), inference on 256 windows
    of one output frame (1024 on a GPU); on a GPU also VideoPose3D's 243-frame model with its
    1024 channels (``tests.pose_models.TemporalModel``)."""
    cases = [SpeedCase(m, lift_3d.LIFTERS[m].title, lambda m=m: lift_3d.LIFTERS[m].build(quick),
                       lift_3d.LIFTERS[m].layouts, lift_3d.LIFTERS[m].frames_out,
                       lift_3d.LIFTERS[m].batch, 16 if quick else 1024 if cuda else 256)
             for m in models]
    if cuda and not quick:
        from tests.pose_models import TemporalModel

        cases.append(SpeedCase("vp3d243", "243-frame VideoPose3D, 1024 channels "
                               "(tests.pose_models.TemporalModel)",
                               lambda: TemporalModel(filter_widths=(3, 3, 3, 3, 3),
                                                     channels=1024),
                               ("skeleton",), 1, 256, 256))
    return cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def convert_seconds(model: nn.Module, example: torch.Tensor, hidden: str, repeats: int
                    ) -> tuple[float, float]:
    """Median seconds of ``symmetrize`` without and with its float64 check, alternating, after
    one untimed conversion."""
    symmetrize(model, SPEC, (example,), hidden=hidden)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for check in (False, True):
            start = time.perf_counter()
            symmetrize(model, SPEC, (example,), hidden=hidden, check=check)
            times[check].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True])


def time_case(case: SpeedCase, device: torch.device, rounds: int, quick: bool) -> dict[str, Any]:
    """Parameters, conversion and interleaved timings of one model."""
    torch.manual_seed(0)
    plain = case.build()
    field = plain.receptive_field()
    example = torch.randn(8, field, 17, 2)
    repeats = 1 if quick else 3
    convert_s, convert_check_s = convert_seconds(plain, example, case.layouts[0], repeats)
    chiral = {h: symmetrize(plain, SPEC, (example,), hidden=h, check=False).to(device).train()
              for h in case.layouts}
    plain = plain.to(device).train()
    evals = {"plain": copy.deepcopy(plain).eval(),
             **{h: copy.deepcopy(m).eval() for h, m in chiral.items()}}
    exported = export_plain(copy.deepcopy(evals[case.layouts[0]])).eval()
    window = field + case.frames_out - 1
    x_train = torch.randn(case.train_batch, window, 17, 2, device=device)
    y_train = torch.randn(case.train_batch, case.frames_out, 17, 3, device=device)
    x_infer = torch.randn(case.infer_batch, field, 17, 2, device=device)
    optimizers = {id(m): torch.optim.Adam(m.parameters(), lr=1e-4)
                  for m in (plain, *chiral.values())}

    def step(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            optimizers[id(model)].zero_grad(set_to_none=True)
            mpjpe(model(x_train), y_train).backward()
            optimizers[id(model)].step()
        return run

    def infer(model: nn.Module, tta: bool = False) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                flip_test_average(model, x_infer, SPEC.skeleton) if tta else model(x_infer)
        return run

    measures = {"plain train step": step(plain),
                **{f"chiral ({h}) train step": step(m) for h, m in chiral.items()},
                "plain inference": infer(evals["plain"]),
                **{f"chiral ({h}) inference": infer(evals[h]) for h in case.layouts},
                "chiral exported inference": infer(exported),
                "plain + flip TTA inference": infer(evals["plain"], tta=True)}
    timings = _interleaved(measures, device, rounds, quick)
    n_plain = sum(p.numel() for p in plain.parameters())
    return {"title": case.title, "frames": field, "window": window,
            "train_batch": case.train_batch, "infer_batch": case.infer_batch,
            "parameters_plain": n_plain,
            "parameters_chiral": {h: sum(p.numel() for p in m.parameters())
                                  for h, m in chiral.items()},
            "parameters_exported": sum(p.numel() for p in exported.parameters()),
            "convert_s": convert_s, "convert_check_s": convert_check_s,
            "convert_layout": case.layouts[0], "convert_repeats": repeats, "rounds": rounds,
            "timings": timings}


def _interleaved(measures: dict[str, Callable[[], None]], device: torch.device, rounds: int,
                 quick: bool) -> dict[str, dict[str, Any]]:
    """The train steps against the plain one and the inferences against plain inference, each
    group in interleaved rounds by ``benchmarks/timing.py`` (every call followed by a CUDA
    synchronisation on a GPU); median times and median per-round ratios."""
    from timing import interleaved

    def synced(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            fn()
            _sync(device)
        return run

    out = {}
    for baseline in ("plain train step", "plain inference"):
        group = {n: synced(fn) for n, fn in measures.items()
                 if ("train" in n) == ("train" in baseline)}
        timed = interleaved(group, baseline, rounds=rounds, min_seconds=0.0 if quick else 0.25,
                            warmup=1 if quick else 3)
        out.update({n: {"ms": t.ms, "ratio": t.ratio, "relative_to": baseline,
                        "ms_per_round": [1000 * r for r in t.rounds]} for n, t in timed.items()})
    return {n: out[n] for n in measures}


def run_speed(device: str, rounds: int, quick: bool, models: list[str]) -> dict[str, Any]:
    """Time every :func:`speed_cases` model on ``device``."""
    dev = torch.device(device)
    out = {}
    for case in speed_cases(quick, dev.type == "cuda", models):
        out[case.key] = figures = time_case(case, dev, rounds, quick)
        print(f"[speed] {case.key}: " + ", ".join(f"{k} {v['ms']:.2f} ms ({v['ratio']:.2f})"
                                                  for k, v in figures["timings"].items()),
              file=sys.stderr, flush=True)
    return out


def speed_markdown(speed: dict[str, Any], device: str, threads: int, rounds: int) -> str:
    """The timing table and the conversion table."""
    where = (f"{device}, float32" if device.startswith("cuda") else
             f"the CPU, {threads} torch thread{'s' if threads != 1 else ''}, float32")
    about = (f"On {where}; timed by `benchmarks/timing.py`: each timing is the median over "
             f"{rounds} interleaved rounds (train steps in one group, inferences in another; "
             "every measurement once a round, the order rotating, after a warm-up; each repeats "
             "the call for about 0.25 s of the plain model's time); a ratio is the median of the "
             "per-round ratios to the plain model's train step or inference. Train step: "
             "forward, MPJPE loss, backward, Adam, on one training batch of the protocol. "
             "Inference: eval mode, no grad, windows of one output frame. Exported: the chiral "
             "model as plain modules (`symmetrize.export.export_plain`). Flip TTA: two forward "
             "passes and the flips.")
    lines = ["## Speed", "", about, "", "| model | measurement | batch | ms | × plain |",
             "|---|---|---:|---:|---:|"]
    for case in speed.values():
        for name, t in case["timings"].items():
            batch = case["train_batch"] if "train" in name else case["infer_batch"]
            lines.append(f"| {case['title']} | {name} | {batch} | {t['ms']:.2f} | "
                         f"{t['ratio']:.2f} |")
    lines += ["", ("Parameters (a chiral model's free parameters; exported, it has the plain "
                   "count again) and conversion time (median of "
                   f"{next(iter(speed.values()))['convert_repeats']}, without and with the "
                   "float64 check, after an untimed one, on 8 example windows):"), "",
              "| model | plain | chiral | chiral / plain | convert s | convert + check s |",
              "|---|---:|---:|---:|---:|---:|"]
    for case in speed.values():
        chiral = ", ".join(f"{n:,} ({h})" for h, n in case["parameters_chiral"].items())
        ratio = ", ".join(f"{n / case['parameters_plain']:.3f}"
                          for n in case["parameters_chiral"].values())
        lines.append(f"| {case['title']} | {case['parameters_plain']:,} | {chiral} | {ratio} | "
                     f"{case['convert_s']:.3f} | {case['convert_check_s']:.3f} |")
    return "\n".join(lines)
