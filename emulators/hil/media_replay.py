"""Replays a captured RTSP stream: the remuxed H.264 access units, looped on their recorded timing, served by the
kit's RTSP server (the SDP's parameter sets announced again), so any RTSP client can play the stand-in."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av

from emulators.hil.cassette import Exchange
from emulators.kit.rtsp import H264Track, LiveMedia, RtspServer
from emulators.kit.rtsp.h264 import NAL_PPS, NAL_SPS, nal_type, parse_sprop_parameter_sets, split_annexb
from emulators.kit.rtsp.sdp import parse_sdp


class MediaReplayError(Exception):
    """The capture cannot be served (no remuxed file, or no H.264 in it)."""


@dataclass(frozen=True)
class AccessUnit:
    annexb: bytes
    pts: float
    keyframe: bool


def _read_units(path: Path) -> tuple[list[AccessUnit], int, int, float, bytes]:
    """Video access units (Annex B, as MPEG-TS keeps them), width, height, frame rate, extradata."""
    container = av.open(str(path))
    try:
        video = next((s for s in container.streams if s.type == "video"), None)
        if video is None or video.codec_context.name != "h264":
            raise MediaReplayError(f"{path.name}: replay serves H.264 video; this capture has none")
        units = [AccessUnit(bytes(p), float(p.pts * p.time_base), p.is_keyframe)
                 for p in container.demux(video) if p.size and p.pts is not None]
        rate = float(video.average_rate) if video.average_rate else 30.0
        return units, video.codec_context.width, video.codec_context.height, rate, bytes(
            video.codec_context.extradata or b"")
    finally:
        container.close()


def _parameter_sets(capture: Exchange, units: list[AccessUnit], extradata: bytes) -> tuple[bytes, bytes]:
    """SPS and PPS: from the SDP the device announced, else in-band or from the container."""
    found: dict[int, bytes] = {}
    if capture.response_body:
        for media in parse_sdp(capture.response_body.decode("utf-8", "replace")).media:
            sprop = media.fmtp.get("sprop-parameter-sets")
            if sprop:
                for nal in parse_sprop_parameter_sets(sprop):
                    found.setdefault(nal_type(nal), nal)
    for data in [extradata, *(u.annexb for u in units if u.keyframe)]:
        for nal in split_annexb(data):
            found.setdefault(nal_type(nal), nal)
    if NAL_SPS not in found or NAL_PPS not in found:
        raise MediaReplayError("the capture has no H.264 parameter sets (SPS/PPS)")
    return found[NAL_SPS], found[NAL_PPS]


class MediaReplay:
    def __init__(self, capture: Exchange, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not capture.media or "remux" not in capture.media:
            raise MediaReplayError(f"{capture.url}: the capture has no remuxed media")
        self.capture = capture
        self.path = root / capture.media["remux"]["file"]
        self.host = host
        self.port = port
        self._server: RtspServer | None = None
        self._publisher: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        path = urlsplit(self.capture.url).path or "/"
        return f"rtsp://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        units, width, height, fps, extradata = await asyncio.to_thread(_read_units, self.path)
        first_key = next((i for i, u in enumerate(units) if u.keyframe), None)
        if first_key is None:
            raise MediaReplayError(f"{self.path.name}: no keyframe to start from")
        units = units[first_key:]
        sps, pps = _parameter_sets(self.capture, units, extradata)
        media = LiveMedia(H264Track(width, height, fps, sps, pps), None)
        self._server = RtspServer(media, host=self.host, port=self.port)
        try:
            await self._server.start()
        except OSError:  # the recorded port is taken here: any free one (printed by `replay`)
            self._server = RtspServer(media, host=self.host, port=0)
            await self._server.start()
        self.port = self._server.port
        self._publisher = asyncio.create_task(self._publish(media, units, fps), name="replay-rtsp-publisher")

    @staticmethod
    async def _publish(media: LiveMedia, units: list[AccessUnit], fps: float) -> None:
        """Loop the capture on absolute deadlines; each pass continues the timeline where the last ended."""
        base = units[0].pts
        span = units[-1].pts - base + 1 / fps
        start = time.monotonic()
        loop = 0
        while True:
            for unit in units:
                pts = loop * span + unit.pts - base
                delay = start + pts - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                media.publish_video(unit.annexb, pts, unit.keyframe)
            loop += 1

    async def aclose(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        if self._server is not None:
            await self._server.aclose()
