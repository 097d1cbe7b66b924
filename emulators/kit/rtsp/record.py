"""The sans-I/O RTSP record-server core (RFC 2326 ANNOUNCE/SETUP mode=record/RECORD): what a push
client such as FFmpeg's RTSP muxer talks to, with optional Basic authentication."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import re
from dataclasses import dataclass, field

from emulators.kit.rtsp.aac import AacDepacketizer
from emulators.kit.rtsp.h264 import H264Depacketizer
from emulators.kit.rtsp.message import InterleavedFrame, RtspRequest, RtspResponse, respond
from emulators.kit.rtsp.rtp import RtpError, RtpPacket
from emulators.kit.rtsp.sdp import MediaDescription, SessionDescription, parse_sdp
from emulators.kit.rtsp.transport import TransportError, TransportSpec, parse_transport

RECORD_METHODS = ("OPTIONS", "ANNOUNCE", "SETUP", "RECORD", "TEARDOWN", "GET_PARAMETER")


@dataclass(frozen=True)
class RecordedVideo:
    """One depacketized H.264 access unit: NAL units without start codes, RTP timestamp (90 kHz)."""

    nals: tuple[bytes, ...]
    timestamp: int

    @property
    def annexb(self) -> bytes:
        return b"".join(b"\x00\x00\x00\x01" + nal for nal in self.nals)


@dataclass(frozen=True)
class RecordedAudio:
    frame: bytes
    timestamp: int


@dataclass
class RecordTrack:
    media: MediaDescription
    channels: tuple[int, int]
    encoding: str
    h264: H264Depacketizer | None = None
    aac: AacDepacketizer | None = None
    packets: int = 0
    rtcp_packets: int = 0


@dataclass
class RecordReply:
    response: RtspResponse
    close: bool = False


@dataclass
class RecordCore:
    """One publisher at a time: ANNOUNCE fixes the presentation, SETUP maps interleaved channels
    to its media, RECORD opens the gate for media, TEARDOWN ends it."""

    credentials: tuple[str, str] | None = None
    auth_scheme: str = "basic"  # "basic" or "digest" (RFC 2069-style, as FFmpeg answers it)
    realm: str = "benchtwin"
    rng: random.Random = field(default_factory=random.Random)
    requests: list[RtspRequest] = field(default_factory=list)
    announced_sdp: str | None = None
    description: SessionDescription | None = None
    session_id: str | None = None
    recording: bool = False
    tracks: dict[int, RecordTrack] = field(default_factory=dict)  # by RTP channel
    video: list[RecordedVideo] = field(default_factory=list)
    audio: list[RecordedAudio] = field(default_factory=list)
    rejected_frames: int = 0

    def handle(self, request: RtspRequest) -> RecordReply:
        self.requests.append(request)
        cseq = request.cseq
        if cseq is None:
            return RecordReply(respond(400, None, "CSeq header is required on every request"))
        if self.credentials is not None and not self._authorized(request):
            response = respond(401, cseq, f"credentials required ({self.auth_scheme.capitalize()})")
            response.headers.set("WWW-Authenticate", self._challenge())
            return RecordReply(response)
        if request.session_id is not None and request.session_id != self.session_id and request.method != "OPTIONS":
            return RecordReply(respond(454, cseq, f"session {request.session_id!r} does not exist"))
        handler = {
            "OPTIONS": self._options,
            "ANNOUNCE": self._announce,
            "SETUP": self._setup,
            "RECORD": self._record,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keep_alive,
        }.get(request.method)
        if handler is None:
            response = respond(405, cseq, f"{request.method} is not supported by this record server")
            response.headers.set("Allow", ", ".join(RECORD_METHODS))
            return RecordReply(response)
        return handler(request)

    def receive(self, frame: InterleavedFrame) -> int:
        """Feed one interleaved frame; returns how many access units/frames it completed."""
        track = self.tracks.get(frame.channel & ~1)
        if not self.recording or track is None:
            self.rejected_frames += 1
            return 0
        if frame.channel & 1:
            track.rtcp_packets += 1
            return 0
        try:
            packet = RtpPacket.parse(frame.payload)
        except RtpError:
            self.rejected_frames += 1
            return 0
        track.packets += 1
        completed = 0
        try:
            if track.h264 is not None:
                for unit in track.h264.push(
                    packet.payload, timestamp=packet.timestamp, marker=packet.marker, sequence=packet.sequence_number
                ):
                    self.video.append(RecordedVideo(tuple(unit), packet.timestamp))
                    completed += 1
            elif track.aac is not None:
                for data in track.aac.push(packet.payload, marker=packet.marker):
                    self.audio.append(RecordedAudio(data, packet.timestamp))
                    completed += 1
        except ValueError:
            self.rejected_frames += 1
        return completed

    # -- methods ------------------------------------------------------------------------------

    def _options(self, request: RtspRequest) -> RecordReply:
        response = respond(200, request.cseq)
        response.headers.set("Public", ", ".join(RECORD_METHODS))
        return RecordReply(response)

    def _announce(self, request: RtspRequest) -> RecordReply:
        if self.recording:
            return RecordReply(respond(455, request.cseq, "another publisher is recording; TEARDOWN first"))
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/sdp":
            return RecordReply(
                respond(415, request.cseq, f"ANNOUNCE body must be application/sdp, got {content_type or 'none'}")
            )
        try:
            text = request.body.decode("utf-8")
            description = parse_sdp(text)
        except (UnicodeDecodeError, ValueError) as exc:
            return RecordReply(respond(400, request.cseq, f"ANNOUNCE SDP is invalid: {exc}"))
        if not description.media:
            return RecordReply(respond(400, request.cseq, "ANNOUNCE SDP has no m= media section"))
        self.announced_sdp, self.description = text, description
        self.tracks.clear()
        self.session_id = None
        return RecordReply(respond(200, request.cseq))

    def _setup(self, request: RtspRequest) -> RecordReply:
        cseq = request.cseq
        if self.description is None:
            return RecordReply(respond(455, cseq, "SETUP for recording needs an ANNOUNCE first"))
        media = self._media_for(request.uri)
        if media is None:
            controls = ", ".join(m.control or "?" for m in self.description.media)
            return RecordReply(respond(404, cseq, f"no announced media matches {request.uri}; controls are {controls}"))
        try:
            specs = parse_transport(request.headers.get("Transport") or "")
        except TransportError as exc:
            return RecordReply(respond(461, cseq, str(exc)))
        spec = next((s for s in specs if s.lower_transport == "TCP" and s.mode == "RECORD"), None)
        if spec is None:
            return RecordReply(
                respond(461, cseq, "record mode accepts RTP/AVP/TCP;unicast;interleaved=N-M;mode=record only")
            )
        channels = spec.interleaved or (2 * len(self.tracks), 2 * len(self.tracks) + 1)
        if channels[0] % 2 or (channels[0] in self.tracks and self.tracks[channels[0]].media is not media):
            return RecordReply(respond(461, cseq, f"interleaved={channels[0]}-{channels[1]} is odd or already in use"))
        rtpmap = media.rtpmap
        encoding = rtpmap[1].upper() if rtpmap else "UNKNOWN"
        track = RecordTrack(media, channels, encoding)
        if encoding == "H264":
            track.h264 = H264Depacketizer()
        elif encoding == "MPEG4-GENERIC":
            track.aac = AacDepacketizer()
        self.tracks[channels[0]] = track
        if self.session_id is None:
            self.session_id = f"{self.rng.getrandbits(64):016X}"
        response = respond(200, cseq)
        answer = TransportSpec(lower_transport="TCP", interleaved=channels, mode="RECORD")
        response.headers.set("Transport", answer.format())
        response.headers.set("Session", f"{self.session_id};timeout=60")
        return RecordReply(response)

    def _record(self, request: RtspRequest) -> RecordReply:
        if self.session_id is None or request.session_id != self.session_id:
            return RecordReply(respond(454, request.cseq, "RECORD needs the Session header from SETUP"))
        if not self.tracks:
            return RecordReply(respond(455, request.cseq, "RECORD needs at least one SETUP"))
        self.recording = True
        response = respond(200, request.cseq)
        response.headers.set("Session", self.session_id)
        return RecordReply(response)

    def _teardown(self, request: RtspRequest) -> RecordReply:
        if self.session_id is None or request.session_id != self.session_id:
            return RecordReply(respond(454, request.cseq, "TEARDOWN needs the Session header from SETUP"))
        self.recording = False
        response = respond(200, request.cseq)
        response.headers.set("Session", self.session_id)
        self.session_id = None
        return RecordReply(response, close=True)

    def _keep_alive(self, request: RtspRequest) -> RecordReply:
        return RecordReply(respond(200, request.cseq))

    # -- helpers ------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        if self.auth_scheme not in ("basic", "digest"):
            raise ValueError(f"auth_scheme must be basic or digest, got {self.auth_scheme!r}")
        self._nonce = f"{self.rng.getrandbits(128):032x}"

    def _challenge(self) -> str:
        if self.auth_scheme == "digest":
            return f'Digest realm="{self.realm}", nonce="{self._nonce}"'
        return f'Basic realm="{self.realm}"'

    def _authorized(self, request: RtspRequest) -> bool:
        assert self.credentials is not None
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != self.auth_scheme:
            return False
        if self.auth_scheme == "digest":
            return self._digest_matches(request, _digest_fields(token))
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self.credentials

    def _digest_matches(self, request: RtspRequest, fields: dict[str, str]) -> bool:
        assert self.credentials is not None
        user, password = self.credentials
        if fields.get("username") != user or fields.get("nonce") != self._nonce:
            return False
        ha1 = _md5(f"{user}:{self.realm}:{password}")
        ha2 = _md5(f"{request.method}:{fields.get('uri', '')}")
        if "qop" in fields:
            expected = _md5(
                f"{ha1}:{self._nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:{fields['qop']}:{ha2}"
            )
        else:
            expected = _md5(f"{ha1}:{self._nonce}:{ha2}")
        return hmac.compare_digest(expected, fields.get("response", ""))

    def _media_for(self, uri: str) -> MediaDescription | None:
        assert self.description is not None
        path = uri.split("?", 1)[0].rstrip("/")
        for media in self.description.media:
            control = media.control
            if control and (path == control or path.endswith("/" + control)):
                return media
        return self.description.media[0] if len(self.description.media) == 1 else None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _digest_fields(token: str) -> dict[str, str]:
    """`key="value", key=value` pairs of a Digest Authorization header."""
    fields: dict[str, str] = {}
    for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', token):
        fields[key.lower()] = quoted or bare
    return fields
