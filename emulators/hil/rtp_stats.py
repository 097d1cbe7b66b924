"""RTP timing statistics of a captured stream: packets, loss, reordering, frames, rate and RFC 3550 jitter."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RtpStats:
    clock_rate: int
    packets: int = 0
    payload_bytes: int = 0
    payload_sizes: list[int] = field(default_factory=list)
    frames: int = 0  # packets with the marker bit: one per video access unit
    lost: int = 0
    reordered: int = 0
    payload_type: int | None = None
    ssrc: int | None = None
    _first_ts: int | None = None
    _last_ts: int | None = None
    _expected_seq: int | None = None
    _transit: float | None = None
    jitter: float = 0.0  # in timestamp units, RFC 3550 6.4.1
    _first_arrival: float | None = None
    _last_arrival: float | None = None

    def add(self, packet: bytes, arrival_s: float) -> None:
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return
        csrc = packet[0] & 0x0F
        marker, pt = packet[1] >> 7, packet[1] & 0x7F
        seq, ts, ssrc = struct.unpack_from("!HII", packet, 2)
        header = 12 + 4 * csrc
        if packet[0] & 0x10 and len(packet) >= header + 4:  # extension header
            header += 4 + 4 * struct.unpack_from("!H", packet, header + 2)[0]
        payload = len(packet) - header
        if packet[0] & 0x20 and payload > 0:  # padding
            payload -= packet[-1]
        self.packets += 1
        self.payload_bytes += payload
        self.payload_sizes.append(payload)
        self.frames += marker
        self.payload_type, self.ssrc = pt, ssrc
        if self._expected_seq is not None:
            gap = (seq - self._expected_seq) & 0xFFFF
            if gap < 0x8000:
                self.lost += gap
                self._expected_seq = (seq + 1) & 0xFFFF
            else:
                self.reordered += 1
        else:
            self._expected_seq = (seq + 1) & 0xFFFF
        if self._first_ts is None:
            self._first_ts, self._first_arrival = ts, arrival_s
        transit = arrival_s * self.clock_rate - ts
        if self._transit is not None:
            self.jitter += (abs(transit - self._transit) - self.jitter) / 16
        self._transit = transit
        self._last_ts, self._last_arrival = ts, arrival_s

    def summary(self) -> dict[str, Any]:
        span_ts = ((self._last_ts or 0) - (self._first_ts or 0)) & 0xFFFFFFFF
        duration = span_ts / self.clock_rate if self.clock_rate else 0.0
        sizes = self.payload_sizes
        return {
            "payload_type": self.payload_type,
            "clock_rate": self.clock_rate,
            "packets": self.packets,
            "payload_bytes": self.payload_bytes,
            "payload_size": {"min": min(sizes), "mean": round(sum(sizes) / len(sizes), 1), "max": max(sizes)}
            if sizes else None,
            "lost": self.lost,
            "reordered": self.reordered,
            "marker_frames": self.frames,
            "rtp_duration_s": round(duration, 3),
            "frame_rate": round((self.frames - 1) / duration, 2) if duration > 0 and self.frames > 1 else None,
            "jitter_ms": round(self.jitter / self.clock_rate * 1000, 3) if self.clock_rate else None,
            "arrival_span_s": round((self._last_arrival or 0) - (self._first_arrival or 0), 3),
        }
