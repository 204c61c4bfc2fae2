"""Merge the ``--json`` figures of several ``results.py`` runs into one (``--render A B ...``).

A long study can run as several processes (sections or lifters side by side, or a lifter
with fewer seeds when time is short). The merged figures render as one RESULTS.md:

- ``lifting``: per lifter, the rows of the run with the most seeds for it (the first such run
  on a tie);
- ``efficiency``, ``speed``, ``forecasting``, ``actions``: from the first run that has them;
- ``study``: every training record once (by lifter, training, seed and share), costs summed;
- ``meta``: the first run's, with the union of seeds, lifters and sections, every run's
  command line (``commands``) and the seeds behind each lifter (``seeds_per_model``).
"""

from __future__ import annotations

from typing import Any

from lift_3d import DEFAULT_PROTOCOL

SINGLE = ("efficiency", "speed", "forecasting", "actions")


def _seeds(rows: dict[str, list[Any]]) -> int:
    """How many seeds a lifter's rows hold (the longest row)."""
    return max((len(v) for v in rows.values()), default=0)


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figures dict from the figures of ``runs`` (see the module docstring)."""
    if not runs:
        raise ValueError("merge needs the figures of at least one run")
    for k, run in enumerate(runs):
        if "meta" not in run:
            raise ValueError(f"run {k} has no 'meta': not a results.py --json file")
    if len({bool(r["meta"]["quick"]) for r in runs}) > 1:
        raise ValueError("cannot merge --quick figures with full ones")
    protocols = sorted({r["meta"].get("protocol", DEFAULT_PROTOCOL) for r in runs})
    if len(protocols) > 1:
        raise ValueError(f"cannot merge runs of different protocols ({', '.join(protocols)})")
    merged: dict[str, Any] = {"wall_s": {}}
    lifting: dict[str, dict[str, list[Any]]] = {}
    seeds_per_model: dict[str, int] = {}
    for run in runs:
        for model, rows in run.get("lifting", {}).items():
            if _seeds(rows) > seeds_per_model.get(model, 0):
                lifting[model], seeds_per_model[model] = rows, _seeds(rows)
        for section in SINGLE:
            if run.get(section) and section not in merged:
                merged[section] = run[section]
        for name, seconds in run.get("wall_s", {}).items():
            merged["wall_s"][name] = merged["wall_s"].get(name, 0.0) + seconds
    if lifting:
        merged["lifting"] = lifting
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    cost = {"wall_s": 0.0, "cpu_s": 0.0, "trainings": 0, "cached": 0}
    for run in runs:
        study = run.get("study")
        if not study:
            continue
        for r in study["records"]:
            records.setdefault((r["model"], r["training"], r["seed"], r["fraction"]), r)
        for key in cost:
            cost[key] += study["cost"][key]
    if records:
        merged["study"] = {"cost": cost, "records": list(records.values())}
    meta = dict(runs[0]["meta"])
    for key in ("seeds", "models", "sections", "fractions"):
        meta[key] = sorted({v for r in runs for v in r["meta"][key]}, key=str)
    meta["seeds"] = sorted(int(s) for s in meta["seeds"])
    meta["fractions"] = sorted(float(f) for f in meta["fractions"])
    meta["commands"] = [r["meta"].get("commands", [r["meta"]["argv"]]) for r in runs]
    meta["commands"] = [argv for group in meta["commands"] for argv in group]
    meta["seeds_per_model"] = seeds_per_model
    meta["data_found"] = all(r["meta"]["data_found"] for r in runs)
    merged["meta"] = meta
    return merged
