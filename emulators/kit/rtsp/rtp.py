"""RTP fixed header (RFC 3550 §5.1), the per-stream sender state (SSRC, sequence numbers that wrap
at 2^16, media timestamps on the stream's own clock) and the shared packet layout of one media unit."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
MAX_RTP_PACKET = 1400  # stays under a 1500-byte Ethernet MTU with IP/UDP headers to spare
MAX_RTP_PAYLOAD = MAX_RTP_PACKET - RTP_HEADER_SIZE
INTERLEAVE_PREFIX = 4  # '$', channel, 16-bit length (RFC 2326 §10.12)
# From the interleave channel on: channel length | V=2 M|PT seq timestamp SSRC ('$' is in the template).
_FRAMED_HEADER = struct.Struct("!BHBBHII")
_BLANK_HEADER = bytes(RTP_HEADER_SIZE)


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


@dataclass(frozen=True, eq=False)
class PacketTemplate:
    """The RTP packets of one media unit, laid out once for every session that sends it.

    Each packet sits in `data` framed for interleaved TCP ('$', channel, length) with a blank fixed
    header before its payload, so a session only stamps in its channel, sequence numbers, timestamp
    and SSRC; UDP sends the same bytes without the 4-byte prefix. The marker goes on the last packet
    only: the end of an H.264 access unit (RFC 6184 §5.1) or of a fragmented AAC frame (RFC 3640 §3.2.3.1).
    """

    data: bytes
    layout: tuple[tuple[int, int], ...]  # per packet: (offset of its interleave prefix, RTP packet size)
    payload_octets: int  # what the packets add to an SR's octet count

    @classmethod
    def build(cls, payloads: Sequence[bytes]) -> PacketTemplate:
        if not payloads:
            raise ValueError("a media unit needs at least one RTP payload")
        parts: list[bytes] = []
        layout: list[tuple[int, int]] = []
        offset = 0
        for payload in payloads:
            size = RTP_HEADER_SIZE + len(payload)
            if size > 0xFFFF:
                raise ValueError(f"an RTP packet must fit a 16-bit interleave length, got {size} bytes")
            parts += (struct.pack("!BBH", 0x24, 0, size), _BLANK_HEADER, payload)
            layout.append((offset, size))
            offset += INTERLEAVE_PREFIX + size
        return cls(b"".join(parts), tuple(layout), sum(len(p) for p in payloads))

    @property
    def count(self) -> int:
        return len(self.layout)

    def stamp(
        self, out: bytearray, *, channel: int, payload_type: int, sequence: int, timestamp: int, ssrc: int
    ) -> int:
        """Append the packets to `out` with one session's header fields; returns where they start."""
        start = len(out)
        out += self.data
        pack = _FRAMED_HEADER.pack_into  # per packet: the hot loop of every session, kept minimal
        second = payload_type & 0x7F
        at = start
        for offset, size in self.layout:
            at = start + offset + 1
            pack(out, at, channel, size, 0x80, second, sequence & 0xFFFF, timestamp, ssrc)
            sequence += 1
        out[at + 4] |= 0x80  # the marker, on the last packet
        return start

    def packets(self, framed: bytes | bytearray | memoryview, start: int = 0) -> list[memoryview]:
        """The bare RTP packets (no interleave prefix) of a stamped copy that begins at `start`."""
        view = memoryview(framed)
        return [
            view[start + offset + INTERLEAVE_PREFIX : start + offset + INTERLEAVE_PREFIX + size]
            for offset, size in self.layout
        ]


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

    def reserve(self, template: PacketTemplate, timestamp: int) -> int:
        """Takes sequence numbers for a unit's packets and counts them for the SR; returns the first."""
        first = self._next_sequence
        self._next_sequence = (first + template.count) & 0xFFFF
        self.packet_count += template.count
        self.octet_count += template.payload_octets
        self.last_timestamp = timestamp
        return first

    def packet(self, payload: bytes, timestamp: int, marker: bool) -> bytes:
        data = RtpPacket(self.payload_type, self._next_sequence, timestamp, self.ssrc, payload, marker).serialize()
        self._next_sequence = (self._next_sequence + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        self.last_timestamp = timestamp
        return data
