"""Dialling out: where a stream URL's host really connects (resolve override) and why a connection failed."""

from __future__ import annotations

import socket
import ssl

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class OverrideResolver(AbstractResolver):
    """Maps ``host`` or ``host:port`` to ``ip:port`` while Host and SNI keep the original name."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.overrides = overrides
        self._default = DefaultResolver()

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
            return await self._default.resolve(host, port, family)
        ip, target_port = target
        return [ResolveResult(hostname=host, host=ip, port=target_port,
                              family=socket.AF_INET6 if ":" in ip else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self._default.close()


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
