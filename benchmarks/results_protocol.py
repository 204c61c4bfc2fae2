"""What ``benchmarks/results.py`` runs: the lifters, variants, seeds and training fractions of
the study (full or ``--quick``), as a list of training tasks, and the protocol paragraph that
``RESULTS.md``, ``docs/results.md`` and the README quote."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "examples"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import lift_3d

#: the lifters of the accuracy tables, and the one the data-efficiency study trains
MODELS = ("tcn27", "tcn81", "poseformer")
EFFICIENCY_MODEL = "tcn27"
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SEEDS = (0, 1, 2)
#: why the data-efficiency study uses the 27-frame convnet
EFFICIENCY_WHY = ("the 27-frame temporal convnet: the paper's lifting architecture, the "
                  "cheapest of the three per step, and the only one whose every variant (both "
                  "chiral layouts) exists, so 3 fractions x 3 seeds x 4 trainings fit the budget")
#: the literature's range for ground-truth 2D input (MPJPE, mm; Human3.6M protocol 1)
LITERATURE = ("37-46 mm: VideoPose3D (Pavllo et al. 2019) 37.2 mm with 243 frames, Martinez et "
              "al. (2017) 45.5 mm from a single frame, both trained on Human3.6M's 1.5 million "
              "frames of 4 fixed cameras and tested on its subjects 9 and 11")
LITERATURE_RANGE = (37.0, 46.0)


@dataclass(frozen=True)
class Task:
    """One model to train: a lifter, a training (``lift_3d.trainings``), a seed, the share
    of the training takes and the protocol (``lift_3d.PROTOCOLS``)."""

    model: str
    training: str
    seed: int
    fraction: float
    protocol: str = lift_3d.DEFAULT_PROTOCOL

    @property
    def key(self) -> str:
        """A file-name-safe identifier (the cache's file name; the default protocol unnamed,
        so caches of earlier studies stay valid)."""
        return (f"{self.model}-{self.training.replace(':', '-').replace('+', '-')}"
                f"-s{self.seed}-f{self.fraction:g}"
                + ("" if self.protocol == lift_3d.DEFAULT_PROTOCOL else f"-{self.protocol}"))


def tasks(models: tuple[str, ...] | list[str], fractions: tuple[float, ...] | list[float],
          seeds: tuple[int, ...] | list[int], efficiency: bool,
          protocol: str = lift_3d.DEFAULT_PROTOCOL) -> list[Task]:
    """Every training of the accuracy tables (each of ``models`` on all the takes) and, with
    ``efficiency``, of the data-efficiency study (:data:`EFFICIENCY_MODEL` on each fraction
    below 1; its fraction 1 is the accuracy run), under ``protocol``. The efficiency model's
    runs come first, so a study cut short has its most complete part."""
    def runs(model: str, fraction: float) -> list[Task]:
        return [Task(model, t, s, fraction, protocol) for s in seeds
                for t in lift_3d.trainings(model)]

    first = [EFFICIENCY_MODEL] if EFFICIENCY_MODEL in models else []
    out = [t for m in first for t in runs(m, 1.0)]
    if efficiency:
        out += [t for f in sorted(fractions, reverse=True) if f < 1
                for t in runs(EFFICIENCY_MODEL, f)]
    return out + [t for m in models if m not in first for t in runs(m, 1.0)]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def protocol_paragraph(quick: bool, seeds: int, fractions: list[float]) -> str:
    """The protocol in one paragraph (Markdown), for ``seeds`` seeds and the efficiency
    study's ``fractions``."""
    p = lift_3d.QUICK if quick else lift_3d.PROTOCOL
    lifters = "; ".join(f"`{k}`: {v.title}, {v.batch} windows of {_n(v.frames_out, 'output frame')}"
                        " a step" for k, v in lift_3d.LIFTERS.items())
    shares = ", ".join(f"{f:.0%}" for f in fractions)
    return (
        "**Protocol.** The 36 CMU takes of `../shared/data/cmu`, mapped to the 17 Human3.6M "
        f"joints and kept at every {p['downsample']}th frame ({120 // p['downsample']} fps), "
        "split by subject: 01-07 train (29 takes), 08-09 validation (7 takes). Each training "
        f"take is filmed by {_n(p['train_cameras'], 'random virtual camera')} (yaw all round, "
        "elevation -6 to 29 deg, 3.5-7 m from the take's centre and further for takes that "
        "travel, focal 800-1500 px; drawn per seed); the validation takes by "
        f"{_n(p['stop_cameras'], 'other camera')} for early stopping and by "
        f"{p['test_cameras']} more for the figures below, so no checkpoint is picked on the "
        "frames it is scored on. A lifter maps normalised 2D keypoints (ground truth, no "
        "noise) to root-relative 3D joints in the camera frame. Every model trains with "
        f"`symmetrize.train.fit`: Adam, lr {p['lr']:g} halved every {p['lr_half_life']} steps, "
        f"MPJPE loss, validation MPJPE every {p['eval_every']} steps, early stopping after "
        f"{p['patience']} evaluations without an improvement of more than "
        f"{1000 * p['min_delta']:g} mm (at most {p['max_steps']} steps), "
        f"the best weights kept. Lifters: {lifters}. Variants: plain; plain + flip "
        "augmentation; the same model with flip test-time averaging (2 forward passes); chiral "
        "with skeleton hidden Reps (ReLU switched to tanh) and with regular hidden Reps (ReLU "
        f"kept), 1 forward pass. Figures: mean ± std over {_n(seeds, 'seed')} (each seed draws "
        "its own cameras, initial weights and batch order)"
        + (f"; the data-efficiency runs train on {shares} of the training takes, drawn per "
           "seed by take (never by frame), and are tested on the same cameras." if fractions
           else "."))
