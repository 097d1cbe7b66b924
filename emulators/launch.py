"""The `benchtwin` command's entry point: the CLI is imported with the garbage collector paused.

Importing it (aiohttp, the device registry and settings) makes tens of thousands of objects that live as long as
the process; a collection while they are being made walks them again and again. `benchtwin up` keeps collection
paused until its emulators are ready (see ``emulators.up.resume_collection``).
"""

from __future__ import annotations

import gc


def main() -> int:
    collecting = gc.isenabled()
    gc.disable()
    try:
        from emulators.cli import main as cli_main
    finally:
        if collecting:
            gc.enable()
    return cli_main()
