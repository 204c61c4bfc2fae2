"""Skeleton action recognition, plain against chiral: the Chirality Nets paper's invariance layer.

Real CMU motion capture (Human3.6M's 17 joints, 30 fps) is cut into 32-frame clips every 16
frames, of root-centred 3D poses (the pelvis subtracted in every frame; world axes, Y up),
labelled from the data folder's ``MANIFEST.tsv`` as walk, run, jump, dance, basketball or other
(training clips come from all four 30 fps samplings of the 120 fps takes, test clips from the
first). A small
ST-GCN-style classifier (spatial graph convolutions over the H36M bones with learned edge
importance, temporal convolutions, residual blocks, global pooling) is trained plain and, from
the same initialisation, converted by ``symmetrize`` with the invariance layer at its fourth
block; both train with ``symmetrize.train.fit`` on the same clips, seed and schedule (random yaw
rotations about the vertical axis as augmentation, class-balanced cross-entropy). Reported per
seed: top-1 and balanced accuracy on held-out takes, parameters, training time, and the largest
float64 change of the logits when a clip is mirrored (0 for the chiral model by construction).

Splits: ``--split take`` (default) holds out every third take of each class (file order,
starting with the second), so every class is tested on takes never seen in training;
``--split subject`` trains on subjects 01-07 and tests on 08-09, whose takes are nearly all
walks (38 of 41 clips), so its accuracy says little. Without the CMU folder, procedural clips
(walk, run, jump, box) stand in. Run::

    python examples/recognise_actions.py [--quick] [--seeds 0 1 2] [--epochs 6] [--json out.json]

The clips and the ST-GCN live beside this script, in ``action_data.py`` and ``action_model.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from action_data import (  # the data and model modules beside this script
    CMU_CLASSES,
    SYNTHETIC_CLASSES,
    ClipSet,
    Settings,
    load_cmu_takes,
    mirror_clips,
    random_yaw,
    split_takes,
    synthetic_takes,
)
from action_model import STGCN
from torch import Tensor, nn

import symmetrize
from symmetrize import Spec
from symmetrize.metrics import topk_accuracy
from symmetrize.train import TrainConfig, fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu"

SPEC = Spec(input="n c t j m", output="n k", skeleton="h36m", negate=(0,))
INVARIANT_AT = "blocks.3"  # the fourth block: the paper's invariance layer


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- training and evaluation ---------------------------------------------------------------------

def balanced_loss(train: ClipSet, classes: int) -> Any:
    """Cross-entropy with class weights ``N / (classes * n_c)`` (``fit`` hands it float targets)."""
    counts = torch.bincount(train.y, minlength=classes).float()
    weight = torch.where(counts > 0, len(train) / (classes * counts.clamp_min(1)), 0.0)

    def loss(logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target.long(), weight=weight.to(logits.device))

    return loss


def logits_of(model: nn.Module, x: Tensor, batch: int = 256) -> Tensor:
    """Eval-mode logits of clips ``x`` on the model's device and dtype, returned on the CPU."""
    parameter = next(model.parameters())
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[s:s + batch].to(parameter.device, parameter.dtype)).cpu()
                          for s in range(0, len(x), batch)])


def accuracies(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Top-1 accuracy and balanced accuracy (mean recall over the classes present)."""
    hit = logits.argmax(-1) == labels
    recalls = [float(hit[labels == c].float().mean()) for c in labels.unique()]
    return {"top1": topk_accuracy(logits, labels, k=1)[1], "balanced": statistics.fmean(recalls)}


def mirror_gap(model: nn.Module, x: Tensor) -> float:
    """``max |f(mirror x) - f(x)|`` of the logits in float64 (eval mode), on a copy."""
    probe = copy.deepcopy(model).double()
    x = x.double()
    return float((logits_of(probe, mirror_clips(x)) - logits_of(probe, x)).abs().max())


def train_one(name: str, model: nn.Module, train: ClipSet, test: ClipSet, settings: Settings,
              seed: int, classes: int) -> dict[str, Any]:
    """Train ``model`` with ``fit`` and score it on ``test``."""
    config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                         seed=seed, device=settings.device, amp="off", progress=False,
                         max_steps=settings.max_steps, bn_momentum=None,
                         check=name == "chiral")
    result = fit(model, train, config, loss=balanced_loss(train, classes), augment=random_yaw)
    return {"model": name, "seed": seed, "parameters": n_parameters(model),
            "train_s": result.seconds, "steps": result.steps,
            "final_loss": result.train_loss[-1] if result.train_loss else math.nan,
            **accuracies(logits_of(model, test.x), test.y),
            "mirror_gap_f64": mirror_gap(model, test.x[:64])}


def run_seed(seed: int, train: ClipSet, test: ClipSet, settings: Settings,
             classes: Sequence[str]) -> list[dict[str, Any]]:
    """The plain model and its chiral conversion, from the same initialisation, trained alike."""
    torch.manual_seed(seed)
    plain = STGCN(len(classes), channels=settings.channels, kernel=settings.temporal_kernel)
    example = (train.x[:2],)
    started = time.perf_counter()
    chiral = symmetrize.symmetrize(plain, SPEC, example, invariant_at=INVARIANT_AT)  # a copy
    convert_s = time.perf_counter() - started
    rows = [train_one("plain", plain, train, test, settings, seed, len(classes)),
            train_one("chiral", chiral, train, test, settings, seed, len(classes))]
    rows[1]["convert_s"] = convert_s
    for row in rows:
        print(f"seed {seed} {row['model']:>6}: top-1 {row['top1']:.3f}  balanced "
              f"{row['balanced']:.3f}  {row['parameters']:,} parameters  {row['train_s']:.1f} s"
              f"  mirrored-logit diff {row['mirror_gap_f64']:.2e}", flush=True)
    return rows


# -- report --------------------------------------------------------------------------------------

COLUMNS = (("top1", "top-1 acc", ".3f"), ("balanced", "balanced acc", ".3f"),
           ("parameters", "parameters", ",.0f"), ("train_s", "train s", ".1f"),
           ("mirror_gap_f64", "mirrored-logit diff (f64)", ".1e"))


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{model: {figure: {"mean", "std"}}}`` over seeds (sample std; 0 for one seed)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        out[model] = {}
        for key, _, _ in COLUMNS:
            values = [float(r[key]) for r in mine if key in r]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[model][key] = {"mean": statistics.fmean(values), "std": std}
    return out


def markdown(rows: list[dict[str, Any]], summary: dict[str, dict[str, dict[str, float]]]
             ) -> str:
    """Per-seed rows, then mean ± std over seeds, as one Markdown table."""
    lines = ["| model | seed | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = [format(r[k], f) if k in r else "-" for k, _, f in COLUMNS]
        lines.append(f"| {r['model']} | {r['seed']} | " + " | ".join(cells) + " |")
    for model, figures in summary.items():
        cells = [f"{format(figures[k]['mean'], f)} ± {format(figures[k]['std'], f)}"
                 for k, _, f in COLUMNS]
        lines.append(f"| **{model}** | mean ± std | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(train: ClipSet, test: ClipSet, classes: Sequence[str]) -> dict[str, Any]:
    """Clip counts per class and split, the missing test classes and the majority baseline."""
    count = {name: Counter(int(y) for y in data.y) for name, data in (("train", train),
                                                                       ("test", test))}
    per_class = {c: {s: count[s][i] for s in count} for i, c in enumerate(classes)}
    majority = max(count["train"], key=count["train"].__getitem__)
    present = len(count["test"])
    return {"clips": per_class, "missing_in_test": [c for c in classes if not per_class[c]["test"]],
            "majority_class": classes[majority],
            "majority_top1": count["test"][majority] / len(test),
            "majority_balanced": (majority in count["test"]) / present}


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of motion-capture takes (.bvh, .amc + .asf) and "
                        "MANIFEST.tsv (default: %(default)s); procedural motion when it does "
                        "not exist")
    parser.add_argument("--joint-map", action="append", metavar="FILE",
                        help="a TOML joint map for takes of another naming (docs/data.md)")
    parser.add_argument("--split", choices=("take", "subject"), default=Settings.split,
                        help="hold out every third take of each class (default) or subjects "
                        "08-09")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one plain and one chiral run per seed (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=Settings.epochs,
                        help="passes over the training clips (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few training steps")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    return parser.parse_args(argv)


def load_data(folder: Path, settings: Settings, quick: bool, joint_map: list[str] | None = None
              ) -> tuple[ClipSet, ClipSet, tuple[str, ...], str]:
    """Training and test clips, the class names and where the clips came from."""
    if (folder / "MANIFEST.tsv").is_file():
        classes, takes = CMU_CLASSES, load_cmu_takes(folder, settings, joint_map)
        train, test = split_takes(takes, settings.split)
        how = ("subjects 01-07 train, 08-09 test" if settings.split == "subject" else
               "every third take of each class held out")
        source = f"CMU mocap {folder} at 30 fps, {how}: {len(train)} + {len(test)} takes"
    else:
        print(f"note: {folder}/MANIFEST.tsv not found; using procedural clips "
              "(symmetrize.data.synthetic.generate_motion: walk, run, jump, box) instead")
        classes, takes = SYNTHETIC_CLASSES, synthetic_takes(settings, quick)
        train, test = split_takes(takes, "subject")
        source = f"procedural motion at 30 fps: {len(train)} + {len(test)} takes"
    return ClipSet(train, classes), ClipSet(test, classes, test=True), classes, source


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score the plain and the chiral classifier for every seed of ``args``, print
    the runs and the table, and return the figures (what ``--json`` writes)."""
    settings = Settings(epochs=1 if args.quick else args.epochs, device=args.device,
                        max_steps=4 if args.quick else None, split=args.split)
    started = time.perf_counter()
    train, test, classes, source = load_data(args.data, settings, args.quick,
                                             getattr(args, "joint_map", None))
    info = describe(train, test, classes)
    print(f"{source}\n{len(train)} training / {len(test)} test clips of {settings.clip_len} "
          f"frames; clips per class (train/test): "
          + ", ".join(f"{c} {n['train']}/{n['test']}" for c, n in info["clips"].items()))
    if info["missing_in_test"]:
        print(f"note: no test clips of {', '.join(info['missing_in_test'])}")
    largest = max(n["test"] for n in info["clips"].values()) / len(test)
    if largest > 0.8:
        print(f"note: {largest:.0%} of the test clips are of one class, so accuracy says little"
              + (" (try --split take)" if settings.split == "subject" else ""))
    if args.quick:
        print("note: --quick trains a few steps only; its accuracies mean nothing")
    rows = [row for seed in args.seeds for row in run_seed(seed, train, test, settings, classes)]
    summary = summarise(rows)
    baseline = {"model": f"majority ({info['majority_class']})", "seed": "-",
                "top1": info["majority_top1"], "balanced": info["majority_balanced"]}
    print(f"\n{markdown(rows + [baseline], summary)}")
    gaps = {m: max(r["mirror_gap_f64"] for r in rows if r["model"] == m) for m in summary}
    print(f"\nmax |f(mirrored clip) - f(clip)| of the logits, float64, over seeds: chiral "
          f"{gaps['chiral']:.2e}, plain {gaps['plain']:.2e}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return {"source": source, "classes": list(classes), "settings": asdict(settings),
            "seeds": args.seeds, "train_clips": len(train), "test_clips": len(test),
            **info, "runs": rows, "majority": baseline, "summary": summary,
            "max_mirror_gap_f64": gaps}


def main(argv: list[str] | None = None) -> None:
    """The command line: parse ``argv`` (default ``sys.argv``), :func:`run`, write ``--json``."""
    args = parse_args(argv)
    figures = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
