"""What `benchtwin up` does once its configuration is read: run every emulator (fleet members included) in this
process, or spread them over N forked child processes, and serve one endpoints table, endpoints file and
dashboard for all of them.

With N processes the parent forks before any event loop or thread exists; each child starts its share of the
emulators on its own loop (and its own core), then sends its part of the endpoints document up a pipe. The
parent merges the parts in the fleet's order, serves the dashboard, and stops every child on Ctrl-C or SIGTERM
(SIGTERM, then SIGKILL after a grace period). A child that dies takes the others down with a message naming it;
a parent that dies takes its children with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import aiohttp

from emulators.app import emulator_entries, endpoints_document, start_all, write_endpoints_file
from emulators.config import Config
from emulators.fleet import Member
from emulators.kit.memory import limit_malloc_arenas, trim_periodically

if TYPE_CHECKING:
    from emulators.kit.emulator import Emulator

STOP_GRACE_S = 10.0  # how long a child gets to close its emulators after SIGTERM
READY_TIMEOUT_S = 120.0  # how long a child may take to start its emulators (hundreds of fleet members)
MAX_TABLE_MEMBERS = 6  # a fleet longer than this is shown by its first and last members in the table
# Imported once before the fork, so that no child spends its start on them: every device uses numpy.
SHARED_BEFORE_FORK = ("numpy",)


def process_count(config: Config, members: list[Member]) -> int:
    """``processes`` from the config, or one per core; never more than there are emulators."""
    wanted = config.processes or len(os.sched_getaffinity(0))
    return max(1, min(wanted, len(members)))


def split(members: list[Member], processes: int, costs: Callable[[str], tuple[float, float]] | None = None
          ) -> list[list[Member]]:
    """Members spread so that every process has about the same start-up CPU, heaviest first: each goes to the
    process it would leave least loaded, counting its device's imports where that device is not there yet. A
    fleet's members spread evenly; each group keeps the fleet's order."""
    cost = costs or _start_costs()
    groups: list[list[Member]] = [[] for _ in range(processes)]
    loads = [0.0] * processes
    devices: list[set[str]] = [set() for _ in range(processes)]
    order = {id(m): n for n, m in enumerate(members)}
    for member in sorted(members, key=lambda m: -sum(cost(m.device))):
        imports, build = cost(member.device)
        added = [build + (imports if member.device not in devices[g] else 0.0) for g in range(processes)]
        g = min(range(processes), key=lambda g: (loads[g] + added[g], len(groups[g]), g))
        groups[g].append(member)
        loads[g] += added[g]
        devices[g].add(member.device)
    return [sorted(g, key=lambda m: order[id(m)]) for g in groups if g]


def _start_costs() -> Callable[[str], tuple[float, float]]:
    from emulators.registry import available

    table = {device: emulator.start_cost_ms for device, emulator in available().items()}
    return table.__getitem__  # members are only ever of available devices


def run_up(members: list[Member], config: Config, endpoints_file: str | None) -> int:
    """Run until Ctrl-C or SIGTERM; 0 after a clean stop."""
    processes = process_count(config, members)
    if processes == 1:
        return asyncio.run(_in_process(members, config, endpoints_file))
    return _supervise(members, split(members, processes), config, endpoints_file)


# ----- one process -------------------------------------------------------------------------------------------
async def serve(members: list[Member], config: Config, on_ready: Callable[[dict[str, Any]], None],
                stop: asyncio.Event) -> None:
    """Start the emulators, report their endpoints document once each answers its health check, run until
    ``stop`` is set, close them all."""
    emulators = await start_all(members, config)
    try:
        await wait_healthy(emulators)
        resume_collection()
        on_ready(endpoints_document(emulators))
        housekeeping = asyncio.create_task(trim_periodically(), name="trim-native-heap")
        try:
            await stop.wait()
        finally:
            housekeeping.cancel()
    finally:
        await asyncio.gather(*(e.aclose() for e in emulators), return_exceptions=True)


def resume_collection() -> None:
    """Once started: what start-up made (modules, classes, settings, scenes) moves to the collector's permanent
    generation and collection resumes, if `benchtwin up` paused it for the start."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _in_process(members: list[Member], config: Config, endpoints_file: str | None) -> int:
    started_at = time.monotonic()
    limit_malloc_arenas()  # before any encoder or resolver thread starts
    stop = _stop_on_signals()
    front = Front(config, endpoints_file, started_at)
    ready = asyncio.Event()

    def on_ready(document: dict[str, Any]) -> None:
        front.document = document
        ready.set()

    served = asyncio.create_task(serve(members, config, on_ready, stop))
    waiter = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait([served, waiter], return_when=asyncio.FIRST_COMPLETED)
        if served.done():
            served.result()  # a failed start raises here
            return 0
        await front.open()
        await stop.wait()
        print("benchtwin: stopping...", file=sys.stderr, flush=True)
        await served
    finally:
        waiter.cancel()
        stop.set()
        with contextlib.suppress(Exception):
            await served
        await front.aclose()
    return 0


class Front:
    """What the user sees of a running `up`: the endpoints file, the table and the dashboard."""

    def __init__(self, config: Config, endpoints_file: str | None, started_at: float) -> None:
        self.config = config
        self.endpoints_file = endpoints_file
        self.started_at = started_at
        self.document: dict[str, Any] = {}
        self.dashboard: Any = None

    async def open(self) -> None:
        config = self.config
        if config.dashboard_port is not None:
            from emulators.dashboard.server import Dashboard

            self.dashboard = Dashboard(self.document, host=config.host, port=config.dashboard_port,
                                       control_token=config.control_token)
            try:
                await self.dashboard.start()
            except OSError as exc:
                self.dashboard = None
                raise RuntimeError(
                    f"dashboard: cannot listen on {config.host}:{config.dashboard_port} ({exc.strerror}); pass "
                    "--dashboard-port PORT (0: any free port) or --no-dashboard"
                ) from None
            self.document["dashboard"] = {"url": self.dashboard.url}
        if self.endpoints_file:
            write_endpoints_file(self.endpoints_file, self.document)
        print(render_endpoint_table(self.document, time.monotonic() - self.started_at), flush=True)

    async def aclose(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.aclose()


async def wait_healthy(emulators: list[Emulator], timeout_s: float = 10.0) -> None:
    """Every emulator answers its own health endpoint over its real socket."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for e in emulators:
            url = f"http://{e.host}:{e.ports['rest']}/_emulator/health"
            async with session.get(url) as resp:
                body = await resp.json()
                if not body.get("ready"):
                    raise RuntimeError(f"{e.name} did not become ready")


def render_endpoint_table(document: dict[str, Any], elapsed_s: float) -> str:
    """Every endpoint and credential; a long fleet by its first and last members' REST addresses only."""
    rows: list[tuple[str, str, str]] = []
    emulators = emulator_entries(document)
    fleets: dict[str, list[str]] = {}
    for name, entry in emulators.items():
        if "device" in entry:
            fleets.setdefault(str(entry["device"]), []).append(name)
    hidden = {n for names in fleets.values() if len(names) > MAX_TABLE_MEMBERS for n in names[2:-1]}
    for name, entry in document.items():
        if name in hidden:
            if name == fleets[str(entry["device"])][2]:
                count = len(fleets[str(entry["device"])]) - 3
                rows.append(("...", "", f"{count} more {entry['device']} members (all in the endpoints file)"))
            continue
        for key, value in entry.items():
            if key in ("credentials", "device"):
                continue
            rows.append((name, key, str(value)))
        for key, value in entry.get("credentials", {}).items():
            rows.append((name, f"credential {key}", str(value)))
    width_d = max([len("device"), *(len(r[0]) for r in rows)])
    width_n = max([len("endpoint"), *(len(r[1]) for r in rows)])
    lines = [f"{'device':<{width_d}}  {'endpoint':<{width_n}}  address", "-" * (width_d + width_n + 40)]
    previous = ""
    for device, key, value in rows:
        lines.append(f"{device if device != previous else '':<{width_d}}  {key:<{width_n}}  {value}")
        previous = device
    lines.append(f"{len(emulators)} emulator(s) ready in {elapsed_s:.2f} s. Control plane: <rest>/_emulator/. "
                 "Press Ctrl-C to stop.")
    return "\n".join(lines)


# ----- N processes -------------------------------------------------------------------------------------------
def _child(members: list[Member], config: Config, conn: Connection) -> None:
    """A child process: its share of the emulators until SIGTERM; the endpoints document (or the error) up
    the pipe."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    limit_malloc_arenas()

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(members, config, lambda document: conn.send(("ready", document)), stop)

    try:
        asyncio.run(main())
    except Exception as exc:  # reported to the parent, which names the member and stops the rest
        with contextlib.suppress(OSError):
            conn.send(("error", str(exc) or type(exc).__name__))
        raise SystemExit(1) from None
    finally:
        conn.close()


def _die_with_parent() -> None:
    """SIGTERM to this child when the parent process ends, however it ends (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _supervise(members: list[Member], groups: list[list[Member]], config: Config, endpoints_file: str | None
               ) -> int:
    started_at = time.monotonic()
    for name in SHARED_BEFORE_FORK:
        importlib.import_module(name)
    context = multiprocessing.get_context("fork")  # before any loop or thread: the child is this process, now
    children: list[tuple[Any, Connection, list[Member]]] = []
    for group in groups:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(group, config, send), name="benchtwin-" + group[0].name,
                                daemon=False)
        child.start()
        send.close()
        children.append((child, receive, group))
    try:
        return asyncio.run(_parent(members, children, config, endpoints_file, started_at))
    finally:
        _stop_children([c for c, _, _ in children])


async def _parent(members: list[Member], children: list[tuple[Any, Connection, list[Member]]], config: Config,
                  endpoints_file: str | None, started_at: float) -> int:
    stop = _stop_on_signals()
    loop = asyncio.get_running_loop()
    parts: list[dict[str, Any] | None] = [None] * len(children)
    failure: list[str] = []
    ready = asyncio.Event()
    ended = asyncio.Event()

    def read(n: int) -> None:
        _, conn, group = children[n]
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            return
        if kind == "ready":
            parts[n] = payload
            if all(p is not None for p in parts):
                ready.set()
        else:
            failure.append(f"{', '.join(m.name for m in group)}: {payload}")
            ended.set()

    def exited(n: int) -> None:
        child, _, group = children[n]
        loop.remove_reader(child.sentinel)
        if not stop.is_set():
            child.join(2.0)  # its pipe closed as it ended: reaped in a moment, for the exit code
            failure.append(f"the process running {', '.join(m.name for m in group)} exited "
                           f"(exit code {child.exitcode})")
            ended.set()

    for n, (child, conn, _) in enumerate(children):
        loop.add_reader(conn.fileno(), read, n)
        loop.add_reader(child.sentinel, exited, n)
    front = Front(config, endpoints_file, started_at)
    try:
        waits = [asyncio.create_task(e.wait()) for e in (ready, ended, stop)]
        async with asyncio.timeout(READY_TIMEOUT_S):
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if failure:
            raise RuntimeError("; ".join(dict.fromkeys(failure)))
        if stop.is_set():
            return 0
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part or {})
        front.document.update({m.name: merged[m.name] for m in members if m.name in merged})  # the fleet's order
        resume_collection()
        await front.open()
        waits = [asyncio.create_task(e.wait()) for e in (ended, stop)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if failure and not stop.is_set():
            raise RuntimeError("; ".join(dict.fromkeys(failure)) + "; stopping the others")
        print("benchtwin: stopping...", file=sys.stderr, flush=True)
        return 0
    except TimeoutError:
        raise RuntimeError(f"the emulators did not all start within {READY_TIMEOUT_S:.0f} s") from None
    finally:
        stop.set()  # a child ending from here on is the stop, not a failure
        for child, conn, _ in children:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(conn.fileno())
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(child.sentinel)
        await front.aclose()


def _stop_children(children: list[Any]) -> None:
    for child in children:
        if child.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join()
