"""RTCP (RFC 3550 §6): the sender report + SDES CNAME compound a sender emits every few
seconds, the BYE that ends a stream, and a parser for whatever comes back (receiver reports)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTCP_SR = 200
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_timestamp(unix_seconds: float) -> int:
    """64-bit NTP timestamp: seconds since 1900 in the high word, fraction in the low word."""
    seconds = unix_seconds + NTP_UNIX_OFFSET
    whole = int(seconds)
    fraction = int((seconds - whole) * (1 << 32)) & 0xFFFFFFFF
    return ((whole & 0xFFFFFFFF) << 32) | fraction


def unix_from_ntp(ntp: int) -> float:
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def _header(count: int, packet_type: int, body_length: int) -> bytes:
    # length field = packet size in 32-bit words minus one (header included)
    return struct.pack("!BBH", 0x80 | count, packet_type, (4 + body_length) // 4 - 1)


def sender_report(ssrc: int, unix_time: float, rtp_timestamp: int, packet_count: int, octet_count: int) -> bytes:
    body = struct.pack(
        "!IQIII",
        ssrc,
        ntp_timestamp(unix_time),
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    return _header(0, RTCP_SR, len(body)) + body


def source_description(ssrc: int, cname: str) -> bytes:
    text = cname.encode("utf-8")[:255]
    chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)  # the item list ends with a null and pads to 32 bits
    return _header(1, RTCP_SDES, len(chunk)) + chunk


def goodbye(ssrc: int, reason: str = "") -> bytes:
    body = struct.pack("!I", ssrc)
    if reason:
        text = reason.encode("utf-8")[:255]
        body += bytes((len(text),)) + text
        body += b"\x00" * (-len(body) % 4)
    return _header(1, RTCP_BYE, len(body)) + body


@dataclass(frozen=True)
class RtcpPacket:
    packet_type: int
    count: int
    body: bytes

    @property
    def ssrc(self) -> int | None:
        return struct.unpack_from("!I", self.body)[0] if len(self.body) >= 4 else None


@dataclass(frozen=True)
class SenderInfo:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    @property
    def unix_time(self) -> float:
        return unix_from_ntp(self.ntp)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Split a compound RTCP packet. Raises ValueError on a malformed one."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise ValueError("RTCP packet shorter than its 4-byte header")
        first, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != 2:
            raise ValueError(f"RTCP version must be 2, got {first >> 6}")
        size = 4 * (words + 1)
        if offset + size > len(data):
            raise ValueError("RTCP length field runs past the data")
        packets.append(RtcpPacket(packet_type, first & 0x1F, bytes(data[offset + 4 : offset + size])))
        offset += size
    return packets


def parse_sender_info(packet: RtcpPacket) -> SenderInfo:
    if packet.packet_type != RTCP_SR or len(packet.body) < 24:
        raise ValueError("not a sender report")
    return SenderInfo(*struct.unpack_from("!IQIII", packet.body))
