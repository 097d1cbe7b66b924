"""`benchtwin parity`: replay a cassette's requests against a fresh, seeded emulator and diff every answer."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import av
from yarl import URL

from emulators.hil.cassette import Cassette, Exchange, Message
from emulators.hil.compare import Answer, Comparer, Difference
from emulators.hil.dialout_sink import ParitySink
from emulators.hil.media_capture import CaptureError, capture
from emulators.hil.recorder import end_to_end
from emulators.hil.redact import PLACEHOLDER
from emulators.hil.rules import ParityRules
from emulators.kit.tls import ensure_dev_certs, server_ssl_context

CLOSE_GRACE_S = 2.0  # how long past the recorded end a session may take to close on the device's side
MAX_GAP_S = 5.0  # a recorded pause longer than this (someone stepped away) is cut to it


@dataclass
class ParityResult:
    cassette: str
    device: str
    emulator: str
    profile: dict[str, Any]
    compared: int
    differences: list[Difference] = field(default_factory=list)
    ignored: int = 0

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.explained]

    @property
    def exit_status(self) -> int:
        return 1 if self.unexplained else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cassette": self.cassette, "device": self.device, "emulator": self.emulator, "profile": self.profile,
            "compared": self.compared, "ignored_fields": self.ignored,
            "unexplained": len(self.unexplained), "explained": len(self.differences) - len(self.unexplained),
            "differences": [d.as_dict() for d in self.differences],
        }


@contextlib.contextmanager
def fresh_emulator(device: str, settings: dict[str, Any], seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """A seeded emulator on free loopback ports for the run: (base URL, credentials)."""
    from emulators.config import Config
    from emulators.hosting import EmulatorHost

    config = Config()
    config.seed = seed
    host = EmulatorHost(device, settings, config)
    host.start()
    try:
        yield host.emulator.endpoints()["rest"], host.emulator.credentials()
    finally:
        host.stop()


class ParityRun:
    def __init__(self, cassette: Cassette, base_url: str, rules: ParityRules, *, credentials: dict[str, Any],
                 mapping: dict[str, str] | None = None, pace: float = 1.0) -> None:
        self.cassette = cassette
        self.base_url = base_url.rstrip("/")
        self.rules = rules
        self.auth = rules.credential_headers(credentials)
        self.mapping = mapping or {}
        self.pace = pace
        self.comparer = Comparer(rules)
        self.answers: dict[int, Answer] = {}
        # The stand-in receivers serve the dev certificate, which emulators trust (SignalWire dials only wss://).
        self.server_ssl = server_ssl_context(ensure_dev_certs())

    def _mapped(self, text: str) -> str:
        for old, new in {**self.comparer.learned, **self.mapping}.items():
            text = text.replace(old, new)
        return text

    def _request_headers(self, e: Exchange) -> dict[str, str]:
        headers = {}
        for k, v in end_to_end(e.request_headers):
            if k.lower().startswith("sec-websocket"):
                continue
            if k in self.auth or k.lower() in (h.lower() for h in self.auth):
                headers[k] = next(val for h, val in self.auth.items() if h.lower() == k.lower())
            elif PLACEHOLDER not in v:
                headers[k] = v
        return headers

    def _url(self, e: Exchange, websocket: bool = False) -> URL:
        url = self.base_url + self._mapped(e.raw_path_qs)
        return URL("ws" + url[4:] if websocket else url, encoded=True)

    async def run(self) -> list[Difference]:
        exchanges = self.cassette.device_exchanges()
        differences: list[Difference] = []
        running: list[tuple[int, Exchange, asyncio.Task[Answer]]] = []
        captures = [(len(exchanges) + n, c) for n, c in enumerate(self.cassette.media_captures())]
        capturing: list[tuple[int, Exchange, asyncio.Task[dict[str, Any] | str]]] = []
        sink = ParitySink(server_ssl=self.server_ssl)
        await sink.start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                previous: Exchange | None = None
                try:
                    for index, e in enumerate(exchanges):
                        if previous is not None and self.pace > 0:
                            gap = min(MAX_GAP_S, max(0.0, e.started - previous.started)) * self.pace
                            await asyncio.sleep(gap)
                        previous = e
                        while captures and captures[0][1].started <= e.started:  # streams captured meanwhile
                            capturing.append(self._start_capture(*captures.pop(0)))
                        for _, earlier, task in [*running, *capturing]:  # what had ended before this began
                            if earlier.started + earlier.duration_ms / 1000 <= e.started:  # still ends first
                                await task
                        if e.is_websocket:
                            running.append((index, e, asyncio.create_task(self._session(session, e))))
                            continue
                        self.answers[index] = await self._http(session, e, index, sink)
                        # Compared at once, so the ids the emulator minted are known to the next request.
                        differences += self.comparer.exchange(index, e, self.answers[index])
                    capturing += [self._start_capture(*c) for c in captures]  # after the last request, as recorded
                    for index, e, task in running:
                        self.answers[index] = await task
                        differences += self.comparer.exchange(index, e, self.answers[index])
                    for n, capture_exchange, capture_task in capturing:
                        differences += self.comparer.media(n, capture_exchange, await capture_task)
                finally:
                    for _, _, task in running:
                        task.cancel()
                    for _, _, capture_task in capturing:
                        capture_task.cancel()
                    await asyncio.gather(*(t for _, _, t in running), *(t for _, _, t in capturing),
                                         return_exceptions=True)
                await sink.settle(self._dial_out_window())
        finally:
            await sink.aclose()
        for route in sink.routes:
            differences += self.comparer.dial_outs(route.index, route.field, route.recorded, route.observed)
        return sorted(differences, key=lambda d: d.index)

    def _start_capture(self, n: int, recorded: Exchange) -> tuple[int, Exchange, asyncio.Task[dict[str, Any] | str]]:
        return n, recorded, asyncio.create_task(self._capture(recorded))

    async def _capture(self, recorded: Exchange) -> dict[str, Any] | str:
        """The emulator's stream at the recorded URL (host moved to the emulator's, --map applied), captured
        for as long as the recording kept; the facts, or why there were none."""
        url = self._mapped(recorded.url)
        parts, base = urlsplit(url), urlsplit(self.base_url)
        if parts.hostname == urlsplit(recorded.url).hostname and base.hostname:
            url = url.replace(parts.netloc, f"{base.hostname}:{parts.port}" if parts.port else base.hostname, 1)
        seconds = float((recorded.media or {}).get("remux", {}).get("seconds", 2.0))
        with tempfile.TemporaryDirectory() as tmp:
            try:
                captured = await capture(url, seconds, Path(tmp), "parity")
            except (CaptureError, OSError, TimeoutError, av.error.FFmpegError) as exc:
                return f"no capture from {url}: {exc}"
        return {**(captured.media or {}), "sdp": captured.response_body.decode("utf-8", "replace")}

    def _dial_out_window(self) -> float:
        """How long the dial-outs may take: as long as they lasted when recorded, past the last request, plus grace."""
        dial_outs = [e for e in self.cassette.exchanges if e.dial_out is not None]
        requests = self.cassette.device_exchanges()
        if not dial_outs or not requests:
            return 0.0
        end = max(d.started + d.duration_ms / 1000 for d in dial_outs)
        return max(0.0, end - requests[-1].started) + CLOSE_GRACE_S

    async def _http(self, session: aiohttp.ClientSession, e: Exchange, index: int, sink: ParitySink) -> Answer:
        body = self._mapped(e.request_body.decode("utf-8")).encode() if _is_utf8(e.request_body) else e.request_body
        dial_outs = self.cassette.dial_outs_of(self.cassette.exchanges.index(e))
        if dial_outs:
            body = sink.rewrite(index, dial_outs, body, e.header("Content-Type", response=False) or "")
        try:
            async with session.request(e.method, self._url(e), headers=self._request_headers(e),
                                       data=body or None, allow_redirects=False) as resp:
                return Answer(resp.status, list(resp.headers.items()), sink.restore_urls(await resp.read()))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Answer(0, [], f"no answer: {exc}".encode())

    async def _session(self, session: aiohttp.ClientSession, e: Exchange) -> Answer:
        """Play the client's side of a recorded session on time and collect what the emulator sends."""
        protocol = e.header("Sec-WebSocket-Protocol", response=False)
        try:
            ws = await session.ws_connect(self._url(e, websocket=True), headers=self._request_headers(e),
                                          protocols=[p.strip() for p in protocol.split(",")] if protocol else (),
                                          max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return Answer(exc.status, list((exc.headers or {}).items()), b"", messages=[])
        received: list[Message] = []
        arrived = asyncio.Event()

        async def read() -> None:
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    data = msg.data.encode("utf-8") if msg.type == aiohttp.WSMsgType.TEXT else msg.data
                    received.append(Message("receive", time.time(), 1 if msg.type == aiohttp.WSMsgType.TEXT else 2,
                                            data))
                    arrived.set()

        async def after(count: int, deadline: float) -> None:
            """Causality: what the client did after the device's n-th message waits for an n-th message."""
            while len(received) < count and not reader.done():
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
                if time.monotonic() >= deadline:
                    return

        reader = asyncio.create_task(read())
        start = time.monotonic()
        closed_by = "device"
        recorded = e.messages or []
        try:
            for n, m in enumerate(recorded):
                if m.direction != "send":
                    continue
                due = start + (m.time - e.started)
                await after(sum(1 for x in recorded[:n] if x.direction == "receive"), due + CLOSE_GRACE_S)
                await _sleep_until(due)
                if reader.done():
                    break
                if m.opcode == 1:
                    await ws.send_str(self._mapped(m.text))
                else:
                    await ws.send_bytes(m.data)
            end = start + e.duration_ms / 1000
            if e.closed_by == "client":
                await after(sum(1 for x in recorded if x.direction == "receive"), end + CLOSE_GRACE_S)
                await _sleep_until(end)
                if not reader.done():
                    closed_by = "client"
                    await ws.close(code=e.close_code or 1000)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), max(0.0, end - time.monotonic()) + CLOSE_GRACE_S)
                if not reader.done():
                    closed_by = "client"
                    await ws.close()
            await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if not ws.closed:
                await ws.close()
        headers = list(ws._response.headers.items()) if ws._response is not None else []
        return Answer(101, headers, b"", messages=received, close_code=ws.close_code, closed_by=closed_by)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def run_parity(cassette: Cassette, device: str, rules: ParityRules, *, settings: dict[str, Any], seed: int,
               target: str | None = None, mapping: dict[str, str] | None = None, pace: float = 1.0,
               cassette_name: str = "", credentials: dict[str, Any] | None = None) -> ParityResult:
    """Compare against ``target`` (with ``credentials``) if given, else a fresh emulator with ``settings``, ``seed``."""
    def compare(base_url: str, credentials: dict[str, Any]) -> ParityResult:
        run = ParityRun(cassette, base_url, rules, credentials=credentials, mapping=mapping, pace=pace)
        differences = asyncio.run(run.run())
        return ParityResult(cassette_name, device, base_url, settings, len(run.answers), differences,
                            run.comparer.ignored)

    if target is not None:
        return compare(target, credentials or {})
    with fresh_emulator(device, settings, seed) as (base_url, credentials):
        return compare(base_url, credentials)
