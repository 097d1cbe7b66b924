"""The soak's clients: steady mixed load (a Misty RTSP client, depthcam video viewers, a Recall bot to a local
receiver, a SignalWire stream, control-plane polling) and bursts of the hostile clients issue 17 describes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time

import aiohttp
from aiohttp import web

from emulators.bench.process import EmulatorProcess, free_port
from emulators.bench.viewers import ViewerCount, cancel_all, watch
from emulators.kit.rtsp.message import Headers, InterleavedFrame, RtspMessageReader, RtspRequest, RtspResponse
from emulators.kit.rtsp.sdp import VIDEO_TRACK
from emulators.kit.tls import ensure_dev_certs

SIGNALWIRE_API = "/api/laml/2010-04-01"
HEALTH_LIMIT_S = 1.0


class Sink:
    """A loopback WebSocket receiver (plain or TLS) that drains whatever the emulators stream to it."""

    def __init__(self) -> None:
        self.messages = 0
        self.connections = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _accept(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024**2)
        await ws.prepare(request)
        self.connections += 1
        async for _ in ws:
            self.messages += 1
        return ws

    async def start(self, scheme: str, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._accept)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.url = f"{scheme}://127.0.0.1:{self._runner.addresses[0][1]}/soak"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class MixedLoad:
    """Starts the steady load once and keeps it running until ``aclose``."""

    def __init__(self, emulator: EmulatorProcess, session: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.session = session
        self.tasks: list[asyncio.Task[None]] = []
        self.viewers: list[ViewerCount] = []
        self.recall_sink = Sink()
        self.signalwire_sink = Sink()
        self.started: list[str] = []
        self.rtsp_url = ""  # Misty's built-in RTSP server, once started
        self.rtsp_frames = 0
        self.rtstream = ""  # VideoDB's pull of that RTSP server, once connected

    async def start(self) -> None:
        devices = set(self.emulator.endpoints)
        if "misty" in devices:
            await self._misty_rtsp()  # Misty's camera serves one of AV streaming and the video WebSocket at a time
        if "depthcam" in devices:
            await self._depthcam_viewers(2)
        if "recall" in devices:
            await self._recall_bot()
        if "signalwire" in devices:
            await self._signalwire_stream()
        if "videodb" in devices and self.rtsp_url:
            await self._videodb_ingest(self.rtsp_url)
        for device in sorted(devices):
            self.tasks.append(asyncio.create_task(self._poll_state(device), name=f"soak-poll-{device}"))

    async def _depthcam_viewers(self, count: int) -> None:
        base = self.emulator.rest("depthcam")
        async with self.session.get(f"{base}/cameras/") as resp:
            resp.raise_for_status()
            mxid = (await resp.json())[0]["mxid"]
        stream = f"{base}/cameras/{mxid}/streams/CAM_B/"
        async with self.session.post(stream) as resp:
            resp.raise_for_status()
        url = stream.replace("http://", "ws://", 1) + "video"
        for _ in range(count):
            self.viewers.append(ViewerCount())
            self.tasks.append(asyncio.create_task(watch(self.session, url, self.viewers[-1], limit_s=10 * 24 * 3600.0)))
        async with asyncio.timeout(15):
            await asyncio.gather(*(v.first.wait() for v in self.viewers))
        self.started.append(f"depthcam: {count} fMP4 video viewers")

    async def _misty_rtsp(self) -> None:
        port = free_port()
        base = self.emulator.rest("misty")
        for path, body in (("services/avstreaming/enable", {}),
                           ("avstreaming/start", {"URL": f"rtspd:{port}", "Width": 320, "Height": 240,
                                                  "FrameRate": 15, "VideoBitRate": 500_000})):
            async with self.session.post(f"{base}/api/{path}", json=body) as resp:
                resp.raise_for_status()
        self.rtsp_url = f"rtsp://127.0.0.1:{port}/"
        client = await RtspClient.connect(self.rtsp_url)
        await client.play_tcp()
        self.tasks.append(asyncio.create_task(self._pull(client), name="soak-rtsp"))
        self.started.append("misty: one RTSP client over TCP")

    async def _pull(self, client: RtspClient) -> None:
        try:
            while True:
                if isinstance(await client.next(), InterleavedFrame):
                    self.rtsp_frames += 1
        finally:
            client.close()

    async def _recall_bot(self) -> None:
        await self.recall_sink.start("ws")
        meeting = "https://meet.google.com/soa-kkkk-tst"
        scenario = {"name": "soak", "meeting_urls": [meeting], "duration_s": 10 * 24 * 3600.0,
                    "participants": [{"id": 100}, {"id": 200}]}
        await self.emulator.control(self.session, "recall", "scenario/load_scenario",
                                    {"name": "soak", "scenario": scenario})
        key = self.emulator.credentials("recall")["api_key"]
        body = {"meeting_url": meeting, "recording_mode": "gallery_view",
                "real_time_media": {"websocket_video_destination_url": self.recall_sink.url}}
        async with self.session.post(f"{self.emulator.rest('recall')}/api/v1/bot/", json=body,
                                     headers={"Authorization": f"Token {key}"}) as resp:
            resp.raise_for_status()
        self.started.append("recall: one bot streaming video to a local receiver")

    async def _signalwire_stream(self) -> None:
        certs = ensure_dev_certs()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(str(certs.cert), str(certs.key))
        await self.signalwire_sink.start("wss", server_ssl)
        creds = self.emulator.credentials("signalwire")
        account = str(creds["project"])
        auth = "Basic " + base64.b64encode(f"{account}:{creds['token']}".encode()).decode()
        base = f"{self.emulator.rest('signalwire')}{SIGNALWIRE_API}/Accounts/{account}"
        async with self.session.get(f"{base}/Conferences.json", headers={"Authorization": auth}) as resp:
            conferences = (await resp.json(content_type=None)).get("conferences", [])
        running = [c["sid"] for c in conferences if c.get("status") == "in-progress"]
        if not running:
            return
        form = {"Url": self.signalwire_sink.url, "Name": "soak", "Track": "inbound_track", "StreamCodec": "PCMU"}
        async with self.session.post(f"{base}/Conferences/{running[0]}/Streams.json", data=form,
                                     headers={"Authorization": auth}) as resp:
            resp.raise_for_status()
        self.started.append("signalwire: one conference audio stream to a local receiver")

    async def _videodb_ingest(self, source: str) -> None:
        """VideoDB pulls Misty's RTSP stream (a second client of the robot's server) and records segments."""
        headers = {"x-access-token": str(self.emulator.credentials("videodb")["api_key"])}
        body = {"collection_id": "default", "url": source, "name": "soak", "media_types": ["video"]}
        async with self.session.post(f"{self.emulator.rest('videodb')}/rtstream", json=body, headers=headers) as resp:
            resp.raise_for_status()
            self.rtstream = str((await resp.json())["data"]["id"])
        self.started.append("videodb: one RTStream ingesting Misty's RTSP stream")

    async def videodb_status(self) -> str:
        """The RTStream's status as the API reports it (for the closing line), or '' without one."""
        if not self.rtstream:
            return ""
        headers = {"x-access-token": str(self.emulator.credentials("videodb")["api_key"])}
        url = f"{self.emulator.rest('videodb')}/rtstream/{self.rtstream}"
        async with self.session.get(url, headers=headers) as resp:
            return str((await resp.json())["data"].get("status", ""))

    async def _poll_state(self, device: str) -> None:
        url = f"{self.emulator.rest(device)}/_emulator/state"
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(url) as resp:
                    await resp.read()
            await asyncio.sleep(1.0)  # polling cadence of a dashboard, not synchronisation

    async def aclose(self) -> None:
        await cancel_all(self.tasks)
        await self.recall_sink.aclose()
        await self.signalwire_sink.aclose()


class RtspClient:
    """Just enough RTSP to play over TCP, or to misbehave on purpose."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str) -> None:
        self.reader, self.writer, self.url = reader, writer, url
        self.parser = RtspMessageReader("client")
        self.inbox: list[object] = []
        self.cseq = 0

    @classmethod
    async def connect(cls, url: str) -> RtspClient:
        host, port = url.split("//", 1)[1].rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, url)

    async def next(self) -> object:
        while not self.inbox:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError("the RTSP server closed the connection")
            self.inbox.extend(self.parser.feed(data))
        return self.inbox.pop(0)

    async def request(self, method: str, uri: str, **headers: str) -> RtspResponse:
        self.cseq += 1
        items = [("CSeq", str(self.cseq)), *((k.replace("_", "-"), v) for k, v in headers.items())]
        self.writer.write(RtspRequest(method, uri, Headers(items)).serialize())
        async with asyncio.timeout(10):
            while True:
                message = await self.next()
                if isinstance(message, RtspResponse):
                    return message

    async def play_tcp(self) -> None:
        await self.request("DESCRIBE", self.url, Accept="application/sdp")
        track = f"{self.url.rstrip('/')}/trackID={VIDEO_TRACK}"
        setup = await self.request("SETUP", track, Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
        session = setup.headers["Session"].split(";")[0]
        play = await self.request("PLAY", self.url, Session=session, Range="npt=0.000-")
        if play.status != 200:
            raise ConnectionError(f"RTSP PLAY answered {play.status}")

    def close(self) -> None:
        self.writer.close()


async def rtsp_hostile(url: str, setups: int = 20) -> dict[str, int]:
    """A bad Transport header, an oversized head, and a UDP SETUP flood left behind by a closed connection."""
    counts = {"transport_461": 0, "big_head_400": 0, "udp_setups": 0}
    client = await RtspClient.connect(url)
    try:
        counts["transport_461"] += (await client.request("SETUP", url, Transport=";;;")).status == 461
        for _ in range(setups):
            answer = await client.request("SETUP", f"{url.rstrip('/')}/trackID={VIDEO_TRACK}",
                                          Transport="RTP/AVP;unicast;client_port=9-10")
            counts["udp_setups"] += answer.status == 200
    finally:
        client.close()
    big = await RtspClient.connect(url)
    try:
        big.writer.write(b"OPTIONS " + url.encode() + b" RTSP/1.0\r\nCSeq: 1\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n")
        async with asyncio.timeout(10):
            counts["big_head_400"] += (await big.reader.read(64)).startswith(b"RTSP/1.0 400")
    finally:
        big.close()
    return counts


class HealthProbe:
    """Asks every emulator's health twice a second; keeps the worst answer time and any miss of the 1 s limit."""

    def __init__(self, emulator: EmulatorProcess, session: aiohttp.ClientSession) -> None:
        self.urls = {d: f"{emulator.rest(d)}/_emulator/health" for d in emulator.endpoints}
        self.session = session
        self.worst_ms = 0.0
        self.missed: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="soak-health")

    def take(self) -> tuple[float, bool]:
        worst, ok = self.worst_ms, not self.missed
        self.worst_ms, self.missed = 0.0, []
        return worst, ok

    async def _one(self, device: str, url: str) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(HEALTH_LIMIT_S), self.session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    self.missed.append(device)
        except (aiohttp.ClientError, TimeoutError):
            self.missed.append(device)
        self.worst_ms = max(self.worst_ms, (time.monotonic() - started) * 1000.0)

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self._one(d, u) for d, u in self.urls.items()))
            await asyncio.sleep(0.5)  # probe cadence

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])


async def hostile_burst(emulator: EmulatorProcess, session: aiohttp.ClientSession, idle: int = 20) -> dict[str, int]:
    """One round of careless and hostile clients against every emulator; every socket is closed on return."""
    counts = {"idle": 0, "partial_heads": 0, "deep_json_400": 0, "cross_origin_403": 0}
    writers: list[asyncio.StreamWriter] = []
    try:
        for device in emulator.endpoints:
            base = emulator.rest(device)
            port = int(base.rsplit(":", 1)[1])
            for n in range(idle):
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writers.append(writer)
                    if n % 4 == 0:  # a request head that never ends
                        writer.write(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        counts["partial_heads"] += 1
                    else:
                        counts["idle"] += 1
            deep = '{"a": ' * 1000 + "1" + "}" * 1000
            async with session.post(f"{base}/_emulator/faults", data=deep,
                                    headers={"Content-Type": "application/json"}) as resp:
                counts["deep_json_400"] += resp.status == 400
            rule = json.dumps({"match": {"path": "/x"}, "action": {"type": "status", "status": 503}})
            page = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}  # a web page's simple POST
            async with session.post(f"{base}/_emulator/faults", data=rule, headers=page) as resp:
                counts["cross_origin_403"] += resp.status == 403
    finally:
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
    return counts
