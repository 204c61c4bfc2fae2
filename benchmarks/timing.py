"""One timing helper for every benchmark: interleaved rounds, medians.

Time on small shared machines swings by tens of percent from one second to the next, so the
variants being compared run back to back in every round (in an order that rotates from round to
round), and each result is a median over the rounds: the median time of each variant and the
median of the per-round ratios against a baseline.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Timing", "interleaved"]


@dataclass
class Timing:
    """Median seconds per call of one variant, and its median per-round ratio to the baseline."""

    seconds: float
    ratio: float
    rounds: list[float]

    @property
    def ms(self) -> float:
        return 1e3 * self.seconds


def _time(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def interleaved(variants: Mapping[str, Callable[[], object]], baseline: str, rounds: int = 7,
                min_seconds: float = 0.3, repeats: int | None = None,
                warmup: int = 1) -> dict[str, Timing]:
    """Time every callable in ``variants`` in ``rounds`` interleaved rounds.

    Args:
        variants: name -> a callable doing one unit of work (a train step, a forward pass).
        baseline: the name the ratios are taken against.
        rounds: rounds (the medians are over these; use >= 7 for figures you report).
        min_seconds: with ``repeats=None``, each timing repeats its call until it lasts at least
            this long (the count is fixed from the baseline's first timing).
        repeats: calls per timing (overrides ``min_seconds``).
        warmup: untimed calls of each variant first.

    Returns:
        name -> :class:`Timing` (the baseline's ratio is 1).
    """
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(variants)}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    if repeats is None:
        once = _time(variants[baseline], 1)
        repeats = max(1, round(min_seconds / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_time(variants[name], repeats))
    base = samples[baseline]
    return {name: Timing(statistics.median(times),
                         statistics.median(t / b for t, b in zip(times, base, strict=True)),
                         times)
            for name, times in samples.items()}
