"""2D human pose forecasting, plain against chiral: the Chirality Nets paper's forecasting task.

Real CMU motion capture (Human3.6M's 17 joints, 30 fps) is filmed by virtual cameras; a
Martinez et al. (2017) style seq2seq LSTM sees ``input_len`` frames of normalised 2D keypoints
and forecasts the next ``output_len``. The plain model and the same model converted by
``symmetrize`` train with the same data, epochs and seed; both are scored on held-out subjects
(train 01-07, evaluate 08-09) by PCK@0.05 and PCK@0.1 (relative to the torso: thorax to pelvis)
and the mean 2D error, and the chiral model's forecast of a mirrored clip is checked to be the
mirror of its forecast. Without the CMU folder, procedural motion stands in. Run::

    python examples/forecast_2d.py [--quick] [--seeds 0 1 2] [--epochs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import symmetrize
from symmetrize import Spec
from symmetrize.data.lifting import lifting_pairs
from symmetrize.data.windows import flip_pose
from symmetrize.metrics import mpjpe, pck
from symmetrize.train import TrainConfig, fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu"
TRAIN_SUBJECTS = tuple(f"{s:02d}" for s in range(1, 8))  # the takes hold no subject 04
EVAL_SUBJECTS = ("08", "09")
JOINTS, PELVIS, THORAX = 17, 0, 8  # Skeleton.preset("h36m") indices
SPEC = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
THRESHOLDS = (0.05, 0.1)


@dataclass
class Settings:
    """The run's sizes and schedule."""

    input_len: int = 10
    output_len: int = 10
    stride: int = 5
    hidden: int = 136
    cameras: int = 2
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    lr_decay: float = 0.9
    max_steps: int | None = None
    device: str = "auto"

    @property
    def window(self) -> int:
        return self.input_len + self.output_len


# -- data ----------------------------------------------------------------------------------------

def load_cmu_split(folder: Path, step: int = 4, joint_map: list[str] | None = None
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """World positions ``(T, 17, 3)`` of the CMU takes in ``folder`` at ``120 / step`` fps,
    split by subject (the file name before ``_``): training and evaluation takes."""
    from symmetrize.data.takes import load_takes

    train: list[np.ndarray] = []
    held_out: list[np.ndarray] = []
    for take, motion, _ in load_takes(folder, joint_map=joint_map):  # .bvh, .amc + .asf
        if take.subject in TRAIN_SUBJECTS or take.subject in EVAL_SUBJECTS:
            positions = motion.positions[::step]
            (held_out if take.subject in EVAL_SUBJECTS else train).append(positions)
    if not train or not held_out:
        raise SystemExit(f"{folder}: need takes of subjects {TRAIN_SUBJECTS} (training) "
                         f"and {EVAL_SUBJECTS} (evaluation)")
    return train, held_out


def synthetic_split(quick: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Procedural clips at 30 fps: a training set and an evaluation set from another seed
    (every clip draws its own bone lengths, so the two share no "subject")."""
    from symmetrize.data.synthetic import generate_dataset

    n_train, n_eval = (8, 4) if quick else (48, 12)
    kwargs: dict[str, Any] = {"frames": (150, 300), "fps": 30.0, "in_place": True}
    return (generate_dataset(n_train, rng=0, **kwargs),
            generate_dataset(n_eval, rng=10_007, **kwargs))


def film(sequences: list[np.ndarray], cameras: int, seed: int) -> list[np.ndarray]:
    """Normalised 2D keypoints ``(T, 17, 2)``: each sequence seen by ``cameras`` virtual
    cameras (the 2D side of the lifting pairs)."""
    return [keypoints for keypoints, _ in lifting_pairs(sequences, cameras, rng=seed)]


class ForecastWindows(torch.utils.data.Dataset):
    """Windows of ``input_len + output_len`` frames cut every ``stride`` frames; an item is
    ``(window (L, J*2), future (output_len, J, 2))``: the model reads the observed frames."""

    def __init__(self, clips: list[np.ndarray], input_len: int, output_len: int,
                 stride: int) -> None:
        length = input_len + output_len
        cuts = [clip[s:s + length] for clip in clips
                for s in range(0, len(clip) - length + 1, stride)]
        if not cuts:
            raise ValueError(f"no clip is {length} frames long")
        self.poses = torch.from_numpy(np.stack(cuts).astype(np.float32))  # (N, L, J, 2)
        self.input_len = input_len

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        window = self.poses[index]
        return window.flatten(-2), window[self.input_len:]


# -- model ---------------------------------------------------------------------------------------

class Seq2Seq(nn.Module):
    """Martinez et al. (2017) style forecaster on ``(N, T, J*2)``: an LSTM encoder reads the
    observed frames, an LSTM decoder forecasts one frame at a time from its own last forecast
    (no teacher forcing), each frame the previous one plus a predicted velocity."""

    def __init__(self, hidden: int = 136, input_len: int = 10, output_len: int = 10,
                 joints: int = JOINTS) -> None:
        super().__init__()
        self.input_len, self.output_len = input_len, output_len
        self.encoder = nn.LSTM(joints * 2, hidden, batch_first=True)
        self.decoder = nn.LSTM(joints * 2, hidden, batch_first=True)
        self.velocity = nn.Linear(hidden, joints * 2)

    def forward(self, x: Tensor) -> Tensor:
        _, state = self.encoder(x[:, : self.input_len - 1])
        frame = x[:, self.input_len - 1 : self.input_len]
        frames = []
        for _ in range(self.output_len):
            h, state = self.decoder(frame, state)
            frame = frame + self.velocity(h)  # residual velocity
            frames.append(frame)
        return torch.cat(frames, dim=1)


def forecast_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean Euclidean error of the forecast frames (``(N, T, J*2)`` against ``(N, T, J, 2)``)."""
    return mpjpe(prediction.reshape(target.shape), target)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- evaluation ----------------------------------------------------------------------------------

def predict(model: nn.Module, data: ForecastWindows, batch: int = 512) -> tuple[Tensor, Tensor]:
    """Forecasts and targets ``(N, output_len, J, 2)`` of every window, on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            window = data.poses[start:start + batch]
            out = model(window.flatten(-2).to(device)).cpu()
            preds.append(out.reshape(len(window), -1, JOINTS, 2))
            targets.append(window[:, data.input_len:])
    return torch.cat(preds), torch.cat(targets)


def scores(pred: Tensor, target: Tensor) -> dict[str, float]:
    """PCK at each threshold relative to the target's torso (thorax to pelvis), and the mean 2D
    error in normalised screen units."""
    torso = (target[..., THORAX, :] - target[..., PELVIS, :]).norm(dim=-1).clamp_min(1e-6)
    out = {f"pck@{t}": float(pck(pred, target, t, normalize=torso)) for t in THRESHOLDS}
    out["error_2d"] = float(mpjpe(pred, target))
    return out


def zero_velocity(data: ForecastWindows) -> dict[str, float]:
    """The scores of repeating the last observed frame (the baseline Martinez et al. beat)."""
    target = data.poses[:, data.input_len:]
    last = data.poses[:, data.input_len - 1 : data.input_len].expand_as(target)
    return scores(last, target)


def mirror_error_on_clips(model: nn.Module, data: ForecastWindows, n: int = 64) -> float:
    """``max |f(flip x) - flip f(x)|`` in float64 on ``n`` evaluation windows (eval mode)."""
    device = next(model.parameters()).device
    model.double().eval()
    try:
        x = data.poses[:n].to(device, torch.float64)  # (n, L, J, 2)
        with torch.no_grad():
            forecast = model(x.flatten(-2)).unflatten(-1, (JOINTS, 2))
            mirrored = model(flip_pose(x, "h36m").flatten(-2)).unflatten(-1, (JOINTS, 2))
        return float((mirrored - flip_pose(forecast, "h36m")).abs().max())
    finally:
        model.float()


def mirror_error_checked(model: nn.Module, example: Tensor) -> float:
    """The float64 max abs error of ``symmetrize.check`` (eval and train mode)."""
    result = symmetrize.check(model, SPEC, (example,), dtypes=(torch.float64,), localize=False)
    return max(result.case(mode, torch.float64).max_abs for mode in ("eval", "train"))


# -- one seed ------------------------------------------------------------------------------------

def train_one(name: str, model: nn.Module, train: ForecastWindows, test: ForecastWindows,
              settings: Settings, seed: int) -> dict[str, Any]:
    """Train ``model`` with ``fit`` and score it."""
    config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                         lr_decay=settings.lr_decay, seed=seed, device=settings.device,
                         amp="off", progress=False, max_steps=settings.max_steps,
                         check=name == "chiral")
    result = fit(model, train, config, loss=forecast_loss)
    example = torch.zeros(2, settings.window, JOINTS * 2)  # shapes only: check draws inputs
    row = {"model": name, "seed": seed, "parameters": n_parameters(model),
           "train_s": result.seconds, "steps": result.steps,
           "final_loss": result.train_loss[-1] if result.train_loss else None,
           **scores(*predict(model, test)),
           "mirror_check_f64": mirror_error_checked(model, example),
           "mirror_clips_f64": mirror_error_on_clips(model, test)}
    return row


def run_seed(seed: int, train: ForecastWindows, test: ForecastWindows,
             settings: Settings) -> list[dict[str, Any]]:
    """The plain model and its chiral conversion, from the same initialisation, trained alike."""
    torch.manual_seed(seed)
    plain = Seq2Seq(settings.hidden, settings.input_len, settings.output_len)
    example = (torch.randn(2, settings.window, JOINTS * 2),)
    chiral = symmetrize.symmetrize(plain, SPEC, example)  # a deep copy; plain is unchanged
    rows = [train_one("plain", plain, train, test, settings, seed),
            train_one("chiral", chiral, train, test, settings, seed)]
    for row in rows:
        print(f"seed {seed} {row['model']:>6}: PCK@0.05 {row['pck@0.05']:.3f}  PCK@0.1 "
              f"{row['pck@0.1']:.3f}  2D error {row['error_2d']:.4f}  "
              f"{row['parameters']:,} parameters  {row['train_s']:.1f} s", flush=True)
    c = rows[1]
    print(f"seed {seed} chiral mirror error: check float64 = {c['mirror_check_f64']:.2e}, "
          f"mirrored eval clips float64 = {c['mirror_clips_f64']:.2e}", flush=True)
    return rows


# -- report --------------------------------------------------------------------------------------

# (key, title, format, what the summary row shows over seeds)
COLUMNS = (("pck@0.05", "PCK@0.05", ".3f", "mean ± std"),
           ("pck@0.1", "PCK@0.1", ".3f", "mean ± std"),
           ("error_2d", "2D error", ".4f", "mean ± std"),
           ("parameters", "parameters", ",.0f", "mean"),
           ("train_s", "train s", ".1f", "mean ± std"),
           ("mirror_check_f64", "mirror error (check)", ".1e", "max"),
           ("mirror_clips_f64", "mirror error (clips)", ".1e", "max"))


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {figure: {"mean", "std", "max"}}}`` over seeds (sample std; 0 for one seed)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        values = {key: [float(r[key]) for r in rows if r["model"] == model]
                  for key, *_ in COLUMNS}
        out[model] = {key: {"mean": statistics.fmean(v),
                            "std": statistics.stdev(v) if len(v) > 1 else 0.0, "max": max(v)}
                      for key, v in values.items()}
    return out


def _summary_cell(figure: dict[str, float], fmt: str, kind: str) -> str:
    if kind == "mean ± std":
        return f"{format(figure['mean'], fmt)} ± {format(figure['std'], fmt)}"
    return format(figure[kind], fmt)


def markdown(rows: list[dict[str, Any]], summary: dict[str, dict[str, dict[str, float]]],
             baseline: dict[str, float]) -> str:
    """Per-seed rows, the summary over seeds (mean ± std; mirror errors: the max) and the
    zero-velocity baseline, as one Markdown table."""
    lines = ["| model | seed | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = [format(r[key], fmt) for key, _, fmt, _ in COLUMNS]
        lines.append(f"| {r['model']} | {r['seed']} | " + " | ".join(cells) + " |")
    for model, figures in summary.items():
        cells = [_summary_cell(figures[key], fmt, kind) for key, _, fmt, kind in COLUMNS]
        lines.append(f"| **{model}** | all | " + " | ".join(cells) + " |")
    cells = [format(baseline[key], fmt) if key in baseline else "-" for key, _, fmt, _ in COLUMNS]
    lines.append("| zero-velocity | - | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of motion-capture takes, .bvh and .amc/.asf (default: "
                        "%(default)s); procedural "
                        "motion when it does not exist")
    parser.add_argument("--joint-map", action="append", metavar="FILE",
                        help="a TOML joint map for takes of another naming (docs/data.md)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=Settings.epochs)
    parser.add_argument("--hidden", type=int, default=Settings.hidden, help="LSTM width")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default: %(default)s; a model this small "
                        "gains nothing from more, and loses much on a busy machine)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    return parser.parse_args(argv)


def load_data(folder: Path, settings: Settings, quick: bool, joint_map: list[str] | None = None
              ) -> tuple[ForecastWindows, ForecastWindows, str]:
    """Training and evaluation windows of filmed 2D keypoints, and where they came from."""
    if folder.is_dir():
        train_3d, eval_3d = load_cmu_split(folder, joint_map=joint_map)
        source = (f"CMU mocap {folder} at 30 fps: {len(train_3d)} takes of subjects 01-07 "
                  f"for training, {len(eval_3d)} of subjects 08-09 for evaluation")
    else:
        print(f"note: {folder} not found; using procedural motion "
              "(symmetrize.data.synthetic.generate_dataset) instead")
        train_3d, eval_3d = synthetic_split(quick)
        source = f"procedural motion at 30 fps: {len(train_3d)} + {len(eval_3d)} clips"
    args = (settings.input_len, settings.output_len, settings.stride)
    train = ForecastWindows(film(train_3d, settings.cameras, seed=0), *args)
    test = ForecastWindows(film(eval_3d, settings.cameras, seed=1), *args)
    return train, test, source


def warm_up() -> None:
    """Import what the first optimiser pulls in lazily, so that no run's train time pays it."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score the plain and the chiral forecaster for every seed of ``args``, print
    the runs and the table, and return the figures (what ``--json`` writes). Leaves torch's
    thread count as it finds it."""
    warm_up()
    settings = Settings(epochs=1 if args.quick else args.epochs, hidden=args.hidden,
                        max_steps=8 if args.quick else None, device=args.device)
    started = time.perf_counter()
    train, test, source = load_data(args.data, settings, args.quick,
                                    getattr(args, "joint_map", None))
    print(f"{source}\n{len(train)} training / {len(test)} evaluation windows of "
          f"{settings.input_len} observed + {settings.output_len} forecast frames "
          f"({settings.cameras} cameras per take)", flush=True)
    rows = [row for seed in args.seeds for row in run_seed(seed, train, test, settings)]
    baseline = zero_velocity(test)
    summary = summarise(rows)
    print(f"\n{markdown(rows, summary, baseline)}")
    worst = max(r["mirror_check_f64"] for r in rows if r["model"] == "chiral")
    print(f"\nchiral equivariance error (max over seeds, float64) = {worst:.2e}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return {"source": source, "settings": asdict(settings), "seeds": args.seeds,
            "train_windows": len(train), "eval_windows": len(test), "runs": rows,
            "zero_velocity": baseline, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    """The command line: parse ``argv`` (default ``sys.argv``), set the threads, :func:`run`,
    and write ``--json``."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    figures = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
