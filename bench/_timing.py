"""Side-by-side timing shared by the benchmarks: ratios measured in one run, never a time."""

from __future__ import annotations

import statistics
import timeit
from dataclasses import dataclass


@dataclass
class Timing:
    ours_us: list[float]  # per-op microseconds, one entry per round
    ref_us: list[float]

    @property
    def min_ratio(self) -> float:
        return min(self.ours_us) / min(self.ref_us)

    @property
    def median_ratio(self) -> float:
        return statistics.median(o / r for o, r in zip(self.ours_us, self.ref_us, strict=True))


def interleaved(ours: timeit.Timer, ref: timeit.Timer, rounds: int, number: int) -> Timing:
    """Time both sides ``rounds`` times, alternating which goes first in each round.

    Alternating the order cancels any first/second-slot bias (cache, frequency ramp,
    a neighbour waking up on the other core) that a fixed order would fold into the ratio.
    """
    ours.timeit(number // 10)  # warm up: per-thread buffers, caches, branch predictors
    ref.timeit(number // 10)
    o_us: list[float] = []
    r_us: list[float] = []
    for i in range(rounds):
        pair = ((ours, o_us), (ref, r_us)) if i % 2 == 0 else ((ref, r_us), (ours, o_us))
        for timer, sink in pair:
            sink.append(timer.timeit(number) / number * 1e6)
    return Timing(o_us, r_us)


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]MISS[/]"


def ratio_text(num: float, den: float) -> str:
    if not den:
        return "n/a" if not num else "inf"
    r = num / den
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"
