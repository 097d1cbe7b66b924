"""Giving freed native memory back to the system.

Encoders (x264, AAC) allocate from glibc arenas, often from their own threads; once freed, that memory stays in the
process's arenas instead of going back to the system, so a run of short-lived streams looks like a leak of ~0.7 MB
each (measured: 60 refused Misty AV pushes, RSS +38 MB, all of it returned by one malloc_trim). Senders call
``trim_native_heap`` off the event loop after they release their encoders.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return None
    return trim


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).mallinfo2  # glibc 2.33 and newer
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    info: Callable[[], _MallInfo2] = function
    return info


def native_heap_in_use() -> int | None:
    """Bytes the C allocator has handed out and not had back, in every arena plus mmapped blocks (glibc
    ``mallinfo2``: ``uordblks + hblkhd``); None where the C library cannot say. Unlike RSS it does not move when
    freed pages are kept or returned, so it tells a leak from the allocator's own swings."""
    info = _mallinfo2()
    if info is None:
        return None
    figures = info()
    return int(figures.uordblks + figures.hblkhd)


def trim_native_heap() -> bool:
    """Return free heap pages to the system (blocking, milliseconds: call it in a thread); False where the C
    library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


_trimming = False


async def release_native_memory() -> None:
    """``trim_native_heap`` in a thread; a call while one is running is skipped (many streams ending at once trim
    once, not once each)."""
    global _trimming
    if _trimming:
        return
    _trimming = True
    try:
        await asyncio.to_thread(trim_native_heap)
    finally:
        _trimming = False


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (by default up to 8 per core, one more for each new thread that
    allocates: encoder and resolver threads each leave their own arena's pages behind). Call it before threads
    start; False where the C library has no mallopt."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


async def trim_periodically(period_s: float = 10.0) -> None:
    """Give freed heap pages back every ``period_s`` for as long as the process serves (`benchtwin up` runs it)."""
    while True:
        await asyncio.sleep(period_s)  # a housekeeping period, not synchronisation
        await release_native_memory()
