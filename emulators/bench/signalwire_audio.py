"""Scenario `signalwire-audio`: ramp concurrent PCMU conference streams (20 ms chunks) to real wss receivers
until a step fails, then bisect to the largest sustained count (emulators.bench.ramp).

Streams are created over the Compatibility API (form-encoded, Basic auth) on the running conference and
dial out to our TLS WebSocket receiver, which parses every message. A step adds streams to the ones already
running, or stops the newest ones (``Status=stopped``) when the bisection comes back down; each step measures
one window: messages/s delivered, chunks missing from the sequence, and each chunk's delay variation (arrival
minus its media timestamp, relative to the stream's earliest chunk), whose p99 is the lateness. A step is
sustained when p99 <= 10 ms, no chunk is missing and >= 98% of the chunks arrive in the window.

A chunk arrives when the receiver reads its bytes off the socket (``StampedWebSocket``), not when the stream's
reader task next runs: one event-loop pass decrypts every ready socket before any reader task runs, so a task's
clock would add the receiver's whole pass to every chunk and measure the load generator, not the emulator.
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
from emulators.bench.ramp import RampOutcome, RampPlan, reasons, run_ramp, scaling, scaling_target
from emulators.bench.stats import BenchOptions, percentile, rounded
from emulators.bench.table import target
from emulators.kit.tls import ensure_dev_certs

CHUNK_S = 0.020
LATENESS_LIMIT_MS = 10.0
TARGET_STREAMS = 600
MOONSHOT_STREAMS = 1000
QUICK_RAMP = RampPlan(start=10, factor=2.0, ceiling=20, budget_s=30.0)
FULL_RAMP = RampPlan(start=100, factor=1.5, ceiling=2000, budget_s=150.0, resolution=0.1)
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
    closed: bool = False  # the emulator ended the stream (stopped over the API)


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


class StampedWebSocket(web.WebSocketResponse):
    """aiohttp's WebSocket server, noting when each read came off the socket (after its TLS record is decrypted,
    before its messages wait in the queue for the reader task). The hook runs only with a heartbeat set."""

    read_at = 0.0

    def __init__(self) -> None:
        # A heartbeat no run lasts to: aiohttp calls the data-received hook only when one is set.
        super().__init__(max_msg_size=4 * 1024**2, heartbeat=24 * 3600.0)

    def _on_data_received(self) -> None:
        self.read_at = time.monotonic()
        super()._on_data_received()


@dataclass
class AudioSink:
    streams: list[StreamLog] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    parse_errors: int = 0

    def delivering(self) -> int:
        return sum(1 for s in self.streams if s.chunks and not s.closed)

    async def accept(self, request: web.Request) -> web.StreamResponse:
        ws = StampedWebSocket()
        await ws.prepare(request)
        log = StreamLog()
        self.streams.append(log)
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            arrived = ws.read_at or time.monotonic()
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
        log.closed = True
        self.changed.set()
        return ws

    async def wait_delivering(self, count: int, timeout_s: float) -> None:
        """Until exactly ``count`` streams are open and delivering (stopped ones closed, new ones sending)."""
        async with asyncio.timeout(timeout_s):
            while self.delivering() != count:
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


@dataclass
class StreamSet:
    """The streams this run created on the conference, newest last; grown and shrunk over the API."""

    session: aiohttp.ClientSession
    base: str
    auth: str
    account: str
    conference: str
    receiver_url: str
    sids: list[str] = field(default_factory=list)
    created: int = 0

    @property
    def path(self) -> str:
        return f"{self.base}{API_ROOT}/Accounts/{self.account}/Conferences/{self.conference}/Streams"

    async def resize(self, count: int) -> None:
        gate = asyncio.Semaphore(16)

        async def create(index: int) -> None:
            form = {"Url": self.receiver_url, "Name": f"bench-{index}", "Track": "inbound_track",
                    "StreamCodec": "PCMU"}
            async with gate, self.session.post(f"{self.path}.json", data=form,
                                               headers={"Authorization": self.auth}) as resp:
                body = await resp.json(content_type=None)
                if resp.status >= 300:
                    raise BenchError(f"creating stream {index} answered {resp.status}: {body}")
                self.sids.append(str(body["sid"]))

        async def stop(sid: str) -> None:
            async with gate, self.session.post(f"{self.path}/{sid}.json", data={"Status": "stopped"},
                                               headers={"Authorization": self.auth}) as resp:
                if resp.status >= 300:
                    raise BenchError(f"stopping stream {sid} answered {resp.status}: {await resp.text()}")

        async with asyncio.TaskGroup() as group:
            if count > len(self.sids):
                for _ in range(count - len(self.sids)):
                    self.created += 1
                    group.create_task(create(self.created))
            else:
                doomed, self.sids = self.sids[count:], self.sids[:count]
                for sid in doomed:
                    group.create_task(stop(sid))


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


class Streams:
    """The streams of every SignalWire emulator of a run (one, or a fleet member per process), dealt evenly."""

    def __init__(self, sets: list[StreamSet]) -> None:
        self.sets = sets

    async def resize(self, count: int) -> None:
        share, extra = divmod(count, len(self.sets))
        async with asyncio.TaskGroup() as group:
            for n, streams in enumerate(self.sets):
                group.create_task(streams.resize(share + (1 if n < extra else 0)))


async def _step(emulator: EmulatorProcess, sink: AudioSink, streams: Streams, count: int, warmup_s: float,
                window_s: float) -> dict[str, Any]:
    await streams.resize(count)
    try:
        await sink.wait_delivering(count, timeout_s=15 + count * 0.05)
    except TimeoutError:
        return {"streams": count, "sustained": False,
                "reason": f"{sink.delivering()} of {count} streams delivering media"}
    await asyncio.sleep(warmup_s)  # warm-up: the new connections' first chunks settle
    own0 = time.process_time()  # the load generator's (this process's) CPU, receivers included
    cpu0, wait0, t0 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
    await asyncio.sleep(window_s)  # the measurement window
    cpu1, wait1, t1 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
    own1 = time.process_time()
    figures = window_figures(sink, t0, t1)
    expected = count * (t1 - t0) / CHUNK_S
    p99 = percentile(figures["delays_ms"], 99)
    cpu_cores = (cpu1 - cpu0) / (t1 - t0)
    failed = reasons([
        (p99 is None or p99 > LATENESS_LIMIT_MS, f"p99 lateness {rounded(p99, 1)} ms > {LATENESS_LIMIT_MS:g} ms"),
        (figures["missing_chunks"] > 0, f"{figures['missing_chunks']} chunks missing"),
        (figures["messages"] < 0.98 * expected, f"{figures['messages']} of {round(expected)} chunks delivered"),
    ], cpu_cores / emulator.processes)
    return {
        "streams": count,
        "sustained": failed is None,
        **({"reason": failed} if failed else {}),
        "processes": emulator.processes,
        "messages_per_s": round(figures["messages"] / (t1 - t0), 1),
        "messages_expected_per_s": round(count / CHUNK_S, 1),
        "lateness_p50_ms": rounded(percentile(figures["delays_ms"], 50), 2),
        "lateness_p99_ms": rounded(p99, 2),
        "lateness_max_ms": rounded(max(figures["delays_ms"], default=0.0), 2),
        "skipped_chunks": figures["missing_chunks"],
        "cpu_cores": round(cpu_cores, 3),
        # Runnable but waiting for a core: high means the machine, not the emulator, was full.
        "runqueue_wait_cores": round((wait1 - wait0) / (t1 - t0), 3),
        "load_generator_cpu_cores": round((own1 - own0) / (t1 - t0), 3),
    }


async def _ramp(options: BenchOptions, processes: int, receiver_url: str, sink: AudioSink
                ) -> tuple[RampOutcome, dict[str, Any]]:
    """One ramp against `up` in ``processes`` processes (a fleet of that many SignalWire spaces when more than
    one, the streams dealt evenly); the outcome and the first emulator's pacing figures."""
    plan = QUICK_RAMP if options.quick else FULL_RAMP
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.0, 4.0)
    fleet = {"signalwire": processes} if processes > 1 else None
    async with EmulatorProcess(["signalwire"], options.workdir, processes=processes, fleet=fleet) as emulator, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                  connector=aiohttp.TCPConnector(limit=32)) as session:
        sets = []
        for name in emulator.endpoints:
            creds = emulator.credentials(name)
            account = str(creds["project"])
            auth = "Basic " + base64.b64encode(f"{account}:{creds['token']}".encode()).decode()
            base = emulator.rest(name)
            conference = await _running_conference(session, base, auth, account)
            sets.append(StreamSet(session, base, auth, account, conference, receiver_url))
        streams = Streams(sets)

        async def probe(count: int) -> dict[str, Any]:
            return await _step(emulator, sink, streams, count, warmup_s, window_s)

        options.progress(f"signalwire in {processes} process(es)")
        outcome = await run_ramp(plan, probe, progress=options.progress)
        first = next(iter(emulator.endpoints))
        state = await emulator.state(session, first)
    return outcome, dict(state.get("pacing", {}))


async def run(options: BenchOptions) -> dict[str, Any]:
    certs = ensure_dev_certs()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(str(certs.cert), str(certs.key))
    sink = AudioSink()
    app = web.Application()
    app.router.add_get("/{tail:.*}", sink.accept)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    cores = EmulatorProcess.cores()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver_url = f"wss://127.0.0.1:{port}/audio"
        one, emulator_pacing = await _ramp(options, 1, receiver_url, sink)
        many = (await _ramp(options, cores, receiver_url, sink))[0] if cores > 1 else None
    finally:
        await runner.cleanup()
    best_outcome = one if many is None or many.sustained <= one.sustained else many
    best = best_outcome.best_step("streams")
    count = best_outcome.sustained
    scaled = scaling(one, many)
    media = emulator_pacing.get("media", {})
    held = bool(best.get("sustained"))
    return {
        "sustained_streams": count,
        "sustained_streams_one_process": one.sustained,
        "processes": best.get("processes", 1),
        "scaling_vs_one_process": scaled,
        "messages_per_s": best.get("messages_per_s"),
        "lateness_p50_ms": best.get("lateness_p50_ms"),
        "lateness_p99_ms": best.get("lateness_p99_ms"),
        "skipped_chunks": best.get("skipped_chunks"),
        "cpu_ms_per_stream_per_s": rounded(best["cpu_cores"] * 1000 / best["streams"]
                                           if held and "cpu_cores" in best else None, 2),
        # What one idle core would carry at the measured cost: a projection.
        "projected_streams_per_core": int(best["streams"] / best["cpu_cores"] * best.get("processes", 1))
        if held and best.get("cpu_cores") else None,
        "emulator_send_lateness_p99_ms": media.get("lateness_p99_ms"),
        "emulator_clock_lateness_p99_ms": emulator_pacing.get("media-clock", {}).get("lateness_p99_ms"),
        "receiver_parse_errors": sink.parse_errors,
        **best_outcome.figures(),
        "first_failing_step_one_process": one.first_failing,
        "steps": [*one.steps, *(many.steps if many else [])],
        "targets": {
            "sustained_streams": target(
                f">= {TARGET_STREAMS} streams at p99 <= {LATENESS_LIMIT_MS:g} ms (moonshot {MOONSHOT_STREAMS})",
                count >= TARGET_STREAMS),
            "scaling_vs_one_process": scaling_target(one, many, cores),
        },
    }
