"""The fan-out hub and per-session egress: keyframe gating, bounded queues, RTP timing, SRs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from emulators.kit.rtsp.egress import SessionEgress
from emulators.kit.rtsp.h264 import H264Depacketizer, join_annexb, nal_type
from emulators.kit.rtsp.live import AacTrack, AudioFrame, EndOfStream, H264Track, LiveMedia, VideoAccessUnit
from emulators.kit.rtsp.rtcp import RTCP_BYE, RTCP_SR, parse_rtcp, parse_sender_info
from emulators.kit.rtsp.rtp import RtpPacket, RtpSender

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")


def idr(size: int = 3000) -> bytes:
    return join_annexb([SPS, PPS, b"\x65" + bytes(size)])


def idr_without_headers() -> bytes:
    return join_annexb([b"\x65" + bytes(100)])


def slice_(size: int = 200) -> bytes:
    return join_annexb([b"\x41" + bytes(size)])


def media(with_audio: bool = True) -> LiveMedia:
    audio = AacTrack(44100, 1, b"\x12\x08") if with_audio else None
    return LiveMedia(H264Track(320, 240, 30, SPS, PPS), audio)


def drain(subscription) -> list:
    units = []
    while subscription.pending:
        units.append(subscription._queue.popleft())
    return units


async def test_a_subscriber_starts_at_the_next_keyframe_and_skips_audio_before_it() -> None:
    hub = media()
    sub = hub.subscribe()
    hub.publish_video(slice_(), 0.0, False)
    hub.publish_audio(b"\x21\x00", 0.01)
    hub.publish_video(idr(), 1 / 30, True)
    hub.publish_audio(b"\x21\x01", 0.05)
    first = await sub.next_unit(1.0)
    second = await sub.next_unit(1.0)
    assert isinstance(first, VideoAccessUnit) and first.keyframe and first.pts == pytest.approx(1 / 30)
    assert isinstance(second, AudioFrame) and second.data == b"\x21\x01"


async def test_every_subscriber_gets_the_same_encoded_unit() -> None:
    hub = media()
    subs = [hub.subscribe() for _ in range(3)]
    hub.publish_video(idr(), 0.0, True)
    units = [await s.next_unit(1.0) for s in subs]
    assert units[0] is units[1] is units[2]  # encoded (and split) once, shared by reference


async def test_a_listening_subscription_is_told_once_per_batch_and_when_the_stream_ends() -> None:
    hub = media()
    sub = hub.subscribe()
    calls = []
    sub.listener = calls.append
    hub.publish_video(idr(), 0.0, True)
    hub.publish_audio(b"\x21\x00", 0.01)  # joins the batch already announced
    assert calls == [sub]
    batch = sub.take_all()
    assert [type(u) for u in batch] == [VideoAccessUnit, AudioFrame] and sub.delivered == 2 and sub.pending == 0
    hub.publish_video(slice_(), 1 / 30, False)
    assert calls == [sub, sub]  # the queue was empty again: a new batch
    hub.close()
    assert calls == [sub, sub, sub] and sub.closed


async def test_a_full_queue_drops_and_counts_then_resumes_at_a_keyframe() -> None:
    hub = media(with_audio=False)
    sub = hub.subscribe(max_pending=3)
    hub.publish_video(idr(), 0.0, True)
    for i in range(1, 6):
        hub.publish_video(slice_(), i / 30, False)
    assert sub.dropped == 3 and sub.pending == 3
    drain(sub)
    hub.publish_video(slice_(), 6 / 30, False)  # would not decode after the gap
    hub.publish_video(idr(), 7 / 30, True)
    [resumed] = drain(sub)
    assert resumed.keyframe and resumed.pts == pytest.approx(7 / 30)


async def test_closing_the_media_ends_every_subscriber() -> None:
    hub = media()
    sub = hub.subscribe()
    hub.close()
    with pytest.raises(EndOfStream):
        await sub.next_unit(1.0)
    late = hub.subscribe()
    with pytest.raises(EndOfStream):
        await late.next_unit(1.0)


async def test_next_unit_returns_none_when_nothing_arrives_in_time() -> None:
    sub = media().subscribe()
    assert await sub.next_unit(0.01) is None


async def test_a_producer_thread_can_publish_into_the_loop() -> None:
    hub = media()
    sub = hub.subscribe()
    thread = threading.Thread(target=hub.publish_video, args=(idr(), 0.0, True))
    thread.start()
    unit = await sub.next_unit(2.0)
    await asyncio.to_thread(thread.join, 2.0)
    assert isinstance(unit, VideoAccessUnit) and unit.keyframe


def test_publishing_with_no_subscribers_is_cheap_and_harmless() -> None:
    hub = media()
    hub.publish_video(idr(), 0.0, True)
    hub.publish_audio(b"\x21", 0.0)
    assert (hub.video_units_published, hub.audio_frames_published) == (1, 1)
    with pytest.raises(ValueError, match="no audio"):
        media(with_audio=False).publish_audio(b"\x21", 0.0)


def test_in_band_parameter_sets_replace_the_announced_ones() -> None:
    hub = media()
    new_sps = SPS[:-1] + b"\x99"
    hub.publish_video(join_annexb([new_sps, PPS, b"\x65\x00"]), 0.0, True)
    assert hub.sps == new_sps


# -- egress -------------------------------------------------------------------------------------


def senders() -> dict[int, RtpSender]:
    return {
        0: RtpSender(payload_type=96, ssrc=11, clock_rate=90000, first_sequence=65534, timestamp_base=1000),
        1: RtpSender(payload_type=97, ssrc=22, clock_rate=44100, first_sequence=5, timestamp_base=7),
    }


def video_unit(data: bytes, pts: float, keyframe: bool) -> VideoAccessUnit:
    from emulators.kit.rtsp.h264 import split_annexb

    return VideoAccessUnit(tuple(split_annexb(data)), pts, keyframe)


async def test_a_published_unit_is_packetized_once_and_sessions_differ_only_in_headers() -> None:
    hub = media()
    subs = [hub.subscribe() for _ in range(2)]
    hub.publish_video(idr(5000), 0.0, True)
    hub.publish_audio(b"\x21" * 10, 0.0)
    units = [s.take_all() for s in subs]
    assert units[0][0].packets is units[1][0].packets is not None  # one RTP layout, shared
    other = {
        0: RtpSender(payload_type=96, ssrc=33, clock_rate=90000, first_sequence=100, timestamp_base=5),
        1: RtpSender(payload_type=97, ssrc=44, clock_rate=44100, first_sequence=9, timestamp_base=8),
    }
    mine, theirs = SessionEgress(hub, senders()), SessionEgress(hub, other)
    a = [RtpPacket.parse(o.data) for u in units[0] for o in mine.packets_for(u)]
    b = [RtpPacket.parse(o.data) for u in units[1] for o in theirs.packets_for(u)]
    assert [p.payload for p in a] == [p.payload for p in b] and len(a) > 3
    assert {p.ssrc for p in a} == {11, 22} and {p.ssrc for p in b} == {33, 44}
    assert [p.sequence_number for p in b if p.ssrc == 33] == list(range(100, 100 + len(b) - 1))


def test_egress_starts_at_a_keyframe_whose_first_packet_matches_rtp_info() -> None:
    egress = SessionEgress(media(), senders())
    assert egress.packets_for(video_unit(slice_(), 0.9, False)) == []
    out = egress.packets_for(video_unit(idr(), 1.0, True))
    first = RtpPacket.parse(out[0].data)
    assert (first.sequence_number, first.timestamp, first.payload_type) == (65534, 1000, 96)
    assert nal_type(first.payload) == 7  # SPS leads the first access unit


def test_egress_inserts_sps_and_pps_before_an_idr_that_lacks_them() -> None:
    egress = SessionEgress(media(), senders())
    out = egress.packets_for(video_unit(idr_without_headers(), 0.0, True))
    depacketizer = H264Depacketizer()
    units = [u for o in out for u in _push(depacketizer, o.data)]
    assert [nal_type(n) for n in units[0]] == [7, 8, 5]


def test_egress_timestamps_follow_pts_on_each_tracks_clock_and_markers_end_units() -> None:
    egress = SessionEgress(media(), senders())
    first = egress.packets_for(video_unit(idr(), 2.0, True))
    later = [RtpPacket.parse(o.data) for o in egress.packets_for(video_unit(slice_(3000), 2.5, False))]
    assert {p.timestamp for p in later} == {1000 + 45000}
    assert [p.marker for p in later] == [False, False, True]
    assert [p.sequence_number for p in later] == [(65534 + len(first) + i) % 65536 for i in range(3)]
    [audio] = [RtpPacket.parse(o.data) for o in egress.packets_for(AudioFrame(b"\x21" * 10, 3.0))]
    assert audio.timestamp == 7 + 44100 and audio.marker
    assert egress.packets_for(AudioFrame(b"\x21", 1.5)) == []  # before the session's origin


def test_egress_reports_come_with_the_first_packets_and_then_every_interval() -> None:
    hub = media()
    egress = SessionEgress(hub, senders(), report_interval=5.0)
    hub.publish_video(idr(), 0.0, True)  # fixes the media epoch
    sent = egress.packets_for(video_unit(idr(), 0.0, True))
    reports = egress.reports_due(now=100.0, wallclock=hub.wallclock_at(1.0))
    assert [r.track_id for r in reports] == [0]  # audio has sent nothing yet
    sr = parse_sender_info(parse_rtcp(reports[0].data)[0])
    assert sr.ssrc == 11 and sr.packet_count == len(sent)
    assert sr.rtp_timestamp == pytest.approx(1000 + 90000, abs=2)
    assert egress.reports_due(now=104.0, wallclock=0) == []
    assert egress.seconds_until_report(104.0) == pytest.approx(1.0)
    assert len(egress.reports_due(now=105.0, wallclock=hub.wallclock_at(6.0))) == 1


def test_egress_goodbye_is_a_sender_report_then_bye_for_every_track() -> None:
    egress = SessionEgress(media(), senders())
    for item in egress.goodbyes(0.0, "teardown"):
        assert next(p.packet_type for p in parse_rtcp(item.data)) == RTCP_SR
        assert parse_rtcp(item.data)[-1].packet_type == RTCP_BYE


def _push(depacketizer: H264Depacketizer, data: bytes) -> list[list[bytes]]:
    packet = RtpPacket.parse(data)
    return depacketizer.push(packet.payload, timestamp=packet.timestamp, marker=packet.marker)
