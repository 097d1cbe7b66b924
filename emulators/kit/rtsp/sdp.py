"""SDP (RFC 4566) for the live presentation: H.264 (RFC 6184 §8) and MPEG4-GENERIC AAC (RFC 3640
§4.1) media sections, plus a small parser for SDP that push clients ANNOUNCE."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.kit.rtsp.h264 import profile_level_id, sprop_parameter_sets

VIDEO_PAYLOAD_TYPE = 96
AUDIO_PAYLOAD_TYPE = 97
VIDEO_TRACK = 0
AUDIO_TRACK = 1


def track_control(track_id: int) -> str:
    return f"trackID={track_id}"


def describe_live(
    *,
    sps: bytes,
    pps: bytes,
    fps: float,
    audio: tuple[int, int, bytes] | None,
    session_id: int,
    address: str = "127.0.0.1",
    name: str = "benchtwin live",
) -> str:
    """The DESCRIBE body; `audio` is (sample_rate, channels, AudioSpecificConfig) or None."""
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN IP4 {address}",
        f"s={name}",
        "c=IN IP4 0.0.0.0",  # unicast RTSP: the address comes from SETUP, not from here
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {VIDEO_PAYLOAD_TYPE}",
        f"a=rtpmap:{VIDEO_PAYLOAD_TYPE} H264/90000",
        f"a=fmtp:{VIDEO_PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile_level_id(sps)};"
        f"sprop-parameter-sets={sprop_parameter_sets(sps, pps)}",
        f"a=framerate:{fps:g}",
        f"a=control:{track_control(VIDEO_TRACK)}",
    ]
    if audio is not None:
        rate, channels, config = audio
        lines += [
            f"m=audio 0 RTP/AVP {AUDIO_PAYLOAD_TYPE}",
            f"a=rtpmap:{AUDIO_PAYLOAD_TYPE} MPEG4-GENERIC/{rate}/{channels}",
            f"a=fmtp:{AUDIO_PAYLOAD_TYPE} streamtype=5;profile-level-id=1;mode=AAC-hbr;"
            f"sizelength=13;indexlength=3;indexdeltalength=3;config={config.hex().upper()}",
            f"a=control:{track_control(AUDIO_TRACK)}",
        ]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class MediaDescription:
    kind: str  # "video", "audio", ...
    port: int
    protocol: str
    formats: list[str]
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    @property
    def rtpmap(self) -> tuple[int, str, int, int | None] | None:
        """(payload type, encoding name, clock rate, channels)."""
        value = self.attribute("rtpmap")
        if value is None:
            return None
        pt, _, encoding = value.partition(" ")
        parts = encoding.split("/")
        return int(pt), parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else None

    @property
    def fmtp(self) -> dict[str, str]:
        value = self.attribute("fmtp")
        if value is None:
            return {}
        _, _, params = value.partition(" ")
        result: dict[str, str] = {}
        for item in params.split(";"):
            key, _, val = item.strip().partition("=")
            if key:
                result[key.lower()] = val
        return result


@dataclass
class SessionDescription:
    lines: list[tuple[str, str]]
    media: list[MediaDescription]


def parse_sdp(text: str) -> SessionDescription:
    """Parse SDP; raises ValueError naming the first line that is not `<type>=<value>`."""
    session: list[tuple[str, str]] = []
    media: list[MediaDescription] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise ValueError(f"SDP line must be <type>=<value>, got {line!r}")
        key, value = line[0], line[2:]
        if key == "m":
            parts = value.split()
            if len(parts) < 4:
                raise ValueError(f"SDP m= line needs media, port, proto and formats, got {value!r}")
            media.append(MediaDescription(parts[0], int(parts[1].split("/")[0]), parts[2], parts[3:]))
        elif media:
            if key == "a":
                name, _, attr = value.partition(":")
                media[-1].attributes.append((name, attr))
        else:
            session.append((key, value))
    if not session or session[0] != ("v", "0"):
        raise ValueError("SDP must start with v=0")
    return SessionDescription(session, media)
