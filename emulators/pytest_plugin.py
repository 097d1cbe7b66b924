"""pytest plugin: fixtures that run an emulator in-process on free ports, or point at a real device.

Fixtures: ``<device>_target`` (one emulator per test) and ``<device>_target_module`` (one per module)
for misty, depthcam, recall, signalwire and videodb; ``start_emulator(device, settings)`` for custom
set-ups in a thread of its own, ``running_emulator(device, settings)`` on the caller's event loop.
``--target DEVICE=URL`` makes the same fixtures point at real hardware; tests marked
``control_plane`` are then skipped (a real device has no /_emulator/).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from clients.control import ControlPlane
from emulators.config import Config
from emulators.registry import DEVICES, available

T = TypeVar("T")


@dataclass
class Target:
    """What a test talks to: an emulator started for it, or a real device given by --target."""

    device: str
    url: str
    endpoints: dict[str, Any]
    credentials: dict[str, Any] = field(default_factory=dict)
    control: ControlPlane | None = None
    emulator: Any = None
    _host: EmulatorHost | None = None

    @property
    def is_emulator(self) -> bool:
        return self.emulator is not None

    def call(self, fn: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
        """Run ``fn()`` on the emulator's event loop and return its result."""
        if self._host is None:
            raise RuntimeError("call() needs an in-process emulator, not a real device")
        return self._host.call(fn, timeout_s)


class EmulatorHost:
    """Runs one emulator on its own event loop in a daemon thread, so sync and async tests can use it."""

    def __init__(self, device: str, settings: dict[str, Any] | None = None, config: Config | None = None) -> None:
        self.device = device
        self.settings = settings or {}
        self.config = config or Config()
        self.loop = asyncio.new_event_loop()
        self.emulator: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"emulator-{device}", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    async def _start(self) -> None:
        self.emulator = _create(self.device, self.settings, self.config)
        await self.emulator.start()

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"{self.device} emulator did not start within {timeout_s} s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def call(self, fn: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout_s)  # type: ignore[arg-type]

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.emulator is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self.emulator.aclose, timeout_s)
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)


def _create(device: str | type[Any], settings: dict[str, Any] | None, config: Config | None, **kwargs: Any) -> Any:
    from emulators.app import create_emulator

    if isinstance(device, str) and device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    return create_emulator(device, config or Config(), settings=settings, free_ports=True, **kwargs)


@contextlib.asynccontextmanager
async def running_emulator(device: str | type[Any], settings: dict[str, Any] | None = None, *,
                           config: Config | None = None, **kwargs: Any) -> AsyncIterator[Any]:
    """A started emulator on free loopback ports, on the running loop, for the duration of the block.

    ``device`` is a device name or an Emulator class (a kit test device); ``kwargs`` go to the emulator's
    constructor (``seed``, ``time_scale``, ``clock``)."""
    emulator = _create(device, settings, config, **kwargs)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.aclose()


@contextlib.contextmanager
def start_emulator(device: str, settings: dict[str, Any] | None = None, *, config: Config | None = None
                   ) -> Iterator[Target]:
    """Start one emulator on free loopback ports for the duration of the block."""
    if device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    host = EmulatorHost(device, settings, config)
    host.start()
    try:
        emulator = host.emulator
        endpoints = emulator.endpoints()
        yield Target(
            device=device,
            url=endpoints["rest"],
            endpoints=endpoints,
            credentials=emulator.credentials(),
            control=ControlPlane(endpoints["rest"]),
            emulator=emulator,
            _host=host,
        )
    finally:
        host.stop()


def _real_target(config: pytest.Config, device: str) -> Target | None:
    for spec in config.getoption("benchtwin_targets") or []:
        name, _, url = spec.partition("=")
        if name == device:
            creds = {}
            for c in config.getoption("benchtwin_credentials") or []:
                key, _, value = c.partition("=")
                dev, _, cred = key.partition(".")
                if dev == device:
                    creds[cred] = value
            return Target(device=device, url=url.rstrip("/"), endpoints={"rest": url.rstrip("/")}, credentials=creds)
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtwin")
    group.addoption("--target", action="append", dest="benchtwin_targets", metavar="DEVICE=URL",
                    help="run the device fixtures against a real device or service at URL (repeatable)")
    group.addoption("--target-credential", action="append", dest="benchtwin_credentials", metavar="DEVICE.KEY=VALUE",
                    help="a credential for a --target (e.g. recall.api_key=...), repeatable")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "control_plane: needs the emulator control plane (skipped on real devices)")
    for spec in config.getoption("benchtwin_targets") or []:
        name, sep, url = spec.partition("=")
        if not sep or name not in DEVICES or not url.startswith(("http://", "https://")):
            raise pytest.UsageError(f"--target {spec!r}: expected DEVICE=http(s)://host[:port] with DEVICE one of "
                                    f"{', '.join(DEVICES)}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("control_plane") is None:
        return
    for spec in item.config.getoption("benchtwin_targets") or []:
        device = spec.partition("=")[0]
        if any(f.startswith(f"{device}_target") for f in getattr(item, "fixturenames", ())):
            pytest.skip(f"needs the emulator control plane; {device} is a real device (--target)")


def _make_fixture(device: str, scope: str) -> Any:
    @pytest.fixture(scope=scope, name=f"{device}_target" + ("_module" if scope == "module" else ""))
    def _fixture(request: pytest.FixtureRequest) -> Iterator[Target]:
        real = _real_target(request.config, device)
        if real is not None:
            yield real
            return
        with start_emulator(device) as target:
            yield target

    return _fixture


for _device in DEVICES:
    globals()[f"{_device}_target"] = _make_fixture(_device, "function")
    globals()[f"{_device}_target_module"] = _make_fixture(_device, "module")
