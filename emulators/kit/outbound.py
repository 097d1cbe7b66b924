"""Outbound connections the emulators make: WebSocket streams and webhooks, with retries and an egress allowlist.

The allowlist exists so a test run never streams to a production endpoint by accident: by default only
loopback, private and link-local addresses (and names that resolve only to them) are allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from emulators.kit.events import EventLog

DEFAULT_ALLOWED = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                   "fc00::/7", "fe80::/10")


class EgressRefused(Exception):
    """The destination is outside the egress allowlist."""


class OutboundFailed(Exception):
    """Every attempt allowed by the retry policy failed."""

    def __init__(self, url: str, attempts: int, last_error: str) -> None:
        super().__init__(f"{url}: gave up after {attempts} attempt(s): {last_error}")
        self.url = url
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` None = keep trying while the owner lives (cancel the task to stop)."""

    interval_s: float = 3.0
    max_attempts: int | None = None

    def attempts(self) -> Iterable[int]:
        n = 1
        while self.max_attempts is None or n <= self.max_attempts:
            yield n
            n += 1


class EgressPolicy:
    """Where outbound senders may connect. Built once from the configuration (``egress_allow``) and passed to
    every sender; nothing builds a default one, so the configured list can neither be bypassed nor ignored."""

    def __init__(self, allow: Iterable[str], allow_hosts: Iterable[str] = ("localhost",)) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.hosts = {h.lower() for h in allow_hosts}

    def _allowed_ip(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        return any(addr in net for net in self.networks)

    def check(self, url: str) -> None:
        """Raise EgressRefused unless every address of the URL's host is inside the allowlist."""
        host = urlsplit(url).hostname
        if not host:
            raise EgressRefused(f"{url!r} has no host")
        if host.lower() in self.hosts:
            return
        try:
            if self._allowed_ip(host):
                return
            raise EgressRefused(_refusal(url, host))
        except ValueError:
            pass  # a name, not an address
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise EgressRefused(f"{url}: cannot resolve {host!r} ({exc.strerror})") from None
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(self._allowed_ip(a) for a in addresses):
            raise EgressRefused(_refusal(url, host))


def _refusal(url: str, host: str) -> str:
    return (
        f"refusing to connect to {url}: {host} is outside the egress allowlist (loopback and private ranges). "
        "benchtwin emulators only send to local receivers; widen 'egress_allow' in the config to change this"
    )


class OutboundWebSocket:
    """Connects to a customer's WebSocket endpoint, retrying per policy; records every attempt."""

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        retry: RetryPolicy,
        egress: EgressPolicy,
        events: EventLog,
        name: str,
        headers: dict[str, str] | None = None,
        ssl: ssl.SSLContext | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.session = session
        self.retry = retry
        self.egress = egress
        self.events = events
        self.name = name
        self.headers = headers or {}
        self.ssl = ssl
        self.connect_timeout_s = connect_timeout_s
        self.attempts = 0
        self.last_error = ""

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        self.egress.check(self.url)
        for attempt in self.retry.attempts():
            self.attempts = attempt
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    ws = await self.session.ws_connect(
                        self.url,
                        headers=self.headers,
                        ssl=self.ssl if self.ssl is not None else True,
                        timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                        autoping=True,
                        max_msg_size=16 * 1024**2,
                        compress=0,
                    )
            except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
                self.last_error = describe_connect_error(exc)
                if self.retry.max_attempts is not None and attempt >= self.retry.max_attempts:
                    break
                self.events.record(
                    "outbound.retry", stream=self.name, url=self.url, attempt=attempt, error=self.last_error,
                    retry_in_s=self.retry.interval_s,
                )
                await asyncio.sleep(self.retry.interval_s)
                continue
            self.events.record("outbound.connected", stream=self.name, url=self.url, attempt=attempt)
            return ws
        self.events.record("outbound.failed", stream=self.name, url=self.url, attempts=self.attempts,
                           error=self.last_error)
        raise OutboundFailed(self.url, self.attempts, self.last_error)


def describe_connect_error(exc: BaseException) -> str:
    """A short, specific reason: refused, TLS verification, timeout, HTTP status."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate verification failed: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"WebSocket handshake rejected with HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class WebhookSender:
    """Delivers webhooks/status callbacks, retrying on connection errors and 5xx answers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        retry: RetryPolicy,
        egress: EgressPolicy,
        events: EventLog,
        ssl: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.session = session
        self.retry = retry
        self.egress = egress
        self.events = events
        self.ssl = ssl
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def deliver(
        self,
        url: str,
        *,
        method: str = "POST",
        json: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        """Returns the final HTTP status; raises OutboundFailed when every attempt failed."""
        self.egress.check(url)
        last = ""
        attempts = 0
        for attempt in self.retry.attempts():
            attempts = attempt
            try:
                kwargs: dict[str, Any] = {"headers": headers or {}, "ssl": self.ssl if self.ssl else True,
                                          "timeout": self.timeout}
                if method.upper() == "GET":
                    kwargs["params"] = form or {}
                elif json is not None:
                    kwargs["json"] = json
                elif form is not None:
                    kwargs["data"] = form
                async with self.session.request(method.upper(), url, **kwargs) as resp:
                    await resp.read()
                    if resp.status < 500:
                        self.events.record("webhook.delivered", url=url, method=method.upper(), status=resp.status,
                                           attempt=attempt)
                        return resp.status
                    last = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = describe_connect_error(exc)
            if self.retry.max_attempts is not None and attempt >= self.retry.max_attempts:
                break
            self.events.record("outbound.retry", url=url, attempt=attempt, error=last, retry_in_s=self.retry.interval_s)
            await asyncio.sleep(self.retry.interval_s)
        self.events.record("outbound.failed", url=url, attempts=attempts, error=last)
        raise OutboundFailed(url, attempts, last)
