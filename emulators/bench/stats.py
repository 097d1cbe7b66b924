"""Small statistics for benchmark figures: percentiles, rounding, and the options every scenario gets."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), or None when there are no samples."""
    array = np.fromiter(values, dtype=float)
    if array.size == 0:
        return None
    return float(np.percentile(array, q))


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def ratio(ours: float | None, theirs: float | None, digits: int = 3) -> float | None:
    """ours / theirs, or None when either side is missing or theirs is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, digits)


@dataclass
class BenchOptions:
    """What the command line decided for this run."""

    quick: bool
    workdir: Path
    peers_dir: Path
    use_peers: bool = True  # --no-peers: measure only our side (the smoke test)
    notes: list[str] = field(default_factory=list)

    def progress(self, message: str) -> None:
        """A line on stderr while a long scenario runs (a ramp's steps), so a run of minutes is not silent."""
        print(f"  {message}", file=sys.stderr, flush=True)
