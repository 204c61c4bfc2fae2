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
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import math
import statistics
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import symmetrize
from symmetrize import Skeleton, Spec
from symmetrize.data.windows import flip_pose
from symmetrize.metrics import topk_accuracy
from symmetrize.train import TrainConfig, fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu"
TRAIN_SUBJECTS = tuple(f"{s:02d}" for s in range(1, 8))  # the takes hold no subject 04
TEST_SUBJECTS = ("08", "09")
CMU_CLASSES = ("walk", "run", "jump", "dance", "basketball", "other")
SYNTHETIC_CLASSES = ("walk", "run", "jump", "box")
# a manifest action is split into phrases at " - ", "," and "/"; its first phrase found here
# names its class, and an action with none is "other"
PHRASES = {"walk": "walk", "slow walk": "walk", "brisk walk": "walk",
           "walk on uneven terrain": "walk", "navigate": "walk", "run": "run", "jog": "run",
           "jump": "jump", "forward jumps": "jump", "dance": "dance",
           "basketball": "basketball"}
SKELETON = Skeleton.preset("h36m")
SPEC = Spec(input="n c t j m", output="n k", skeleton="h36m", negate=(0,))
INVARIANT_AT = "blocks.3"  # the fourth block: the paper's invariance layer


@dataclass
class Settings:
    """The run's sizes and schedule."""

    clip_len: int = 32
    clip_stride: int = 16
    frame_step: int = 4  # 120 fps takes -> 30 fps
    train_phases: int = 4  # training clips from frames 0, 1, 2, 3 (mod frame_step) of a take
    channels: tuple[int, ...] = (16, 16, 16, 32, 32, 32)
    temporal_kernel: int = 9
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    max_steps: int | None = None
    device: str = "auto"
    split: str = "take"


# -- data ----------------------------------------------------------------------------------------

@dataclass
class Take:
    """One recording cut into clips ``(n, clip_len, 17, 3)`` of root-centred 3D poses: the
    training clips ``clips`` (from every phase) and the test clips ``test_clips`` (phase 0)."""

    name: str
    subject: str
    label: str
    clips: np.ndarray
    test_clips: np.ndarray


def action_class(action: str) -> str:
    """The class of a manifest ``action`` (``"dance - expressive arms"`` -> ``"dance"``)."""
    text = action.lower()
    for separator in (" - ", ",", "/"):
        text = text.replace(separator, "|")
    for phrase in (p.strip() for p in text.split("|")):
        if phrase in PHRASES:
            return PHRASES[phrase]
    return "other"


def read_manifest(folder: Path) -> dict[str, str]:
    """``{take: action}`` from ``folder/MANIFEST.tsv`` (take = file name without ``.bvh``)."""
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return {row["file"].removesuffix(".bvh"): row["action"]
                for row in csv.DictReader(f, delimiter="\t")}


def cut_clips(positions: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Clips ``(n, length, J, 3)`` cut every ``stride`` frames, the pelvis subtracted per frame."""
    starts = range(0, len(positions) - length + 1, stride)
    clips = np.stack([positions[s:s + length] for s in starts]) if starts else \
        np.zeros((0, length, *positions.shape[1:]))
    return (clips - clips[:, :, :1]).astype(np.float32)


def make_take(name: str, subject: str, label: str, positions: np.ndarray,
              settings: Settings, phases: int) -> Take:
    """A take of ``positions`` (at ``frame_step`` times 30 fps) cut at 30 fps: training clips
    from ``phases`` frame offsets (distinct 30 fps samplings of one motion), test clips from
    offset 0 only."""
    cuts = [cut_clips(positions[p::settings.frame_step], settings.clip_len, settings.clip_stride)
            for p in range(phases)]
    return Take(name, subject, label, np.concatenate(cuts), cuts[0])


def load_cmu_takes(folder: Path, settings: Settings,
                   joint_map: list[str] | None = None) -> list[Take]:
    """Every take in ``folder`` listed in its manifest, at ``120 / frame_step`` fps."""
    from symmetrize.data.takes import load_takes

    actions = read_manifest(folder)
    takes = []
    for found, motion, _ in load_takes(folder, joint_map=joint_map):  # .bvh, .amc + .asf
        name = found.path.stem
        if name not in actions:
            continue
        take = make_take(name, found.subject, action_class(actions[name]), motion.positions,
                         settings, settings.train_phases)
        if len(take.test_clips):
            takes.append(take)
    return takes


def synthetic_takes(settings: Settings, quick: bool) -> list[Take]:
    """Procedural takes at 30 fps, ``per_class`` training and 2 test takes per action; every
    take draws its own bone lengths, speed and heading."""
    from symmetrize.data.synthetic import generate_motion

    per_class = 2 if quick else 6
    takes = []
    for c, action in enumerate(SYNTHETIC_CLASSES):
        for i in range(per_class + 2):
            motion = generate_motion("h36m", action, frames=160 * settings.frame_step,
                                     fps=30.0 * settings.frame_step, rng=1000 * c + i)
            subject = "train" if i < per_class else "test"
            takes.append(make_take(f"{action}_{i:02d}", subject, action, motion, settings,
                                   settings.train_phases))
    return takes


def split_takes(takes: list[Take], split: str) -> tuple[list[Take], list[Take]]:
    """Training and test takes: by subject (CMU 08-09 or the procedural test takes are held
    out) or, with ``split="take"``, every third take of each class starting with the second."""
    if split == "subject":
        held = {t.name for t in takes if t.subject in TEST_SUBJECTS + ("test",)}
    elif split == "take":
        held = set()
        for label in dict.fromkeys(t.label for t in takes):
            held.update(t.name for t in [t for t in takes if t.label == label][1::3])
    else:
        raise ValueError(f"unknown split {split!r}: choose take or subject")
    return [t for t in takes if t.name not in held], [t for t in takes if t.name in held]


class ClipSet(torch.utils.data.Dataset):
    """Items ``(clip (3, T, 17, 1), label)``: ST-GCN's ``(C, T, V, M)`` layout, one person."""

    def __init__(self, takes: list[Take], classes: Sequence[str], test: bool = False) -> None:
        per_take = [t.test_clips if test else t.clips for t in takes]
        clips = np.concatenate(per_take)
        self.x = torch.from_numpy(clips).permute(0, 3, 1, 2).unsqueeze(-1).contiguous()
        self.y = torch.tensor([classes.index(t.label) for t, c in zip(takes, per_take)
                               for _ in c])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]


def random_yaw(batch: Sequence[Tensor], generator: torch.Generator) -> list[Tensor]:
    """Rotate every clip by a random angle about the vertical (Y) axis. The set of rotations is
    closed under the mirror, so the augmentation favours neither the plain nor the chiral model."""
    x, label = batch
    angle = torch.rand(len(x), generator=generator).to(x.device, x.dtype) * (2 * math.pi)
    cos, sin = angle.cos().view(-1, 1, 1, 1), angle.sin().view(-1, 1, 1, 1)
    rotated = torch.stack([cos * x[:, 0] + sin * x[:, 2], x[:, 1],
                           -sin * x[:, 0] + cos * x[:, 2]], dim=1)
    return [rotated, label]


def mirror_clips(x: Tensor) -> Tensor:
    """The mirror of clips ``(N, C, T, V, M)``: ``flip_pose`` on ``(N, M, T, V, C)``."""
    return flip_pose(x.permute(0, 4, 2, 3, 1), SKELETON).permute(0, 4, 2, 3, 1)


# -- model ---------------------------------------------------------------------------------------

def spatial_partitions(skeleton: Skeleton, center: str = "spine") -> np.ndarray:
    """ST-GCN's spatial partitions ``(3, V, V)`` of the degree-normalised adjacency (with self
    loops): the joint itself, neighbours no farther from ``center``, neighbours farther away."""
    v = len(skeleton)
    adjacency = np.eye(v)
    for i, j in skeleton.edges:
        adjacency[i, j] = adjacency[j, i] = 1
    norm = adjacency / adjacency.sum(0, keepdims=True)  # column w: the neighbours of root w
    hops = np.full(v, np.inf)
    hops[skeleton.index(center)] = 0
    queue = deque([skeleton.index(center)])
    while queue:
        u = queue.popleft()
        for w in np.flatnonzero(adjacency[u]):
            if hops[w] == np.inf:
                hops[w] = hops[u] + 1
                queue.append(int(w))
    closer = hops[:, None] <= hops[None, :]
    off = ~np.eye(v, dtype=bool)
    return np.stack([norm * np.eye(v), norm * (closer & off), norm * (~closer & off)])


class Block(nn.Module):
    """Graph convolution over the joints (per partition), then a temporal ``(k, 1)``
    convolution, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, partitions: int, kernel: int = 9,
                 stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.partitions = partitions
        self.gcn = nn.Conv2d(c_in, c_out * partitions, kernel_size=1)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(c_out))
        self.residual: nn.Module | None = None
        if residual and c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        elif residual:
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)),
                                          nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        n, _, t, v = x.shape
        y = self.gcn(x).view(n, self.partitions, -1, t, v)
        y = self.tcn(torch.einsum("nkctv,kvw->nctw", y, adjacency))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


class STGCN(nn.Module):
    """A small ST-GCN: ``(N, C, T, V, M)`` clips in, ``(N, classes)`` logits out."""

    def __init__(self, classes: int, in_channels: int = 3,
                 channels: Sequence[int] = (16, 16, 16, 32, 32, 64), kernel: int = 9) -> None:
        super().__init__()
        self.register_buffer("A", torch.tensor(spatial_partitions(SKELETON), dtype=torch.float32))
        k, v = self.A.shape[:2]
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            Block(c_in, c_out, k, kernel, stride=2 if c_out != c_in and i else 1, residual=i > 0)
            for i, (c_in, c_out) in enumerate(itertools.pairwise(widths)))
        self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(k, v, v))
                                                for _ in self.blocks)
        self.classifier = nn.Linear(channels[-1], classes)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block, importance in zip(self.blocks, self.edge_importance):
            x = block(x, self.A * importance)
        x = x.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)  # global pooling, then over persons
        return self.classifier(x)


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
