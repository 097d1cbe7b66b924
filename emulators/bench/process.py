"""Child processes of a benchmark run: the emulator under test (`benchtwin up` in its own process) and peers.

Every child is registered so that a failure or Ctrl-C still ends it; CPU time is read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from emulators.app import emulator_entries
from emulators.registry import available

REPO_ROOT = Path(__file__).resolve().parents[2]
# Bytecode of the emulator under test is cached here, outside the repository (see child_environment).
PYCACHE_DIR = Path("~/.cache/benchtwin/pycache").expanduser()


class BenchError(RuntimeError):
    """A benchmark step could not run (a child did not start, a stream never arrived)."""


# ----- the registry of children ------------------------------------------------------------------------------
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so its own children end with it), output to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(cwd or REPO_ROOT), env=env, start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it is still there after ``timeout_s``."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        # The group may hold grandchildren that outlived their parent (npx -> node).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _children.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(_children.values()):
        stop(proc, timeout_s=2.0)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def children_stopped() -> Iterator[None]:
    """While the block runs, SIGTERM ends it like Ctrl-C (KeyboardInterrupt); whatever ends it, every child this
    process spawned is stopped, so a bench or soak that is stopped never leaves an emulator running."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, previous)


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, all its live threads included, in nanoseconds' precision.

    The per-thread schedstat runtimes are used rather than /proc/<pid>/stat, whose 10 ms ticks are too
    coarse for the cost of one added viewer over a few seconds. (A thread that ended is no longer counted,
    so windows are measured while the emulator's thread pools are up.)
    """
    return _schedstat_sum(pid, 0)


def total_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds since the process started, ended threads included (10 ms ticks)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (`benchtwin up --processes N` forks one child per share of emulators)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def _schedstat_sum(pid: int, column: int) -> float:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[column])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended while we looked
    return total / 1e9


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat).

    On a shared machine this tells starvation (other work held the cores) from a slow emulator.
    """
    return _schedstat_sum(pid, 1)


def _alive(figure: Any, pid: int) -> float:
    """A figure of a process that may have ended meanwhile (0 then)."""
    try:
        return float(figure(pid))
    except OSError:
        return 0.0


def free_port() -> int:
    """A port that was free a moment ago (for tools that must be told a port rather than report one)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port; BenchError on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"the process exited with {proc.returncode} before listening on port {port}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise BenchError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:.0f} s")


# ----- the emulator under test ---------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def ports_zero_config(devices: list[str], settings: dict[str, dict[str, Any]] | None = None,
                      top: dict[str, Any] | None = None) -> str:
    """A config in which every listener of the given emulators (all when empty) takes a free port; ``top`` holds
    global keys (``event_log_capacity``, ...)."""
    lines: list[str] = [f"{key} = {_toml_value(v)}" for key, v in (top or {}).items()]
    if lines:
        lines.append("")
    for device in devices or list(available()):
        # Only the device under test is imported here, so a device being edited elsewhere cannot break it.
        cls = importlib.import_module(f"emulators.{device}.device").EMULATOR
        lines.append(f"[{device}]")
        values: dict[str, Any] = {name: 0 for name in cls.port_settings}
        values.update((settings or {}).get(device, {}))
        lines.extend(f"{key} = {_toml_value(v)}" for key, v in values.items())
        lines.append("")
    return "\n".join(lines)


def child_environment() -> dict[str, str]:
    """The environment of an emulator child: bytecode caching on, into a cache directory of our own.

    An installed package starts from cached bytecode; an environment with PYTHONDONTWRITEBYTECODE set
    would otherwise recompile every module at every start and measure the compiler, not the emulator.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    return env


class EmulatorProcess:
    """`python -m emulators up --only DEVICE` in its own process, on free ports, with its endpoints file."""

    def __init__(self, devices: list[str], workdir: Path, *, settings: dict[str, dict[str, Any]] | None = None,
                 log_level: str = "warning", processes: int = 1, fleet: dict[str, int] | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.devices = devices
        self.config = config or {}  # global configuration keys
        self.processes = processes  # one unless a scenario compares: the CPU figures then sum the process tree
        self.fleet = fleet or {}
        self.workdir = workdir
        self.settings = settings or {}
        self.log_level = log_level
        tag = "-".join(devices) or "all"
        self.config_path = workdir / f"{tag}.toml"
        self.endpoints_path = workdir / f"{tag}.endpoints.json"
        self.log_path = workdir / f"{tag}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}
        self.started_at = 0.0
        self.ready_after_s = 0.0
        self.cpu_at_ready_s = 0.0

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "emulators", "up", "--config", str(self.config_path),
                "--endpoints-file", str(self.endpoints_path), "--log-level", self.log_level, "--no-dashboard",
                "--processes", str(self.processes)]
        if self.fleet:
            argv += ["--fleet", ",".join(f"{d}={n}" for d, n in self.fleet.items())]
        if self.devices:
            argv[4:4] = ["--only", ",".join(self.devices)]
        return argv

    async def start(self, timeout_s: float = 60.0) -> EmulatorProcess:
        self.config_path.write_text(ports_zero_config(self.devices, self.settings, self.config))
        self.endpoints_path.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        self.proc = spawn(self.argv(), log=self.log_path, env=child_environment())
        # `up` writes the endpoints file only after every emulator answered its health check.
        deadline = self.started_at + timeout_s
        while not self.endpoints_path.exists():
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise BenchError(f"benchtwin up exited with {self.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise BenchError(f"benchtwin up was not ready within {timeout_s:.0f} s")
            await asyncio.sleep(0.005)
        self.ready_after_s = time.monotonic() - self.started_at
        self.cpu_at_ready_s = sum(_alive(total_cpu_seconds, p) for p in process_tree(self.proc.pid))
        self.endpoints = emulator_entries(json.loads(self.endpoints_path.read_text()))
        return self

    @staticmethod
    def cores() -> int:
        """The cores this process may run on: what `up` would use for its default process count."""
        return len(os.sched_getaffinity(0))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return sum(_alive(cpu_seconds, p) for p in process_tree(self.pid))

    def wait_seconds(self) -> float:
        return sum(_alive(runqueue_wait_seconds, p) for p in process_tree(self.pid))

    def rest(self, device: str) -> str:
        return str(self.endpoints[device]["rest"])

    def credentials(self, device: str) -> dict[str, Any]:
        return dict(self.endpoints[device].get("credentials", {}))

    async def state(self, session: aiohttp.ClientSession, device: str) -> dict[str, Any]:
        async with session.get(f"{self.rest(device)}/_emulator/state") as resp:
            resp.raise_for_status()
            return dict(await resp.json())

    async def control(self, session: aiohttp.ClientSession, device: str, path: str,
                      body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with session.post(f"{self.rest(device)}/_emulator/{path}", json=body or {}) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 300:
                raise BenchError(f"{device} /_emulator/{path} answered {resp.status}: {payload}")
            return dict(payload)

    async def aclose(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(stop, self.proc)
            self.proc = None

    async def __aenter__(self) -> EmulatorProcess:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
