"""Outbound connections the emulators make: WebSocket streams and webhooks, with retries and an egress allowlist.

The allowlist exists so a test run never streams to a production endpoint by accident: by default only
loopback and private addresses (and names that resolve only to them) are allowed. Link-local addresses (cloud
metadata services live at 169.254.169.254) are refused unless a configured range names them explicitly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from emulators.kit.events import EventLog

DEFAULT_ALLOWED = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
RESOLVE_TIMEOUT_S = 5.0
# getaddrinfo(host, port, family, type, proto) as the socket module has it; tests inject a scripted one.
AddressLookup = Callable[..., list[tuple[Any, ...]]]


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
    every sender; nothing builds a default one, so the configured list can neither be bypassed nor ignored.

    Every address a name resolves to must be allowed. ``client_session()`` makes that hold for every connection
    attempt: each request and redirect hop is checked, names are resolved off the event loop with a timeout, and
    the socket connects to the very addresses that were checked (no second lookup a rebinding DNS could answer).
    """

    def __init__(
        self,
        allow: Iterable[str],
        allow_hosts: Iterable[str] = ("localhost",),
        *,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
        lookup: AddressLookup = socket.getaddrinfo,
    ) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.hosts = {h.lower() for h in allow_hosts}
        self.resolve_timeout_s = resolve_timeout_s
        self._lookup = lookup
        self.allowed = 0  # verdicts, for /metrics: each connection attempt's check counts once
        self.refused = 0
        # Link-local is allowed only by a range that lies inside it (0.0.0.0/0 does not count).
        self._link_local_allowed = [
            n for n in self.networks if any(n.version == ll.version and n.subnet_of(ll) for ll in LINK_LOCAL)  # type: ignore[arg-type]
        ]

    def _allowed_ip(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
        if any((mapped or addr) in net for net in LINK_LOCAL):
            return any((mapped or addr) in net for net in self._link_local_allowed)
        return any(addr in net for net in self.networks)

    def check(self, url: str) -> None:
        """Raise EgressRefused unless every address of the URL's host is inside the allowlist (blocking lookup:
        call it from a thread, or use ``check_async``)."""
        host = _host_of(url)
        if host.lower() in self.hosts or self._check_literal(url, host):
            self.allowed += 1
            return
        try:
            infos = self._lookup(host, None, 0, 0, socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise self._refusing(f"{url}: cannot resolve {host!r} ({_strerror(exc)})") from None
        self._check_addresses(url, host, {str(info[4][0]) for info in infos})

    async def check_async(self, url: str) -> None:
        """``check`` with the lookup off the event loop and bounded by ``resolve_timeout_s``."""
        host = _host_of(url)
        if host.lower() in self.hosts or self._check_literal(url, host):
            self.allowed += 1
            return
        await self.resolve(host, 0, url=url)

    async def pinned_url(self, url: str) -> str:
        """``url`` checked, with a host name replaced by the first address it was checked at, for connections made
        by something that would resolve the name again (an encoder process, a reconnect): no second lookup."""
        parts = urlsplit(url)
        host = _host_of(url)
        results = await self.resolve(host, parts.port or 0, url=url)
        address = str(results[0]["host"])
        if address == host:
            return url
        netloc = f"[{address}]" if ":" in address else address
        if parts.port is not None:
            netloc += f":{parts.port}"
        if "@" in parts.netloc:
            netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
        return parts._replace(netloc=netloc).geturl()

    async def resolve(self, host: str, port: int, *, family: int = 0, url: str | None = None) -> list[ResolveResult]:
        """The host's addresses, every one checked; EgressRefused if any is outside the allowlist, or the lookup
        fails or takes longer than ``resolve_timeout_s``."""
        label = url or f"{host}:{port}"
        if host.lower() in self.hosts:
            # A name the policy trusts (localhost) is still pinned to what the lookup returns now.
            infos = await self._lookup_off_loop(label, host, port, family)
            self.allowed += 1
            return [_result(host, info) for info in infos]
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            infos = await self._lookup_off_loop(label, host, port, family)
            self._check_addresses(label, host, {str(info[4][0]) for info in infos})
            return [_result(host, info) for info in infos]
        self._check_literal(label, host)
        self.allowed += 1
        family_of = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [ResolveResult(hostname=host, host=host, port=port, family=family_of, proto=socket.IPPROTO_TCP,
                              flags=socket.AI_NUMERICHOST)]

    async def _lookup_off_loop(self, label: str, host: str, port: int, family: int) -> list[tuple[Any, ...]]:
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                infos = await asyncio.to_thread(self._lookup, host, port, family, socket.SOCK_STREAM)
        except TimeoutError:
            raise self._refusing(f"{label}: resolving {host!r} took longer than {self.resolve_timeout_s} s") from None
        except (socket.gaierror, UnicodeError) as exc:
            raise self._refusing(f"{label}: cannot resolve {host!r} ({_strerror(exc)})") from None
        if not infos:
            raise self._refusing(f"{label}: {host!r} resolves to no address")
        return list(infos)

    def _check_literal(self, url: str, host: str) -> bool:
        """True if ``host`` is an allowed address literal; EgressRefused if it is a refused one; False for names."""
        try:
            allowed = self._allowed_ip(host)
        except ValueError:
            return False  # a name, not an address
        if not allowed:
            raise self._refusing(_refusal(url, host))
        return True

    def _check_addresses(self, url: str, host: str, addresses: set[str]) -> None:
        if not addresses or not all(self._allowed_ip(a) for a in addresses):
            raise self._refusing(_refusal(url, host))
        self.allowed += 1

    def _refusing(self, message: str) -> EgressRefused:
        self.refused += 1
        return EgressRefused(message)

    # ----- sessions that cannot step outside the policy --------------------------------------------------
    def connector(self, **kwargs: Any) -> aiohttp.TCPConnector:
        """A connector that resolves through the policy and connects to the addresses it checked. No cap on
        connections unless asked (aiohttp's default of 100 would hold a bot's 101st media WebSocket back for as
        long as the first hundred stay open, which no real service does)."""
        kwargs.setdefault("limit", 0)
        return aiohttp.TCPConnector(resolver=PolicyResolver(self), use_dns_cache=False, **kwargs)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Checks the URL of every request a session makes, each redirect hop included, before it connects."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_redirect.append(self._on_request_redirect)
        trace.freeze()
        return trace

    def client_session(self, *, connector: aiohttp.TCPConnector | None = None, **kwargs: Any) -> aiohttp.ClientSession:
        """The session every outbound sender should use: the policy's connector and request checks."""
        return aiohttp.ClientSession(connector=connector or self.connector(), trace_configs=[self.trace_config()],
                                     **kwargs)

    def guard(self, session: aiohttp.ClientSession) -> None:
        """Add the per-request (and per-redirect-hop) check to a session made elsewhere, once."""
        if not any(getattr(t, "egress_policy", None) is self for t in session.trace_configs):
            trace = self.trace_config()
            trace.egress_policy = self  # type: ignore[attr-defined]
            session.trace_configs.append(trace)

    async def _on_request_start(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                                params: aiohttp.TraceRequestStartParams) -> None:
        await self.check_async(str(params.url))

    async def _on_request_redirect(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                                   params: aiohttp.TraceRequestRedirectParams) -> None:
        location = params.response.headers.get("Location")
        if location:
            await self.check_async(str(params.url.join(URL(location))))


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that answers only with addresses the policy allows (and connects to exactly those)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return await self.policy.resolve(host, port, family=family)

    async def close(self) -> None:
        return None


def _host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise EgressRefused(f"{url!r} has no host")
    return host


def _strerror(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _result(host: str, info: tuple[Any, ...]) -> ResolveResult:
    family, _, proto, _, address = info[:5]
    return ResolveResult(hostname=host, host=str(address[0]), port=int(address[1]), family=family, proto=proto,
                         flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)


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
        # Every attempt and every redirect hop of its handshake is checked anew: a name may resolve elsewhere on a
        # retry (DNS rebinding), and a handshake answered with a redirect may point anywhere.
        self.egress.guard(self.session)
        for attempt in self.retry.attempts():
            self.attempts = attempt
            await self.egress.check_async(self.url)
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
        raw_json: bytes | None = None,
    ) -> int:
        """``raw_json``: a JSON body already serialised (and perhaps signed), sent byte for byte."""
        """Returns the final HTTP status; raises OutboundFailed when every attempt failed."""
        self.egress.guard(self.session)
        last = ""
        attempts = 0
        for attempt in self.retry.attempts():
            attempts = attempt
            await self.egress.check_async(url)  # each retry resolves again, so each is checked again
            try:
                # A webhook's 3xx is its answer: following it would let the receiver send us past the allowlist.
                kwargs: dict[str, Any] = {"headers": headers or {}, "ssl": self.ssl if self.ssl else True,
                                          "timeout": self.timeout, "allow_redirects": False}
                if method.upper() == "GET":
                    kwargs["params"] = form or {}
                elif raw_json is not None:
                    kwargs["data"] = raw_json
                    kwargs["headers"] = {"Content-Type": "application/json", **kwargs["headers"]}
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
