"""Per-session RTP egress, sans-I/O: stamps shared per-unit packet templates with this session's
SSRC, sequence numbers and timestamp origin, and schedules its RTCP sender reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from emulators.kit.rtsp.live import LiveMedia, MediaUnit, VideoAccessUnit, audio_packets, video_packets
from emulators.kit.rtsp.rtcp import goodbye, sender_report, source_description
from emulators.kit.rtsp.rtp import PacketTemplate, RtpSender
from emulators.kit.rtsp.sdp import AUDIO_TRACK, VIDEO_TRACK


@dataclass(frozen=True)
class Outgoing:
    track_id: int
    rtcp: bool
    data: bytes


class Stamped(NamedTuple):
    """Where one unit's packets landed in a session's outgoing buffer."""

    track_id: int
    start: int
    template: PacketTemplate


class SessionEgress:
    """Packets for one playing session. Media time 0 is the first keyframe it sends, so RTP-Info
    (seq = first sequence, rtptime = timestamp base) describes exactly the first packets."""

    def __init__(
        self,
        media: LiveMedia,
        senders: dict[int, RtpSender],
        *,
        report_interval: float = 5.0,
        cname: str = "benchtwin",
        channels: dict[int, int] | None = None,
    ) -> None:
        self._media = media
        self._senders = senders
        self._report_interval = report_interval
        self._cname = cname
        # Interleaved RTP channel per track; UDP sessions ignore the framing the channel goes into.
        self._channels = channels or {track_id: 2 * track_id for track_id in senders}
        self._origin_pts: float | None = None
        self._next_report: dict[int, float] = {}
        self._quiet_until = float("-inf")  # no report can fall due before this (monotonic) time

    @property
    def started(self) -> bool:
        return self._origin_pts is not None

    def append_packets(self, unit: MediaUnit, out: bytearray) -> Stamped | None:
        """Stamp this session's RTP packets for `unit` onto `out`, framed for interleaving; None
        when the session does not send the unit (no such track, or before its first keyframe)."""
        if isinstance(unit, VideoAccessUnit):
            track_id = VIDEO_TRACK
            sender = self._senders.get(track_id)
            if sender is None:
                return None
            if self._origin_pts is None:
                if not unit.keyframe:
                    return None
                self._origin_pts = unit.pts
            template = unit.packets
            if template is None:
                template = video_packets(unit.nals, self._media.sps, self._media.pps)
        else:
            track_id = AUDIO_TRACK
            sender = self._senders.get(track_id)
            if sender is None or self._origin_pts is None or unit.pts < self._origin_pts:
                return None
            template = unit.packets if unit.packets is not None else audio_packets(unit.data)
        if sender.packet_count == 0:
            self._quiet_until = float("-inf")  # this track's first SR goes out with its first packets
        timestamp = sender.timestamp_at(unit.pts - self._origin_pts)
        first = sender.reserve(template, timestamp)
        start = template.stamp(
            out,
            channel=self._channels[track_id],
            payload_type=sender.payload_type,
            sequence=first,
            timestamp=timestamp,
            ssrc=sender.ssrc,
        )
        return Stamped(track_id, start, template)

    def packets_for(self, unit: MediaUnit) -> list[Outgoing]:
        """The unit's RTP packets for this session, one by one (for callers that are not batching)."""
        out = bytearray()
        stamped = self.append_packets(unit, out)
        if stamped is None:
            return []
        return [Outgoing(stamped.track_id, False, bytes(p)) for p in stamped.template.packets(out, stamped.start)]

    def seconds_until_report(self, now: float) -> float:
        """How long the sender may wait for media before an SR falls due."""
        if not self._next_report:
            return self._report_interval
        return max(0.0, min(self._next_report.values()) - now)

    def reports_due(self, now: float, wallclock: float) -> list[Outgoing]:
        """SR + SDES for every track that has sent media and whose report is due. The first
        report goes out with the first packets, so receivers can sync audio to video early."""
        if now < self._quiet_until:
            return []  # the common case, checked once per batch: nothing is due
        reports: list[Outgoing] = []
        for track_id, sender in self._senders.items():
            if sender.packet_count == 0 or self._origin_pts is None:
                continue
            if now < self._next_report.get(track_id, now):
                continue
            self._next_report[track_id] = now + self._report_interval
            reports.append(Outgoing(track_id, True, self._report(sender, wallclock)))
        self._quiet_until = min(self._next_report.values(), default=float("-inf"))
        return reports

    def goodbyes(self, wallclock: float, reason: str) -> list[Outgoing]:
        return [
            Outgoing(track_id, True, self._report(sender, wallclock) + goodbye(sender.ssrc, reason))
            for track_id, sender in self._senders.items()
        ]

    def _report(self, sender: RtpSender, wallclock: float) -> bytes:
        if self._origin_pts is None:
            rtp_time = sender.timestamp_base
        else:
            rtp_time = sender.timestamp_at(wallclock - self._media.wallclock_at(self._origin_pts))
        sr = sender_report(sender.ssrc, wallclock, rtp_time, sender.packet_count, sender.octet_count)
        return sr + source_description(sender.ssrc, self._cname)
