"""The conversion report: what :func:`~symmetrize.symmetrize` replaced, switched, shared and kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from symmetrize.rep import Rep

__all__ = ["ConversionReport", "short_rep"]


@dataclass
class ConversionReport:
    """One row per converted module, switched function and shared tensor; totals; the check.

    Each row is ``(what, type, input Rep, output Rep, action)``: ``what`` is a module path, a
    parameter path, or a source line for a functional call.
    """

    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    parameters_before: int = 0
    parameters_after: int = 0
    equivariance_error: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def parameter_ratio(self) -> float:
        """Trainable parameters after / before."""
        return self.parameters_after / max(self.parameters_before, 1)

    def actions(self, prefix: str) -> list[str]:
        """The ``what`` of every row whose action starts with ``prefix``."""
        return [row[0] for row in self.rows if row[4].startswith(prefix)]

    def __str__(self) -> str:
        header = ("module", "type", "input Rep", "output Rep", "action")
        widths = [max(len(str(r[i])) for r in [header, *self.rows]) for i in range(5)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in [header, *self.rows]]
        lines.append(f"parameters: {self.parameters_before:,} -> {self.parameters_after:,} "
                     f"({self.parameter_ratio:.3f}x); float64 equivariance error "
                     f"{self.equivariance_error:.2e}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def short_rep(rep: Rep | None) -> str:
    """``"68: 32p 12-"``: size, swapped pairs, negated entries."""
    if rep is None:
        return "-"
    return f"{rep.size}: {rep.n_pairs}p {rep.n_negated}-"
