"""The options of `benchtwin soak`, apart from the runner so that building the `benchtwin` parser imports no load
generator."""

from __future__ import annotations

import argparse

from emulators.kit.events import EVENT_LOG_CAPACITY
from emulators.soak.samples import DEFAULT_LIMITS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run the load (default 10)")
    p.add_argument("--sample-seconds", type=float, default=30.0, help="seconds between samples (default 30)")
    p.add_argument("--warmup-samples", type=int, default=2, help="samples left out of the slopes (default 2)")
    p.add_argument("--only", help="comma-separated devices (default: every available one)")
    p.add_argument("--max-rss-slope", type=float, default=DEFAULT_LIMITS["rss_mb"],
                   help="RSS growth allowed after warm-up, MB/min (default 0.1)")
    p.add_argument("--max-heap-slope", type=float, default=DEFAULT_LIMITS["heap_mb"],
                   help="growth of the C heap in use (glibc mallinfo2) allowed after warm-up, MB/min (default 0.1)")
    p.add_argument("--event-log-capacity", type=int, default=200,
                   help=f"events each emulator keeps during the soak (default 200, `benchtwin up` keeps "
                        f"{EVENT_LOG_CAPACITY}): the logs fill up within minutes, so their filling to the bound is "
                        "not read as growth")
    p.add_argument("--idle-connections", type=int, default=20,
                   help="idle and half-sent connections per emulator in each hostile burst (default 20)")
    p.add_argument("--json", dest="json_path", help="write the samples and the verdict to this file")
