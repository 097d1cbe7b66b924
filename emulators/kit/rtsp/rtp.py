"""RTP fixed header (RFC 3550 §5.1) and the per-stream sender state: SSRC, sequence numbers that
wrap at 2^16, and media timestamps on the stream's own clock."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
MAX_RTP_PACKET = 1400  # stays under a 1500-byte Ethernet MTU with IP/UDP headers to spare
MAX_RTP_PAYLOAD = MAX_RTP_PACKET - RTP_HEADER_SIZE


class RtpError(ValueError):
    """Bytes that are not a valid RTP packet."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()

    def serialize(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        header = struct.pack(
            "!BBHII", first, second, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
        )
        return header + b"".join(struct.pack("!I", c) for c in self.csrc) + self.payload

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet must be at least {RTP_HEADER_SIZE} bytes, got {len(data)}")
        first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version must be 2, got {first >> 6}")
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        csrc = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE) if csrc_count else ()
        if first & 0x10:  # header extension: skip profile id + length words
            if len(data) < offset + 4:
                raise RtpError("RTP header extension is truncated")
            words = struct.unpack_from("!H", data, offset + 2)[0]
            offset += 4 + 4 * words
        end = len(data)
        if first & 0x20:  # padding: the last byte says how much
            end -= data[-1]
        if offset > end:
            raise RtpError("RTP header longer than the packet")
        return cls(second & 0x7F, seq, ts, ssrc, bytes(data[offset:end]), bool(second & 0x80), tuple(csrc))


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: RTCP packet types 200-204 land in payload-type range 72-76."""
    return len(data) >= 2 and 72 <= (data[1] & 0x7F) <= 76


@dataclass
class RtpSender:
    """Sequence/timestamp state of one outgoing RTP stream, plus the counts an SR reports."""

    payload_type: int
    ssrc: int
    clock_rate: int
    first_sequence: int
    timestamp_base: int
    packet_count: int = 0
    octet_count: int = 0
    last_timestamp: int | None = None

    def __post_init__(self) -> None:
        self._next_sequence = self.first_sequence & 0xFFFF

    def timestamp_at(self, media_seconds: float) -> int:
        """The RTP timestamp for `media_seconds` after the stream origin, wrapped to 32 bits."""
        return (self.timestamp_base + round(media_seconds * self.clock_rate)) & 0xFFFFFFFF

    def packet(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        data = RtpPacket(self.payload_type, self._next_sequence, timestamp, self.ssrc, payload, marker).serialize()
        self._next_sequence = (self._next_sequence + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        self.last_timestamp = timestamp
        return data
