"""SignalWire media-stream messages, sans I/O: codec formats, the message sequencer and client-message parsing.

One definition of the wire: the emulator's sender, the reference receiver and the contract tests all import it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PROTOCOL_VERSION = "0.2.0"
CHUNK_MS = 20
TRACKS = ("inbound_track", "outbound_track", "both_tracks")
STREAM_CODECS = ("PCMU", "PCMA", "L16", "L16@16000h", "L16@24000h")
TRACK_NAMES: dict[str, tuple[str, ...]] = {
    "inbound_track": ("inbound",),
    "outbound_track": ("outbound",),
    "both_tracks": ("inbound", "outbound"),
}
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class MediaFormat:
    """What ``start.mediaFormat`` announces, plus the payload layout of one 20 ms chunk."""

    codec: str  # the StreamCodec value that selected it
    encoding: str
    sample_rate: int
    channels: int = 1
    byte_order: str = "big"  # L16 only

    @property
    def samples_per_chunk(self) -> int:
        return self.sample_rate * CHUNK_MS // 1000

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "audio/x-L16" else 1

    @property
    def bytes_per_chunk(self) -> int:
        return self.samples_per_chunk * self.bytes_per_sample

    @property
    def silence(self) -> bytes:
        if self.encoding == "audio/x-mulaw":
            return b"\xff" * self.bytes_per_chunk
        if self.bytes_per_sample == 1:
            return b"\xd5" * self.bytes_per_chunk
        return b"\x00" * self.bytes_per_chunk

    def as_json(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sampleRate": self.sample_rate, "channels": self.channels}


def media_format(
    stream_codec: str,
    *,
    plain_l16_rate: int = 16000,
    pcma_encoding: str = "audio/x-alaw",
    l16_byte_order: str = "big",
) -> MediaFormat:
    """The media format of a ``StreamCodec`` value; ValueError names the allowed values."""
    if stream_codec == "PCMU":
        return MediaFormat(stream_codec, "audio/x-mulaw", 8000)
    if stream_codec == "PCMA":
        return MediaFormat(stream_codec, pcma_encoding, 8000)
    if stream_codec == "L16":
        return MediaFormat(stream_codec, "audio/x-L16", plain_l16_rate, byte_order=l16_byte_order)
    if stream_codec == "L16@16000h":
        return MediaFormat(stream_codec, "audio/x-L16", 16000, byte_order=l16_byte_order)
    if stream_codec == "L16@24000h":
        return MediaFormat(stream_codec, "audio/x-L16", 24000, byte_order=l16_byte_order)
    raise ValueError(f"StreamCodec must be one of {', '.join(STREAM_CODECS)}, got {stream_codec!r}")


@dataclass
class MediaSequencer:
    """Builds one stream's messages in order: string counters, a global sequenceNumber, per-track chunks.

    ``sequenceNumber`` is ``"1"`` on ``start`` and grows by one for every ``media``, ``dtmf`` and ``stop``;
    ``chunk`` counts per track from ``"1"``; ``timestamp`` is ``(chunk - 1) * 20`` ms.
    """

    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    custom_parameters: dict[str, str] = field(default_factory=dict)
    always_custom_parameters: bool = False
    omit_streamsid_in_dtmf_mark: bool = False
    sequence: int = 0
    chunks: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    def connected(self) -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": PROTOCOL_VERSION},
                          separators=(",", ":"))

    def start(self) -> str:
        if self.sequence:
            raise RuntimeError("start was sent already")
        self.sequence = 1
        start: dict[str, Any] = {
            "streamSid": self.stream_sid,
            "accountSid": self.account_sid,
            "callSid": self.call_sid,
            "tracks": list(self.tracks),
        }
        if self.custom_parameters or self.always_custom_parameters:
            start["customParameters"] = dict(self.custom_parameters)
        start["mediaFormat"] = self.media_format.as_json()
        return json.dumps({"event": "start", "sequenceNumber": "1", "start": start}, separators=(",", ":"))

    def media(self, track: str, payload_b64: str) -> str:
        """The next media message of ``track``; built by hand because this is the hot path."""
        self.sequence += 1
        chunk = self.chunks.get(track, 0) + 1
        self.chunks[track] = chunk
        return (
            f'{{"event":"media","sequenceNumber":"{self.sequence}","media":{{"track":"{track}",'
            f'"chunk":"{chunk}","timestamp":"{(chunk - 1) * CHUNK_MS}","payload":"{payload_b64}"}}}}'
        )

    def skip(self, track: str) -> None:
        """Account for a chunk that is lost on the way (a drop fault): the receiver sees the gap."""
        self.sequence += 1
        self.chunks[track] = self.chunks.get(track, 0) + 1

    def dtmf(self, digit: str, duration_ms: int) -> str:
        self.sequence += 1
        message: dict[str, Any] = {"event": "dtmf", "sequenceNumber": str(self.sequence)}
        if not self.omit_streamsid_in_dtmf_mark:
            message["streamSid"] = self.stream_sid
        message["dtmf"] = {"digit": digit, "duration": duration_ms}
        return json.dumps(message, separators=(",", ":"))

    def mark(self, name: str) -> str:
        message: dict[str, Any] = {"event": "mark"}
        if not self.omit_streamsid_in_dtmf_mark:
            message["streamSid"] = self.stream_sid
        message["mark"] = {"name": name}
        return json.dumps(message, separators=(",", ":"))

    def stop(self) -> str:
        self.sequence += 1
        self.stopped = True
        return f'{{"event":"stop","sequenceNumber":"{self.sequence}"}}'


# ----- messages the customer sends (bidirectional) ---------------------------------------------------------
@dataclass(frozen=True)
class ClientMedia:
    payload: bytes


@dataclass(frozen=True)
class ClientMark:
    name: str


@dataclass(frozen=True)
class ClientClear:
    pass


@dataclass(frozen=True)
class ClientDtmf:
    digit: str


@dataclass(frozen=True)
class IgnoredMessage:
    reason: str


ClientMessage = ClientMedia | ClientMark | ClientClear | ClientDtmf | IgnoredMessage


def parse_client_message(text: str, stream_sid: str) -> ClientMessage:
    """Decode one customer message; anything malformed or for another stream becomes IgnoredMessage."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        return IgnoredMessage(f"not JSON: {exc}")
    if not isinstance(message, dict):
        return IgnoredMessage("not a JSON object")
    event = message.get("event")
    if event not in ("media", "mark", "clear", "dtmf"):
        return IgnoredMessage(f"unknown event {event!r}; allowed: media, mark, clear, dtmf")
    if message.get("streamSid") != stream_sid:
        return IgnoredMessage(f"streamSid {message.get('streamSid')!r} is not this stream ({stream_sid})")
    if event == "clear":
        return ClientClear()
    body = message.get(event)
    if not isinstance(body, dict):
        return IgnoredMessage(f"{event} must carry a {event!r} object")
    if event == "media":
        payload = body.get("payload")
        if not isinstance(payload, str):
            return IgnoredMessage("media.payload must be a base64 string")
        try:
            return ClientMedia(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            return IgnoredMessage("media.payload is not valid base64")
    if event == "mark":
        name = body.get("name")
        if not isinstance(name, str):
            return IgnoredMessage("mark.name must be a string")
        return ClientMark(name)
    digit = body.get("digit")
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        return IgnoredMessage(f"dtmf.digit must be one of 0-9 * # A-D, got {digit!r}")
    return ClientDtmf(digit)


def decode(payload: bytes, fmt: MediaFormat) -> np.ndarray:
    """A payload in the stream's layout back to int16 samples (a trailing odd byte of L16 is dropped)."""
    # numpy and the G.711 tables are imported by the first payload, not by whoever only reads the formats.
    import numpy as np

    from clients.g711 import alaw_to_pcm16, ulaw_to_pcm16

    if fmt.encoding == "audio/x-mulaw":
        return ulaw_to_pcm16(payload)
    if fmt.bytes_per_sample == 1:
        return alaw_to_pcm16(payload)
    usable = len(payload) - len(payload) % 2
    return np.frombuffer(payload[:usable], dtype=">i2" if fmt.byte_order == "big" else "<i2").astype(np.int16)
