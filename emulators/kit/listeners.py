"""Listener hardening shared by every emulator: bounded connections per listening socket, the open-files limit
raised at start, and accept errors (out of descriptors) logged once per interval instead of once per accept."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("benchtwin.listeners")

# An HTTP connection that sends no complete request head for this long (idle, or a head dribbled byte by byte) is
# closed; aiohttp's keep-alive timer covers both because it runs from the moment the connection is made.
IDLE_TIMEOUT_S = 15.0
# Per listening socket: beyond this, new connections get a 503 and are closed at once so they cost no descriptor.
# An eighth of the open-files limit each: one flooded port cannot take the descriptors the others need.
CONNECTION_SHARE = 8
MIN_CONNECTIONS, MAX_CONNECTIONS = 64, 4096
RESOURCE_LOG_INTERVAL_S = 10.0
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_REFUSAL_BODY = b'{"error": "connection: this port already serves its maximum of open connections"}'
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a common soft limit of 1024 is one idle-client flood away
    from every listener failing to accept); returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a container may forbid it; the limits stay as they were
            log.warning("cannot raise the open-files limit from %s to %s: %s", soft, target, exc)
    return soft, hard


def connection_limit() -> int:
    """Connections one listening socket may hold, from the open-files limit in force now."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft // CONNECTION_SHARE))


class ResourceErrorThrottle:
    """A loop exception handler that logs descriptor/memory exhaustion at most once per interval (with how many
    were folded in) and hands every other error to the handler that was there before."""

    def __init__(self, interval_s: float = RESOURCE_LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._last = -float("inf")
        self.suppressed = 0
        self._previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> ResourceErrorThrottle:
        """Once per loop: every emulator in the process shares one throttle."""
        current = loop.get_exception_handler()
        owner = getattr(current, "__self__", None)
        if isinstance(owner, ResourceErrorThrottle):
            return owner
        throttle = cls()
        throttle._previous = current
        loop.set_exception_handler(throttle.handle)
        return throttle

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self._clock()
        if now - self._last < self.interval_s:
            self.suppressed += 1
            return
        folded, self.suppressed, self._last = self.suppressed, 0, now
        log.error(
            "%s: %s (%d more like it in the last %.0f s; next report in %.0f s)",
            context.get("message", "resource error"), exc, folded, self.interval_s, self.interval_s,
        )


class _ConnectionGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.released = asyncio.Event()  # set whenever a slot comes back (for whoever watches the count)

    def release(self) -> None:
        self.open -= 1
        self.released.set()


class _Counted(asyncio.Protocol):
    """Forwards everything to aiohttp's request handler and gives the gate its slot back when the socket closes."""

    def __init__(self, inner: asyncio.Protocol, gate: _ConnectionGate) -> None:
        self._inner = inner
        self._gate = gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.release()
        self._inner.connection_lost(exc)


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        transport.close()


class BoundedSockSite(web.SockSite):
    """A SockSite that serves at most ``max_connections`` connections at once on its socket."""

    def __init__(self, runner: web.BaseRunner, sock: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(runner, sock, **kwargs)
        self.gate = _ConnectionGate(max_connections)

    def _protocol(self) -> asyncio.Protocol:
        gate = self.gate
        if gate.open >= gate.limit:
            gate.refused += 1
            return _Refused()
        server = self._runner.server
        assert server is not None
        gate.open += 1
        return _Counted(server(), gate)

    async def start(self) -> None:
        # What SockSite.start does, with the counting factory in place of the runner's server.
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog
        )
