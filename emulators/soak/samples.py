"""What the soak measures of the emulator process, and the growth verdict from the slopes of those samples."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

# Growth allowed per minute after warm-up (the target for RSS is a flat slope within 0.1 MB/min).
# heap_mb is the C heap in use (glibc mallinfo2), which, unlike RSS, does not swing as freed pages are kept or
# returned: a leak shows in both, the allocator's own steps only in RSS.
DEFAULT_LIMITS = {"rss_mb": 0.1, "heap_mb": 0.1, "fds": 1.0, "threads": 0.5, "tasks": 1.0}
# Below these total changes over the run a slope is noise, whatever its value (short runs have few samples).
NOISE = {"rss_mb": 1.0, "heap_mb": 1.0, "fds": 8, "threads": 2, "tasks": 8}


@dataclass
class Sample:
    t_s: float  # since the start of the load
    rss_mb: float
    fds: int
    threads: int
    tasks: int  # owned tasks summed over every emulator's control plane
    heap_mb: float  # the process's C heap in use (mallinfo2), 0 where the C library cannot say
    lateness_ms: float  # the worst health answer (loop lateness as a client sees it) since the last sample
    health_ok: bool  # every emulator answered health within 1 s
    logs_filling: int = 0  # event logs below their bound that gained more than 1 % of it since the last sample


def process_figures(pid: int) -> tuple[float, int, int]:
    """RSS in MB, open descriptors and threads of a process, from /proc."""
    rss_kb, threads = 0, 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024.0, len(os.listdir(f"/proc/{pid}/fd")), threads


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def warmup_end(samples: list[Sample], warmup: int) -> int:
    """The first sample the slopes start from: after ``warmup`` samples and once no event log is still filling
    toward its bound (a log filling up is memory by design, not growth). Unchanged when one fills to the end."""
    if samples and samples[-1].logs_filling:
        return warmup
    last_filling = max((n for n, s in enumerate(samples) if s.logs_filling), default=-1)
    return max(warmup, last_filling + 1)


def verdict(samples: list[Sample], warmup: int, limits: dict[str, float]) -> dict[str, Any]:
    """Slopes after the warm-up (``warmup`` samples, and until the event logs are full); a metric grows if its
    slope passes its limit and it rose by more than noise over the run."""
    start = warmup_end(samples, warmup)
    kept = samples[start:] if len(samples) > start + 1 else samples
    out: dict[str, Any] = {"samples": len(samples), "after_warmup": len(kept), "slopes_per_min": {}, "growth": []}
    if samples and samples[-1].logs_filling:
        out["note"] = (f"{samples[-1].logs_filling} event log(s) were still filling toward their bound at the end: "
                       "their filling counts in the slopes; a smaller --event-log-capacity fills them sooner")
    for metric, limit in limits.items():
        points = [(s.t_s, float(getattr(s, metric))) for s in kept]
        slope = slope_per_min(points)
        rise = points[-1][1] - min(v for _, v in points) if points else 0.0
        out["slopes_per_min"][metric] = round(slope, 4)
        if slope > limit and rise > NOISE[metric]:
            out["growth"].append(f"{metric} grew {slope:.3f}/min (limit {limit}/min, rose {rise:.1f})")
    unhealthy = [round(s.t_s) for s in samples if not s.health_ok]
    if unhealthy:
        out["growth"].append(f"an emulator missed its 1 s health answer at t = {unhealthy} s")
    out["lateness_ms_max"] = round(max((s.lateness_ms for s in samples), default=0.0), 1)
    out["ok"] = not out["growth"]
    return out


def as_rows(samples: list[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
