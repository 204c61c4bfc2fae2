"""The lifting study's Markdown: mean ± std tables, verdicts by one rule, the issue's targets
checked against the measurements, and what limits the error."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import lift_3d
from results_protocol import EFFICIENCY_MODEL, LITERATURE, LITERATURE_RANGE

RULE = ("chiral **wins** a comparison when its mean is better than the other model's by more "
        "than the larger of the two standard deviations over seeds, **loses** when it is worse by "
        "more than that, and **ties** otherwise; with a single run there is no spread and the "
        "verdict is *undecided*.")
PLAIN_ROWS = ("plain", "plain + flip aug", "plain + flip aug + flip TTA")
CHIRAL_ROWS = ("chiral (skeleton Reps, tanh)", "chiral (regular Reps, ReLU)")
METRICS = (("MPJPE", "mpjpe_mm"), ("P-MPJPE", "p_mpjpe_mm"), ("N-MPJPE", "n_mpjpe_mm"))
#: the speed section's measurement giving each row's inference time
INFERENCE = {"plain": "plain inference", "plain + flip aug": "plain inference",
             "plain + flip aug + flip TTA": "plain + flip TTA inference",
             "chiral (skeleton Reps, tanh)": "chiral (skeleton) inference",
             "chiral (regular Reps, ReLU)": "chiral (regular) inference"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(chiral: list[float], other: list[float], higher_is_better: bool) -> str:
    """``wins``, ``loses`` or ``ties`` by :data:`RULE`; ``undecided`` with a single run."""
    (m_c, s_c), (m_o, s_o) = mean_std(chiral), mean_std(other)
    if min(len(chiral), len(other)) < 2:
        return "undecided"
    gain = (m_c - m_o) if higher_is_better else (m_o - m_c)
    threshold = max(s_c, s_o)
    return "wins" if gain > threshold else "loses" if -gain > threshold else "ties"


@dataclass
class Comparison:
    """One metric of chiral against another model, over seeds."""

    section: str
    chiral: str
    other: str
    metric: str
    chiral_values: list[float]
    other_values: list[float]
    higher_is_better: bool = False
    fmt: str = ".1f"

    def figures(self) -> dict[str, Any]:
        """Means, stds, the threshold and the verdict, for the JSON."""
        (m_c, s_c), (m_o, s_o) = mean_std(self.chiral_values), mean_std(self.other_values)
        return {"section": self.section, "chiral": self.chiral, "other": self.other,
                "metric": self.metric, "chiral_mean": m_c, "chiral_std": s_c,
                "other_mean": m_o, "other_std": s_o, "threshold": max(s_c, s_o),
                "higher_is_better": self.higher_is_better, "runs": len(self.chiral_values),
                "verdict": verdict(self.chiral_values, self.other_values,
                                   self.higher_is_better)}

    def phrase(self) -> str:
        """``MPJPE **wins** (45.7 vs 64.5, larger std 1.6)``."""
        f = self.figures()
        spread = (f", larger std {format(f['threshold'], self.fmt)}" if f["runs"] > 1
                  else ", one seed")
        return (f"{self.metric} **{f['verdict']}** ({format(f['chiral_mean'], self.fmt)} vs "
                f"{format(f['other_mean'], self.fmt)}{spread})")


def verdict_lines(comparisons: list[Comparison]) -> list[str]:
    """One Markdown bullet per (chiral, other) pair, its metrics' verdicts side by side."""
    pairs: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        pairs.setdefault((c.chiral, c.other), []).append(c)
    return [f"- {chiral} vs {other}: " + "; ".join(c.phrase() for c in group)
            for (chiral, other), group in pairs.items()]


def values(runs: list[dict[str, Any]], key: str) -> list[float]:
    """A test score of every seed's run."""
    return [float(r["scores"][key]) for r in runs]


def cell(numbers: list[float], fmt: str = ".1f") -> str:
    """``mean ± std`` (one run: its value, with no spread to show)."""
    mean, std = mean_std(numbers)
    return format(mean, fmt) if len(numbers) == 1 else f"{format(mean, fmt)} ± {format(std, fmt)}"


def _inference(speed: dict[str, Any] | None, model: str, row: str) -> str:
    timing = (speed or {}).get(model, {}).get("timings", {}).get(INFERENCE[row])
    return "–" if timing is None else f"{timing['ms']:.1f} ({timing['ratio']:.2f}×)"


def lifting_markdown(model: str, rows: dict[str, list[dict[str, Any]]],
                     speed: dict[str, Any] | None) -> tuple[str, list[Comparison]]:
    """One lifter's table (mean ± std over seeds) and its verdicts."""
    lines = [f"### {lift_3d.LIFTERS[model].title}", "",
             ("| variant | parameters | inference ms (× plain) | MPJPE mm | P-MPJPE mm | "
              "N-MPJPE mm | best step / steps | to plateau s | train s |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row, runs in rows.items():
        steps = (f"{cell([r['best_step'] for r in runs], '.0f')} / "
                 f"{cell([r['steps'] for r in runs], '.0f')}")
        lines.append(f"| {row} | {runs[0]['parameters']:,} | {_inference(speed, model, row)} | "
                     + " | ".join(cell(values(runs, k)) for _, k in METRICS)
                     + f" | {steps} | {cell([r['to_plateau_s'] for r in runs], '.0f')} | "
                     f"{cell([r['train_s'] for r in runs], '.0f')} |")
    missing = [r for r in CHIRAL_ROWS if r not in rows]
    if missing:
        lines += ["", (f"No {' or '.join(missing)} row: the model's LayerNorm needs channels "
                       "that do not flip sign (`symmetrize` refuses the skeleton layout).")]
    comparisons = [Comparison(model, c, o, metric, values(rows[c], k), values(rows[o], k))
                   for c in CHIRAL_ROWS if c in rows for o in PLAIN_ROWS
                   for metric, k in METRICS]
    return "\n".join(lines + ["", "Verdicts (mm, lower is better):", "",
                              *verdict_lines(comparisons)]), comparisons


def efficiency_markdown(eff: dict[str, dict[str, list[dict[str, Any]]]]
                        ) -> tuple[str, list[Comparison]]:
    """The data-efficiency table (each fraction, every variant) and its verdicts."""
    lines = [("| training takes | variant | MPJPE mm | P-MPJPE mm | N-MPJPE mm | best step | "
              "MPJPE vs plain |"), "|---|---|---:|---:|---:|---:|---:|"]
    comparisons = []
    for fraction, rows in eff.items():
        first = rows["plain"]
        takes = (f"{float(fraction):.0%} ({cell([r['takes'] for r in first], '.0f')} takes, "
                 f"{cell([r['train_frames'] for r in first], '.0f')} frames)")
        plain = statistics.fmean(values(first, "mpjpe_mm"))
        for row, runs in rows.items():
            change = statistics.fmean(values(runs, "mpjpe_mm")) / plain - 1
            lines.append(f"| {takes} | {row} | "
                         + " | ".join(cell(values(runs, k)) for _, k in METRICS)
                         + f" | {cell([r['best_step'] for r in runs], '.0f')} | "
                         f"{change:+.1%} |")
        comparisons += [Comparison(f"efficiency {float(fraction):.0%}", c,
                                   f"{o} ({float(fraction):.0%} of the takes)", metric,
                                   values(rows[c], k), values(rows[o], k))
                        for c in CHIRAL_ROWS if c in rows for o in PLAIN_ROWS
                        for metric, k in METRICS[:2]]
    return "\n".join(lines + ["", "Verdicts (mm, lower is better):", "",
                              *verdict_lines(comparisons)]), comparisons


def targets_markdown(lifting: dict[str, Any], efficiency: dict[str, Any],
                     comparisons: list[Comparison], runs: list[dict[str, Any]]
                     ) -> tuple[str, dict[str, Any]]:
    """The issue's three targets, each with what this run measured (``runs``: every
    training's record)."""
    capped = [r for r in runs if r["stopped"] != "early_stop"]
    lines = [f"- **Every variant reaches its plateau:** {len(runs) - len(capped)} of {len(runs)} "
             "trainings stopped early (their validation MPJPE did not improve for the patience)"
             + ("." if not capped else f"; {len(capped)} reached the step cap instead: "
                + ", ".join(sorted({f"{r['model']} {r['training']} seed {r['seed']}"
                                    for r in capped})) + ".")]
    found: dict[str, Any] = {"plateau": {"runs": len(runs), "capped": len(capped)}}
    base = lifting.get("tcn27", {}).get("plain")
    if base:
        mean = statistics.fmean(values(base, "mpjpe_mm"))
        low, high = LITERATURE_RANGE
        where = ("inside" if low <= mean <= high else "below" if mean < low else
                 f"{mean / high:.1f}× the top of")
        lines.append(f"- **Plain 27-frame baseline against the literature** ({LITERATURE}): "
                     f"{cell(values(base, 'mpjpe_mm'))} mm, {where} that range"
                     + ("." if low <= mean <= high else "; see *What limits the error*."))
        found["baseline_mm"] = mean
    tta = [c for c in comparisons if c.section in lifting and c.metric == "MPJPE"
           and c.other == PLAIN_ROWS[2]]
    met = [c for c in tta if c.figures()["verdict"] in ("wins", "ties")]
    lines.append(f"- **Chiral at 1× inference matches or beats plain + flip aug + flip TTA at "
                 f"2× (MPJPE):** {len(met)} of {len(tta)} (lifter, layout) pairs: "
                 + "; ".join(f"{c.section} {c.chiral}: {c.figures()['verdict']} "
                             f"({c.figures()['chiral_mean']:.1f} vs "
                             f"{c.figures()['other_mean']:.1f})" for c in tta) + ".")
    found["tta"] = {"pairs": len(tta), "met": len(met)}
    low = min(efficiency, key=float) if efficiency else None
    if low is not None:
        rows = efficiency[low]
        plain = statistics.fmean(values(rows["plain"], "mpjpe_mm"))
        parts = []
        for c in CHIRAL_ROWS:
            gain = 1 - statistics.fmean(values(rows[c], "mpjpe_mm")) / plain
            call = verdict(values(rows[c], "mpjpe_mm"), values(rows["plain"], "mpjpe_mm"),
                           False)
            ok = gain >= 0.10 and call == "wins"
            parts.append(f"{c}: {gain:+.1%}, verdict {call} ({'met' if ok else 'not met'})")
            found.setdefault("low_data", {})[c] = {"gain": gain, "verdict": call, "met": ok}
        lines.append(f"- **Chiral beats plain by >= 10 % MPJPE at {float(low):.0%} of the data "
                     f"({EFFICIENCY_MODEL}; met when the gain is >= 10 % and the verdict is "
                     "*wins*):** " + "; ".join(parts) + ".")
    return "\n".join(lines), found


def limits_markdown(lifting: dict[str, Any], efficiency: dict[str, Any]) -> str:
    """What limits the plain 27-frame lifter's error, measured: the training takes' error
    against the test error, the error per axis and per joint, scale and rotation, and the
    error against the amount of training data."""
    runs = lifting.get("tcn27", {}).get("plain")
    if not runs:
        return ""
    from symmetrize.skeleton import Skeleton

    names = Skeleton.preset("h36m").names
    fit = [r["train_fit"]["mpjpe_mm"] for r in runs]
    joints = [statistics.fmean(r["scores"]["per_joint_mm"][j] for r in runs)
              for j in range(len(names))]
    worst = sorted(range(len(names)), key=lambda j: -joints[j])[:5]
    axes = [statistics.fmean(r["scores"]["rms_xyz_mm"][a] for r in runs) for a in range(3)]
    test = statistics.fmean(values(runs, "mpjpe_mm"))
    lines = ["| measurement (plain 27-frame lifter, mean over seeds) | value |", "|---|---:|",
             f"| MPJPE on the test cameras of subjects 08-09 | {test:.1f} mm |",
             ("| MPJPE on the training takes (first camera of each, same weights) | "
              f"{statistics.fmean(fit):.1f} mm |"),
             ("| N-MPJPE (scale corrected) / P-MPJPE (scale and rotation corrected) | "
              f"{statistics.fmean(values(runs, 'n_mpjpe_mm')):.1f} / "
              f"{statistics.fmean(values(runs, 'p_mpjpe_mm')):.1f} mm |"),
             ("| RMS error along camera x / y (image plane) / z (depth) | "
              f"{axes[0]:.1f} / {axes[1]:.1f} / {axes[2]:.1f} mm |"),
             "| the five worst joints | " + ", ".join(f"{names[j]} {joints[j]:.0f}"
                                                       for j in worst) + " mm |"]
    curve = [(float(f), statistics.fmean(values(rows["plain"], "mpjpe_mm")))
             for f, rows in efficiency.items()]
    if len(curve) > 1:
        lines.append("| plain MPJPE against the share of training takes | "
                     + ", ".join(f"{f:.0%}: {m:.1f}" for f, m in curve) + " mm |")
    return "\n".join(lines)
