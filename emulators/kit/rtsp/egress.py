"""Per-session RTP egress, sans-I/O: turns shared access units into this session's RTP packets
(its own SSRC, sequence numbers and timestamp origin) and schedules its RTCP sender reports."""

from __future__ import annotations

from dataclasses import dataclass

from emulators.kit.rtsp.aac import packetize_aac
from emulators.kit.rtsp.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_type, packetize_access_unit
from emulators.kit.rtsp.live import AudioFrame, LiveMedia, MediaUnit, VideoAccessUnit
from emulators.kit.rtsp.rtcp import goodbye, sender_report, source_description
from emulators.kit.rtsp.rtp import RtpSender
from emulators.kit.rtsp.sdp import AUDIO_TRACK, VIDEO_TRACK


@dataclass(frozen=True)
class Outgoing:
    track_id: int
    rtcp: bool
    data: bytes


class SessionEgress:
    """Packets for one playing session. Media time 0 is the first keyframe it sends, so RTP-Info
    (seq = first sequence, rtptime = timestamp base) describes exactly the first packets."""

    def __init__(
        self, media: LiveMedia, senders: dict[int, RtpSender], *, report_interval: float = 5.0, cname: str = "benchtwin"
    ) -> None:
        self._media = media
        self._senders = senders
        self._report_interval = report_interval
        self._cname = cname
        self._origin_pts: float | None = None
        self._next_report: dict[int, float] = {}

    @property
    def started(self) -> bool:
        return self._origin_pts is not None

    def packets_for(self, unit: MediaUnit) -> list[Outgoing]:
        if isinstance(unit, VideoAccessUnit):
            return self._video(unit)
        return self._audio(unit)

    def _video(self, unit: VideoAccessUnit) -> list[Outgoing]:
        sender = self._senders.get(VIDEO_TRACK)
        if sender is None:
            return []
        if self._origin_pts is None:
            if not unit.keyframe:
                return []
            self._origin_pts = unit.pts
        nals = list(unit.nals)
        kinds = {nal_type(n) for n in nals}
        if NAL_IDR in kinds and NAL_SPS not in kinds:
            # Decoders that ignore sprop-parameter-sets still get the parameter sets in-band.
            nals = [self._media.sps, self._media.pps, *nals]
        elif NAL_IDR in kinds and NAL_PPS not in kinds:
            nals = [self._media.pps, *nals]
        timestamp = sender.timestamp_at(unit.pts - self._origin_pts)
        return [
            Outgoing(VIDEO_TRACK, False, sender.packet(payload, timestamp, marker))
            for payload, marker in packetize_access_unit(nals)
        ]

    def _audio(self, unit: AudioFrame) -> list[Outgoing]:
        sender = self._senders.get(AUDIO_TRACK)
        if sender is None or self._origin_pts is None or unit.pts < self._origin_pts:
            return []
        timestamp = sender.timestamp_at(unit.pts - self._origin_pts)
        return [
            Outgoing(AUDIO_TRACK, False, sender.packet(payload, timestamp, marker))
            for payload, marker in packetize_aac(unit.data)
        ]

    def seconds_until_report(self, now: float) -> float:
        """How long the sender may wait for media before an SR falls due."""
        if not self._next_report:
            return self._report_interval
        return max(0.0, min(self._next_report.values()) - now)

    def reports_due(self, now: float, wallclock: float) -> list[Outgoing]:
        """SR + SDES for every track that has sent media and whose report is due. The first
        report goes out with the first packets, so receivers can sync audio to video early."""
        reports: list[Outgoing] = []
        for track_id, sender in self._senders.items():
            if sender.packet_count == 0 or self._origin_pts is None:
                continue
            if now < self._next_report.get(track_id, now):
                continue
            self._next_report[track_id] = now + self._report_interval
            reports.append(Outgoing(track_id, True, self._report(sender, wallclock)))
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
