"""Media capture for `record --media URL`: an RTSP session's SDP, transport and RTP timing statistics, and the
first N seconds remuxed (stream copy, no re-encode) into an MPEG-TS sidecar; RTMP gets the remux alone.

The RTSP client here speaks just what a capture needs (OPTIONS, DESCRIBE, SETUP over TCP interleaved, PLAY,
TEARDOWN); the remux is FFmpeg's own RTSP/RTMP client through PyAV, a second, independent viewer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import av

from emulators.hil.cassette import MEDIA_DIR, Exchange
from emulators.hil.media_props import decoded_properties
from emulators.hil.rtp_stats import RtpStats
from emulators.kit.rtsp.message import (
    Headers,
    InterleavedFrame,
    RtspMessageReader,
    RtspRequest,
    RtspResponse,
)
from emulators.kit.rtsp.sdp import parse_sdp

USER_AGENT = "benchtwin-record"
TIMEOUT_S = 10.0


class CaptureError(Exception):
    """The device did not answer a capture request as RTSP requires."""


class _RtspClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.cseq = 0
        self.session: str | None = None
        self.reader = RtspMessageReader("client")
        self.pending: list[Any] = []
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.exchanges: list[dict[str, Any]] = []  # method, status, headers: the control dialogue as recorded

    async def connect(self) -> None:
        parts = urlsplit(self.url)
        self._stream = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 554), TIMEOUT_S)

    async def close(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            await asyncio.gather(self._stream[1].wait_closed(), return_exceptions=True)

    async def next_message(self) -> Any:
        assert self._stream is not None
        while not self.pending:
            data = await asyncio.wait_for(self._stream[0].read(65536), TIMEOUT_S)
            if not data:
                raise CaptureError(f"{self.url}: the device closed the RTSP connection")
            self.pending += self.reader.feed(data)
        return self.pending.pop(0)

    async def request(self, method: str, uri: str, **headers: str) -> RtspResponse:
        assert self._stream is not None
        self.cseq += 1
        h = Headers([("CSeq", str(self.cseq)), ("User-Agent", USER_AGENT)])
        if self.session:
            h.set("Session", self.session)
        for k, v in headers.items():
            h.set(k.replace("_", "-"), v)
        self._stream[1].write(RtspRequest(method, uri, h).serialize())
        await self._stream[1].drain()
        while True:
            message = await self.next_message()
            if isinstance(message, RtspResponse):
                break
        self.exchanges.append({"method": method, "uri": uri, "status": message.status,
                               "headers": [[k, v] for k, v in message.headers]})
        if message.status != 200:
            raise CaptureError(f"{method} {uri}: the device answered {message.status} {message.reason}")
        if message.headers.get("Session"):
            self.session = (message.headers.get("Session") or "").split(";", 1)[0].strip()
        return message


async def rtsp_session_facts(url: str, seconds: float) -> dict[str, Any]:
    """DESCRIBE, SETUP every track over TCP, PLAY for ``seconds``: the SDP, transports and RTP statistics."""
    client = _RtspClient(url)
    await client.connect()
    try:
        await client.request("OPTIONS", url)
        described = await client.request("DESCRIBE", url, Accept="application/sdp")
        sdp_text = described.body.decode("utf-8", "replace")
        base = described.headers.get("Content-Base") or url
        if not base.endswith("/"):
            base += "/"
        sdp = parse_sdp(sdp_text)
        stats: dict[int, tuple[str, RtpStats]] = {}
        transports = []
        for n, media in enumerate(sdp.media):
            control = media.control or ""
            track_url = control if "://" in control else urljoin(base, control) if control not in ("", "*") else url
            rtpmap = media.rtpmap
            reply = await client.request("SETUP", track_url,
                                         Transport=f"RTP/AVP/TCP;unicast;interleaved={2 * n}-{2 * n + 1}")
            transports.append({"track": track_url, "transport": reply.headers.get("Transport")})
            stats[2 * n] = (f"{media.kind} {rtpmap[1] if rtpmap else '?'}", RtpStats(rtpmap[2] if rtpmap else 90000))
        play = await client.request("PLAY", url, Range="npt=0.000-")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(client.next_message(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if isinstance(message, InterleavedFrame) and message.channel in stats:
                stats[message.channel][1].add(message.payload, time.monotonic())
        try:
            await client.request("TEARDOWN", url)
        except (CaptureError, TimeoutError, ConnectionError):
            pass  # a device may drop the connection on TEARDOWN; the capture is complete either way
        return {
            "sdp": sdp_text,
            "transport": transports,
            "rtp_info": play.headers.get("RTP-Info"),
            "rtp": {f"channel {ch} ({name})": s.summary() for ch, (name, s) in stats.items()},
            "dialogue": client.exchanges,
        }
    finally:
        await client.close()


def remux(url: str, seconds: float, out: Path) -> dict[str, Any]:
    """The first ``seconds`` of every audio/video stream copied into MPEG-TS (Annex B H.264 stays as sent)."""
    options = {"rtsp_transport": "tcp", "timeout": str(int(TIMEOUT_S * 1_000_000))} if url.startswith("rtsp") \
        else {"rw_timeout": str(int(TIMEOUT_S * 1_000_000))}
    source = av.open(url, options=options, timeout=TIMEOUT_S)
    packets = 0
    dropped = 0
    try:
        wanted = [s for s in source.streams if s.type in ("video", "audio")]
        sink = av.open(str(out), mode="w", format="mpegts")
        try:
            mapping = {s.index: sink.add_stream_from_template(s) for s in wanted}
            first: dict[int, float] = {}
            last_dts: dict[int, int] = {}
            done: set[int] = set()
            dropped = 0
            for packet in source.demux(wanted):
                if packet.pts is None or packet.stream.index in done:
                    continue
                t = float(packet.pts * packet.time_base)
                start = first.setdefault(packet.stream.index, t)
                if t - start >= seconds:
                    done.add(packet.stream.index)
                    if len(done) == len(wanted):
                        break
                    continue
                index = packet.stream.index
                if packet.dts is not None:
                    # The muxer refuses a DTS that does not increase (EINVAL); a source can repeat one when RTP
                    # arrives late under load. Leave that packet out, as ffmpeg's own remux would, and count it.
                    if index in last_dts and packet.dts <= last_dts[index]:
                        dropped += 1
                        continue
                    last_dts[index] = packet.dts
                packet.stream = mapping[index]
                sink.mux(packet)
                packets += 1
        finally:
            sink.close()
    finally:
        source.close()
    return {"packets": packets, "dropped": dropped, "seconds": seconds}


async def capture(url: str, seconds: float, cassette_dir: Path, name: str) -> Exchange:
    """One media capture as a cassette exchange: method DESCRIBE (RTSP) or PLAY (RTMP), facts in ``media``."""
    media_dir = cassette_dir / MEDIA_DIR
    media_dir.mkdir(parents=True, exist_ok=True)
    out = media_dir / f"{name}.ts"
    started = time.time()
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("rtsp", "rtmp", "rtmps"):
        raise CaptureError(f"--media {url}: only rtsp:// and rtmp(s):// URLs can be captured")
    remuxed = asyncio.to_thread(remux, url, seconds, out)
    if scheme == "rtsp":
        facts, remux_facts = await asyncio.gather(rtsp_session_facts(url, seconds), remuxed)
    else:
        facts, remux_facts = {}, await remuxed
    facts["remux"] = {**remux_facts, "file": f"{MEDIA_DIR}/{out.name}",
                      "properties": decoded_properties(out.read_bytes())}
    sdp = facts.pop("sdp", "").encode()
    return Exchange(method="DESCRIBE" if scheme == "rtsp" else "PLAY", url=url, request_headers=[],
                    request_body=b"", status=200, status_text="OK",
                    response_headers=[("Content-Type", "application/sdp")] if sdp else [],
                    response_body=sdp, started=started, duration_ms=(time.time() - started) * 1000, media=facts)
