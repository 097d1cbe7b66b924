"""H.264 over RTP (RFC 6184, packetization-mode 1): Annex B splitting, single-NAL and FU-A
packetization, and a depacketizer that rebuilds access units (single NAL, STAP-A, FU-A)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from emulators.kit.rtsp.rtp import MAX_RTP_PAYLOAD

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
STAP_A = 24
FU_A = 28
START_CODE = b"\x00\x00\x00\x01"


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes), without start codes."""
    # bytes.find scans in C: a per-byte Python loop cost ~2 ms per 8 kB access unit.
    find = data.find
    at = find(b"\x00\x00\x01")
    if at < 0:
        return [data] if data else []  # no start code at all: one bare NAL unit
    nals: list[bytes] = []
    start = at + 3
    while (at := find(b"\x00\x00\x01", start)) >= 0:
        end = at - 1 if data[at - 1] == 0 else at  # the 4-byte form's leading zero is not NAL data
        nals.append(data[start:end])
        start = at + 3
    nals.append(data[start:])
    return [nal for nal in nals if nal]


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def profile_level_id(sps: bytes) -> str:
    """profile_idc, constraint flags and level_idc (the SPS bytes after the NAL header), as hex."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("profile_level_id needs an SPS NAL unit of at least 4 bytes")
    return sps[1:4].hex().upper()


def sprop_parameter_sets(sps: bytes, pps: bytes) -> str:
    return f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"


def parse_sprop_parameter_sets(value: str) -> list[bytes]:
    """The NAL units of an SDP `sprop-parameter-sets` value (comma-separated base64)."""
    try:
        return [base64.b64decode(item.strip(), validate=True) for item in value.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"sprop-parameter-sets must be comma-separated base64, got {value!r}") from None


def packetize_nal(nal: bytes, max_payload: int = MAX_RTP_PAYLOAD) -> list[bytes]:
    """RTP payloads for one NAL unit: itself if it fits, else FU-A fragments (RFC 6184 §5.8)."""
    if len(nal) <= max_payload:
        return [nal]
    header = nal[0]
    indicator = (header & 0xE0) | FU_A
    kind = header & 0x1F
    body = nal[1:]
    chunk = max_payload - 2
    payloads: list[bytes] = []
    for offset in range(0, len(body), chunk):
        fu_header = kind
        if offset == 0:
            fu_header |= 0x80  # S bit
        if offset + chunk >= len(body):
            fu_header |= 0x40  # E bit
        payloads.append(bytes((indicator, fu_header)) + body[offset : offset + chunk])
    return payloads


def packetize_access_unit(nals: list[bytes], max_payload: int = MAX_RTP_PAYLOAD) -> list[tuple[bytes, bool]]:
    """(payload, marker) pairs for one access unit; the marker is set on its last packet only."""
    payloads = [p for nal in nals for p in packetize_nal(nal, max_payload)]
    return [(p, i == len(payloads) - 1) for i, p in enumerate(payloads)]


class DepacketizeError(ValueError):
    """An RTP payload that is not valid RFC 6184 packetization-mode 1."""


@dataclass
class H264Depacketizer:
    """Rebuilds access units from RTP payloads; an access unit ends at the marker bit or when the
    timestamp changes. A lost FU-A fragment drops that NAL unit and counts it."""

    fragments_lost: int = 0
    _nals: list[bytes] = field(default_factory=list)
    _fragment: bytearray | None = None
    _timestamp: int | None = None
    _last_sequence: int | None = None

    def push(self, payload: bytes, *, timestamp: int, marker: bool, sequence: int | None = None) -> list[list[bytes]]:
        """Feed one RTP payload; return the access units (lists of NALs) completed by it."""
        done: list[list[bytes]] = []
        if self._timestamp is not None and timestamp != self._timestamp and self._nals:
            done.append(self._nals)
            self._nals = []
            self._fragment = None
        if sequence is not None and self._last_sequence is not None:
            if sequence != (self._last_sequence + 1) & 0xFFFF and self._fragment is not None:
                self._fragment = None
                self.fragments_lost += 1
        self._last_sequence = sequence
        self._timestamp = timestamp
        if not payload:
            raise DepacketizeError("empty H.264 RTP payload")
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._nals.append(bytes(payload))
        elif kind == STAP_A:
            self._nals.extend(_split_stap_a(payload))
        elif kind == FU_A:
            self._push_fragment(payload)
        else:
            raise DepacketizeError(f"NAL unit type {kind} is not allowed in packetization-mode 1")
        if marker and self._nals:
            done.append(self._nals)
            self._nals = []
        return done

    def _push_fragment(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise DepacketizeError("FU-A payload shorter than its two header bytes")
        indicator, fu_header = payload[0], payload[1]
        start, end = bool(fu_header & 0x80), bool(fu_header & 0x40)
        if start:
            self._fragment = bytearray([(indicator & 0xE0) | (fu_header & 0x1F)])
        elif self._fragment is None:
            self.fragments_lost += 1  # a middle/end piece whose start we never saw
            return
        self._fragment += payload[2:]
        if end:
            self._nals.append(bytes(self._fragment))
            self._fragment = None


def _split_stap_a(payload: bytes) -> list[bytes]:
    nals: list[bytes] = []
    offset = 1
    while offset + 2 <= len(payload):
        size = int.from_bytes(payload[offset : offset + 2], "big")
        offset += 2
        if offset + size > len(payload):
            raise DepacketizeError("STAP-A aggregation unit runs past the packet")
        nals.append(bytes(payload[offset : offset + size]))
        offset += size
    return nals
