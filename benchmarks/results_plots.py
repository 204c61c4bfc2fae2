"""The study's two figures as small PNG files (matplotlib, no display needed): learning curves
(validation MPJPE against the step, one colour per variant, one panel per lifter) and the
data-efficiency curve (test MPJPE against the share of training takes)."""

from __future__ import annotations

import io
import statistics
from pathlib import Path
from typing import Any

COLOURS = {"plain": "#7f7f7f", "plain + flip aug": "#1f77b4",
           "plain + flip aug + flip TTA": "#17becf", "chiral (skeleton Reps, tanh)": "#d62728",
           "chiral (regular Reps, ReLU)": "#ff7f0e"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> int:
    """Write ``figure`` as a PNG through ``write_atomic``; its size in bytes."""
    from symmetrize.atomic import write_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    data = buffer.getvalue()
    write_atomic(path, lambda f: f.write(data))
    return len(data)


def learning_curves(lifting: dict[str, dict[str, list[dict[str, Any]]]], titles: dict[str, str],
                    path: Path) -> int:
    """Validation (early-stopping cameras) MPJPE against the optimiser step of every training
    run: one panel per lifter, a colour per variant, a thin line per seed and a dot at the best
    evaluation (the weights kept). The TTA row is the flip-augmented model, so it has no curve
    of its own. Returns the file's size."""
    plt = _pyplot()
    models = list(lifting)
    figure, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for row, runs in lifting[model].items():
            if row.endswith("flip TTA"):
                continue
            for k, run in enumerate(runs):
                steps, errors = zip(*run["curve"]) if run["curve"] else ((), ())
                ax.plot(steps, [1000 * e for e in errors], color=COLOURS[row], lw=1,
                        alpha=0.85, label=row if k == 0 else None)
                best = [1000 * e for s, e in run["curve"] if s == run["best_step"]]
                if best:
                    ax.plot([run["best_step"]], best[:1], "o", color=COLOURS[row], ms=3)
        finals = [1000 * min(e for _, e in r["curve"]) for runs in lifting[model].values()
                  for r in runs if r["curve"]]
        if finals:
            ax.set_ylim(0.8 * min(finals), 2.6 * max(finals))
        ax.set_title(titles.get(model, model), fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation MPJPE (mm)")
    axes[0][0].legend(fontsize=7, loc="upper right")
    figure.suptitle("Learning curves (dots: the kept best step; thin lines: seeds)", fontsize=10)
    figure.tight_layout()
    size = _save(figure, path)
    plt.close(figure)
    return size


def data_efficiency(efficiency: dict[str, dict[str, list[dict[str, Any]]]], title: str,
                    path: Path) -> int:
    """Test MPJPE (mean ± std over seeds) against the share of training takes, one line per
    variant. Returns the file's size."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(5.6, 3.8))
    fractions = [float(f) for f in efficiency]
    rows = list(next(iter(efficiency.values())))
    for k, row in enumerate(rows):
        stats = [[r["scores"]["mpjpe_mm"] for r in efficiency[f][row]]
                 for f in efficiency]
        means = [statistics.fmean(s) for s in stats]
        stds = [statistics.stdev(s) if len(s) > 1 else 0.0 for s in stats]
        shift = [f * (1 + 0.025 * (k - 2)) for f in fractions]  # error bars side by side
        ax.errorbar(shift, means, yerr=stds, color=COLOURS[row], marker="o", ms=3, lw=1.2,
                    capsize=2, label=row)
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("share of the training takes (by take)")
    ax.set_ylabel("test MPJPE (mm)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figure.tight_layout()
    size = _save(figure, path)
    plt.close(figure)
    return size
