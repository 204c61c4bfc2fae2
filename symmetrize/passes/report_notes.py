"""The report's notes on the hidden-Rep decisions: what each layer (group of coupled layers) got
and why."""

from __future__ import annotations

from symmetrize.rules.context import Context

__all__ = ["decision_notes"]


def decision_notes(ctx: Context) -> list[str]:
    """One note per reason (automatic skeleton layout, regular pairs forced by an op, fixed by
    a constraint), listing the layers, then one per group of coupled layers."""
    by_reason: dict[str, list[str]] = {}
    notes = []
    for decision in ctx.decisions.values():
        if decision.path not in ctx.sites:
            continue
        if decision.constrained_by and not decision.sticky:
            notes.append(f"{decision.path}: output Rep fixed by {decision.constrained_by}")
        elif decision.reason:
            by_reason.setdefault(decision.reason, []).append(decision.path)
    notes = [f"{reason}: {', '.join(paths)}" for reason, paths in by_reason.items()] + notes
    notes.extend(f"coupled by residual connections (one Rep): {', '.join(group)}"
                 for group in ctx.coupled_groups())
    return notes
