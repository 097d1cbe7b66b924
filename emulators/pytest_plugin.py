"""pytest plugin: fixtures that run an emulator in-process on free ports, or point at a real device.

Fixtures: ``<device>_target`` (one emulator per test) and ``<device>_target_module`` (one per module)
for misty, depthcam, recall, signalwire and videodb; ``start_emulator(device, settings)`` for custom
set-ups in a thread of its own, ``running_emulator(device, settings)`` on the caller's event loop.
``--target DEVICE=URL`` makes the same fixtures point at real hardware; tests marked
``control_plane`` are then skipped (a real device has no /_emulator/). Emulators started here run lifecycles
at the fast test time scale (``TEST_TIME_SCALE``), not at `benchtwin up`'s real speed; ``--time-scale X``
overrides it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from clients.control import ControlPlane
from emulators.config import Config
from emulators.hosting import EmulatorHost
from emulators.kit.clock import TEST_TIME_SCALE
from emulators.registry import DEVICES, available

T = TypeVar("T")

# Set once per session from --time-scale; the fixtures' emulators use it.
_time_scale = TEST_TIME_SCALE


def fixture_config() -> Config:
    """The embedded defaults at the fixtures' time scale (TEST_TIME_SCALE, or the session's --time-scale)."""
    return Config(time_scale=_time_scale)


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


def _create(device: str | type[Any], settings: dict[str, Any] | None, config: Config | None, **kwargs: Any) -> Any:
    from emulators.app import create_emulator

    if isinstance(device, str) and device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    return create_emulator(device, config or fixture_config(), settings=settings, free_ports=True, **kwargs)


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
    """Start one emulator on free loopback ports for the duration of the block.

    Without ``config``, lifecycles run at the test time scale (TEST_TIME_SCALE, or the session's --time-scale).
    """
    if device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    host = EmulatorHost(device, settings, config or fixture_config())
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
            recording = getattr(config, "_benchtwin_recordings", {}).get(device)
            if recording is not None:  # --record: through the recording proxy
                url = recording.url
            return Target(device=device, url=url.rstrip("/"), endpoints={"rest": url.rstrip("/")}, credentials=creds)
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtwin")
    group.addoption("--target", action="append", dest="benchtwin_targets", metavar="DEVICE=URL",
                    help="run the device fixtures against a real device or service at URL (repeatable)")
    group.addoption("--target-credential", action="append", dest="benchtwin_credentials", metavar="DEVICE.KEY=VALUE",
                    help="a credential for a --target (e.g. recall.api_key=...), repeatable")
    group.addoption("--time-scale", type=float, dest="benchtwin_time_scale", metavar="X",
                    help=f"lifecycle time scale of the emulators the fixtures start (default {TEST_TIME_SCALE}; "
                         "1.0 = real speed)")
    group.addoption("--record", dest="benchtwin_record", metavar="CASSETTE",
                    help="record what each --target answers into a cassette (CASSETTE/<device> for several targets)")


def pytest_configure(config: pytest.Config) -> None:
    global _time_scale
    config.addinivalue_line("markers", "control_plane: needs the emulator control plane (skipped on real devices)")
    scale = config.getoption("benchtwin_time_scale")
    if scale is not None:
        if scale < 0:
            raise pytest.UsageError(f"--time-scale {scale}: must be a number >= 0 (1.0 = real speed)")
        _time_scale = scale
    for spec in config.getoption("benchtwin_targets") or []:
        name, sep, url = spec.partition("=")
        if not sep or name not in DEVICES or not url.startswith(("http://", "https://")):
            raise pytest.UsageError(f"--target {spec!r}: expected DEVICE=http(s)://host[:port] with DEVICE one of "
                                    f"{', '.join(DEVICES)}")
    cassette = config.getoption("benchtwin_record")
    if cassette:
        targets = dict(spec.partition("=")[::2] for spec in config.getoption("benchtwin_targets") or [])
        if not targets:
            raise pytest.UsageError("--record needs at least one --target DEVICE=URL to record")
        if getattr(config.option, "numprocesses", None):  # pytest-xdist workers would each write the cassette
            raise pytest.UsageError("--record records from one process; run without -n (or with -n 0)")
        from emulators.hil.pytest_recording import start_recordings

        config._benchtwin_recordings = start_recordings(targets, cassette)  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    for recording in getattr(config, "_benchtwin_recordings", {}).values():
        recording.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("control_plane") is None:
        return
    for spec in item.config.getoption("benchtwin_targets") or []:
        device = spec.partition("=")[0]
        if any(f.startswith(f"{device}_target") for f in getattr(item, "fixturenames", ())):
            pytest.skip(f"needs the emulator control plane; {device} is a real device (--target)")


def _make_fixture(device: str, scope: str) -> Any:
    def _fixture(request: pytest.FixtureRequest) -> Iterator[Target]:
        real = _real_target(request.config, device)
        if real is not None:
            yield real
            return
        with start_emulator(device) as target:
            yield target

    _fixture.__doc__ = (
        f"A {device} emulator on free loopback ports, one per {scope} (the real device with --target {device}=URL). "
        f"Lifecycles run at the test time scale {TEST_TIME_SCALE} ({1 / TEST_TIME_SCALE:g}x real speed); "
        "--time-scale X overrides it."
    )
    return pytest.fixture(scope=scope, name=f"{device}_target" + ("_module" if scope == "module" else ""))(_fixture)


for _device in DEVICES:
    globals()[f"{_device}_target"] = _make_fixture(_device, "function")
    globals()[f"{_device}_target_module"] = _make_fixture(_device, "module")
