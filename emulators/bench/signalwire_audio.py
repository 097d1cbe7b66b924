"""Scenario `signalwire-audio`: ramp concurrent PCMU conference streams (20 ms chunks) to real wss receivers.

Streams are created over the Compatibility API (form-encoded, Basic auth) on the running conference and
dial out to our TLS WebSocket receiver, which parses every message. Steps add streams to the ones already
running; each step measures one window: messages/s delivered, chunks missing from the sequence, and each
chunk's delay variation (arrival minus its media timestamp, relative to the stream's earliest chunk), whose
p99 is the lateness. A step is sustained when p99 <= 50 ms, no chunk is missing and >= 98% arrive in time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from emulators.bench.process import BenchError, EmulatorProcess
from emulators.bench.stats import BenchOptions, percentile, rounded
from emulators.bench.table import target
from emulators.kit.tls import ensure_dev_certs

CHUNK_S = 0.020
LATENESS_LIMIT_MS = 50.0
TARGET_STREAMS = 200
API_ROOT = "/api/laml/2010-04-01"


MEDIA_PREFIX = '{"event":"media",'
CHUNK_FIELD = '"chunk":"'


@dataclass
class StreamLog:
    """One received stream: arrival time (monotonic) and chunk number of every media message.

    Kept in flat arrays, not tuples, so that hundreds of thousands of records give the load generator's
    garbage collector nothing to walk (its pauses would show up as lateness that is not the emulator's).
    """

    arrivals: array[float] = field(default_factory=lambda: array("d"))
    chunks: array[int] = field(default_factory=lambda: array("q"))
    started: bool = False


def chunk_of(text: str) -> int | None:
    """The chunk number of a media message, or None for any other event.

    Media messages are read by position (the emulator writes them in a fixed key order, as SignalWire
    does) because they are 99% of the traffic; anything else, or any surprise, goes through json.
    """
    if text.startswith(MEDIA_PREFIX):
        start = text.find(CHUNK_FIELD)
        if start > 0:
            start += len(CHUNK_FIELD)
            end = text.find('"', start)
            if end > start and text[start:end].isdigit():
                return int(text[start:end])
    event = json.loads(text)
    if event.get("event") == "media":
        return int(event["media"]["chunk"])
    return None


@dataclass
class AudioSink:
    streams: list[StreamLog] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    parse_errors: int = 0

    def delivering(self) -> int:
        return sum(1 for s in self.streams if s.chunks)

    async def accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 1024**2)
        await ws.prepare(request)
        log = StreamLog()
        self.streams.append(log)
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            arrived = time.monotonic()
            try:
                chunk = chunk_of(message.data)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.parse_errors += 1
                continue
            if chunk is None:
                log.started = log.started or '"event":"start"' in message.data
                continue
            log.arrivals.append(arrived)
            log.chunks.append(chunk)
            if len(log.chunks) == 1:
                self.changed.set()
        return ws

    async def wait_delivering(self, count: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while self.delivering() < count:
                self.changed.clear()
                await self.changed.wait()


def window_figures(sink: AudioSink, t0: float, t1: float) -> dict[str, Any]:
    delays: list[float] = []
    messages = 0
    missing = 0
    for log in sink.streams:
        # Copies: a live view would stop the receiver from growing the arrays afterwards.
        arrivals = np.frombuffer(log.arrivals, dtype=np.float64).copy()
        chunks = np.frombuffer(log.chunks, dtype=np.int64).copy()
        inside = (arrivals >= t0) & (arrivals < t1)
        count = int(inside.sum())
        if not count:
            continue
        messages += count
        # Delay variation: arrival minus the chunk's place on the media clock, against the stream's best.
        offsets = arrivals - chunks * CHUNK_S
        delays.extend(((offsets[inside] - offsets.min()) * 1000.0).tolist())
        numbers = np.sort(chunks[inside])
        steps = np.diff(numbers)
        missing += int((steps[steps > 1] - 1).sum())
    return {"messages": messages, "delays_ms": delays, "missing_chunks": missing}


async def _add_streams(session: aiohttp.ClientSession, base: str, auth: str, account: str, conference: str,
                       url: str, how_many: int, first_index: int) -> None:
    path = f"{base}{API_ROOT}/Accounts/{account}/Conferences/{conference}/Streams.json"
    gate = asyncio.Semaphore(16)

    async def create(index: int) -> None:
        form = {"Url": url, "Name": f"bench-{index}", "Track": "inbound_track", "StreamCodec": "PCMU"}
        async with gate, session.post(path, data=form, headers={"Authorization": auth}) as resp:
            if resp.status >= 300:
                raise BenchError(f"creating stream {index} answered {resp.status}: {await resp.text()}")

    async with asyncio.TaskGroup() as group:
        for i in range(how_many):
            group.create_task(create(first_index + i))


async def _running_conference(session: aiohttp.ClientSession, base: str, auth: str, account: str) -> str:
    async with session.get(f"{base}{API_ROOT}/Accounts/{account}/Conferences.json",
                           headers={"Authorization": auth}) as resp:
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise BenchError(f"listing conferences answered {resp.status}: {body}")
    for conference in body.get("conferences", []):
        if conference.get("status") == "in-progress":
            return str(conference["sid"])
    raise BenchError("the signalwire emulator has no in-progress conference to stream from")


async def run(options: BenchOptions) -> dict[str, Any]:
    steps = [10, 20] if options.quick else [50, 100, 150, 200, 250, 300]
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.0, 4.0)
    certs = ensure_dev_certs()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(str(certs.cert), str(certs.key))
    sink = AudioSink()
    app = web.Application()
    app.router.add_get("/{tail:.*}", sink.accept)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    results: list[dict[str, Any]] = []
    emulator_pacing: dict[str, Any] = {}
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver_url = f"wss://127.0.0.1:{port}/audio"
        async with EmulatorProcess(["signalwire"], options.workdir) as emulator, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), connector=aiohttp.TCPConnector(limit=32)
        ) as session:
            creds = emulator.credentials("signalwire")
            account = str(creds["project"])
            auth = "Basic " + base64.b64encode(f"{account}:{creds['token']}".encode()).decode()
            base = emulator.rest("signalwire")
            conference = await _running_conference(session, base, auth, account)
            running = 0
            for count in steps:
                await _add_streams(session, base, auth, account, conference, receiver_url, count - running, running)
                running = count
                try:
                    await sink.wait_delivering(count, timeout_s=15 + count * 0.05)
                except TimeoutError:
                    results.append({"streams": count, "sustained": False,
                                    "reason": f"only {sink.delivering()} of {count} streams delivered media"})
                    break
                await asyncio.sleep(warmup_s)  # warm-up: the new connections' first chunks settle
                own0 = time.process_time()  # the load generator's (this process's) CPU, receivers included
                cpu0, wait0, t0 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
                await asyncio.sleep(window_s)  # the measurement window
                cpu1, wait1, t1 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
                own1 = time.process_time()
                figures = window_figures(sink, t0, t1)
                expected = count * (t1 - t0) / CHUNK_S
                p99 = percentile(figures["delays_ms"], 99)
                sustained = (p99 is not None and p99 <= LATENESS_LIMIT_MS and figures["missing_chunks"] == 0
                             and figures["messages"] >= 0.98 * expected)
                results.append({
                    "streams": count,
                    "sustained": sustained,
                    "messages_per_s": round(figures["messages"] / (t1 - t0), 1),
                    "messages_expected_per_s": round(count / CHUNK_S, 1),
                    "lateness_p50_ms": rounded(percentile(figures["delays_ms"], 50), 2),
                    "lateness_p99_ms": rounded(p99, 2),
                    "lateness_max_ms": rounded(max(figures["delays_ms"], default=0.0), 2),
                    "skipped_chunks": figures["missing_chunks"],
                    "cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 3),
                    # Runnable but waiting for a core: high means the machine, not the emulator, was full.
                    "runqueue_wait_cores": round((wait1 - wait0) / (t1 - t0), 3),
                    "load_generator_cpu_cores": round((own1 - own0) / (t1 - t0), 3),
                })
                if not sustained:
                    break
            state = await emulator.state(session, "signalwire")
            emulator_pacing = dict(state.get("pacing", {}))
            await emulator.control(session, "signalwire", "reset", {})
    finally:
        await runner.cleanup()
    sustained_steps = [r for r in results if r["sustained"]]
    best = sustained_steps[-1] if sustained_steps else results[0]
    count = sustained_steps[-1]["streams"] if sustained_steps else 0
    media = emulator_pacing.get("media", {})
    return {
        "sustained_streams": count,
        "messages_per_s": best.get("messages_per_s"),
        "lateness_p50_ms": best.get("lateness_p50_ms"),
        "lateness_p99_ms": best.get("lateness_p99_ms"),
        "skipped_chunks": best.get("skipped_chunks"),
        "cpu_ms_per_stream_per_s": rounded(best["cpu_cores"] * 1000 / best["streams"] if "cpu_cores" in best
                                           else None, 2),
        # What one idle core (the emulator's single event loop) would carry at the measured cost: a projection.
        "projected_streams_per_core": int(best["streams"] / best["cpu_cores"]) if best.get("cpu_cores") else None,
        "emulator_send_lateness_p99_ms": media.get("lateness_p99_ms"),
        "emulator_clock_lateness_p99_ms": emulator_pacing.get("media-clock", {}).get("lateness_p99_ms"),
        "first_failing_step": next((r["streams"] for r in results if not r["sustained"]), None),
        "receiver_parse_errors": sink.parse_errors,
        "steps": results,
        "targets": {"sustained_streams": target(f">= {TARGET_STREAMS} streams", count >= TARGET_STREAMS)},
    }
