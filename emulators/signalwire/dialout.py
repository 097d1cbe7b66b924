"""Dialling out to a customer's stream URL: the egress check, the resolve override, and why a connection failed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from emulators.kit.events import EventLog
from emulators.kit.outbound import EgressPolicy, EgressRefused, describe_connect_error

CONNECT_TIMEOUT_S = 5.0
# The kernel's send buffer per stream socket (Linux doubles it). A fixed size turns off autotuning, which would
# otherwise buffer up to megabytes (half a minute of L16) for a receiver that stopped reading before a write
# ever blocks; this one still covers far more than a second of the fastest codec on a long path.
SEND_BUFFER_BYTES = 64 * 1024


class OverrideResolver(AbstractResolver):
    """Maps ``host`` or ``host:port`` to ``ip:port`` while Host and SNI keep the original name."""

    def __init__(self, overrides: dict[str, str], egress: EgressPolicy) -> None:
        self.overrides = overrides
        self.egress = egress

    def target(self, host: str, port: int) -> tuple[str, int] | None:
        value = self.overrides.get(f"{host}:{port}") or self.overrides.get(host)
        if value is None:
            return None
        ip, _, target_port = value.rpartition(":")
        return ip.strip("[]"), int(target_port)

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        target = self.target(host, port)
        if target is None:
            # The policy resolves and checks every address, and the socket connects to those very addresses.
            return await self.egress.resolve(host, port, family=family)
        ip, target_port = target
        return [ResolveResult(hostname=host, host=ip, port=target_port,
                              family=socket.AF_INET6 if ":" in ip else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


def connection_error_kind(exc: BaseException) -> str:
    """The StreamError value for a failed connect: refused (TCP or non-101) versus timeout/TLS/DNS."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return "connection_refused_timeout_or_ssl_error"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "connection_refused_timeout_or_ssl_error"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(exc, dns_error):
        return "connection_refused_timeout_or_ssl_error"
    return "connection_refused"


async def dial(
    http: aiohttp.ClientSession,
    url: str,
    *,
    egress: EgressPolicy,
    resolver: OverrideResolver,
    ssl_context: ssl.SSLContext | bool,
    bearer_token: str | None,
    events: EventLog,
    stream_sid: str,
) -> aiohttp.ClientWebSocketResponse | str:
    """The open WebSocket, or the StreamError saying why there is none (the attempt is in the event log).

    The egress allowlist judges where the connection really goes (the resolve override's address, if any).
    """
    headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
    parts = urlsplit(url)
    try:
        target = resolver.target(parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80))
        checked = url if target is None else f"https://{_netloc(*target)}/"
        # The allowlist check may resolve a name: never block the loop that paces every stream on DNS.
        await egress.check_async(checked)
    except (EgressRefused, ValueError) as exc:
        events.record("outbound.failed", stream=stream_sid, url=url, error=str(exc))
        return "connection_refused"
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            ws = await http.ws_connect(
                url,
                headers=headers,
                ssl=ssl_context,
                autoping=True,
                compress=0,
                max_msg_size=16 * 1024**2,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
    except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
        kind = connection_error_kind(exc)
        events.record("outbound.failed", stream=stream_sid, url=url, error=describe_connect_error(exc),
                      stream_error=kind)
        return kind
    sock = ws.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    events.record("outbound.connected", stream=stream_sid, url=url)
    return ws


def _netloc(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
