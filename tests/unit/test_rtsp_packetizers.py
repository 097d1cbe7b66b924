"""RTP header, H.264 (RFC 6184) and AAC (RFC 3640) packetizers, RTCP and SDP, all over bytes."""

from __future__ import annotations

import base64
import random
import struct

import pytest

from emulators.kit.rtsp.aac import (
    AacDepacketizer,
    audio_specific_config,
    packetize_aac,
    parse_aac_payload,
    parse_audio_specific_config,
)
from emulators.kit.rtsp.h264 import (
    FU_A,
    H264Depacketizer,
    join_annexb,
    packetize_access_unit,
    packetize_nal,
    profile_level_id,
    split_annexb,
)
from emulators.kit.rtsp.message import RtspMessageReader
from emulators.kit.rtsp.rtcp import (
    RTCP_BYE,
    RTCP_SDES,
    RTCP_SR,
    goodbye,
    ntp_timestamp,
    parse_rtcp,
    parse_sender_info,
    sender_report,
    source_description,
)
from emulators.kit.rtsp.rtp import MAX_RTP_PAYLOAD, PacketTemplate, RtpError, RtpPacket, RtpSender, is_rtcp
from emulators.kit.rtsp.sdp import describe_live, parse_sdp

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")


def _nal(kind: int, size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return bytes([0x60 | kind]) + bytes(rng.getrandbits(8) for _ in range(size - 1))


# -- RTP ----------------------------------------------------------------------------------------


def test_rtp_header_round_trips_with_marker_and_wrapped_fields() -> None:
    packet = RtpPacket(96, 65535, 2**32 - 1, 0x01020304, b"payload", marker=True)
    wire = packet.serialize()
    assert wire[:2] == b"\x80\xe0" and len(wire) == 12 + 7
    assert RtpPacket.parse(wire) == packet


def test_rtp_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 97, 1, 2, 3) + struct.pack("!I", 9)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    parsed = RtpPacket.parse(header + extension + b"abc" + b"\x00\x00\x03")
    assert (parsed.payload, parsed.csrc, parsed.payload_type) == (b"abc", (9,), 97)


def test_rtp_parse_rejects_short_and_wrong_version_packets() -> None:
    with pytest.raises(RtpError, match="at least 12"):
        RtpPacket.parse(b"\x80\x60")
    with pytest.raises(RtpError, match="version"):
        RtpPacket.parse(b"\x40" + b"\x00" * 11)


def test_sender_sequence_wraps_and_counts_payload_octets() -> None:
    sender = RtpSender(payload_type=96, ssrc=1, clock_rate=90000, first_sequence=65535, timestamp_base=2**32 - 10)
    first = RtpPacket.parse(sender.packet(b"ab", 0, False))
    second = RtpPacket.parse(sender.packet(b"cde", 0, True))
    assert (first.sequence_number, second.sequence_number) == (65535, 0)
    assert (sender.packet_count, sender.octet_count) == (2, 5)
    assert sender.timestamp_at(1 / 30) == (2**32 - 10 + 3000) % 2**32


def test_a_stamped_template_equals_the_packets_a_sender_builds_one_by_one() -> None:
    payloads = [p for p, _ in packetize_access_unit([SPS, PPS, _nal(5, 4000)])]
    template = PacketTemplate.build(payloads)
    one_by_one = RtpSender(payload_type=96, ssrc=0xCAFE, clock_rate=90000, first_sequence=65534, timestamp_base=0)
    stamped = RtpSender(payload_type=96, ssrc=0xCAFE, clock_rate=90000, first_sequence=65534, timestamp_base=0)
    expected = [one_by_one.packet(p, 1234, i == len(payloads) - 1) for i, p in enumerate(payloads)]
    out = bytearray(b"earlier")
    start = template.stamp(out, channel=6, payload_type=96, sequence=stamped.reserve(template, 1234),
                           timestamp=1234, ssrc=0xCAFE)
    assert start == len(b"earlier")
    assert [bytes(p) for p in template.packets(out, start)] == expected  # sequence wraps, marker on the last
    frames = RtspMessageReader("client").feed(bytes(out[start:]))
    assert [(f.channel, f.payload) for f in frames] == [(6, e) for e in expected]  # framed for interleaving
    assert (stamped.packet_count, stamped.octet_count) == (one_by_one.packet_count, one_by_one.octet_count)
    assert template.count == len(payloads) == stamped.packet_count


def test_a_template_refuses_an_empty_unit() -> None:
    with pytest.raises(ValueError, match="at least one RTP payload"):
        PacketTemplate.build([])


def test_rtcp_is_told_apart_from_rtp_by_payload_type() -> None:
    assert is_rtcp(sender_report(1, 0.0, 0, 0, 0))
    assert not is_rtcp(RtpPacket(96, 1, 1, 1, b"").serialize())


# -- H.264 --------------------------------------------------------------------------------------


def test_annexb_splits_on_three_and_four_byte_start_codes() -> None:
    stream = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01" + b"\x65\x88\x00\x00\x03\x01"
    assert split_annexb(stream) == [SPS, PPS, b"\x65\x88\x00\x00\x03\x01"]
    assert split_annexb(join_annexb([SPS, PPS])) == [SPS, PPS]


def test_a_nal_unit_that_fits_is_sent_as_a_single_nal_unit_packet() -> None:
    nal = _nal(5, MAX_RTP_PAYLOAD)
    assert packetize_nal(nal) == [nal]


def test_a_large_nal_unit_is_split_into_fu_a_fragments_with_start_and_end_bits() -> None:
    nal = _nal(5, 5000)
    fragments = packetize_nal(nal, max_payload=1400)
    assert len(fragments) == 4 and all(len(f) <= 1400 for f in fragments)
    assert all(f[0] == (nal[0] & 0xE0) | FU_A for f in fragments)  # F and NRI copied, type 28
    assert [f[1] & 0xC0 for f in fragments] == [0x80, 0x00, 0x00, 0x40]
    assert all(f[1] & 0x1F == 5 for f in fragments)
    assert bytes([nal[0]]) + b"".join(f[2:] for f in fragments) == nal


def test_marker_bit_is_set_on_the_last_packet_of_an_access_unit_only() -> None:
    packets = packetize_access_unit([SPS, PPS, _nal(5, 3000)])
    assert [marker for _, marker in packets] == [False, False, False, False, True]


def test_fu_a_fragmentation_round_trips_through_the_depacketizer() -> None:
    unit = [SPS, PPS, _nal(5, 7000, seed=2), _nal(1, 700, seed=3)]
    depacketizer = H264Depacketizer()
    rebuilt = []
    for seq, (payload, marker) in enumerate(packetize_access_unit(unit, max_payload=1000)):
        rebuilt += depacketizer.push(payload, timestamp=3000, marker=marker, sequence=seq)
    assert rebuilt == [unit]


def test_a_lost_fu_a_fragment_drops_that_nal_unit_and_is_counted() -> None:
    payloads = packetize_access_unit([_nal(5, 4000)], max_payload=1000)
    depacketizer = H264Depacketizer()
    out = []
    for seq, (payload, marker) in enumerate(payloads):
        if seq == 1:
            continue
        out += depacketizer.push(payload, timestamp=0, marker=marker, sequence=seq)
    assert out == [] and depacketizer.fragments_lost >= 1


def test_stap_a_aggregates_are_split_and_a_timestamp_change_ends_an_access_unit() -> None:
    stap = bytes([0x78]) + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    depacketizer = H264Depacketizer()
    assert depacketizer.push(stap, timestamp=0, marker=False) == []
    assert depacketizer.push(b"\x65\x01", timestamp=3000, marker=True) == [[SPS, PPS], [b"\x65\x01"]]


def test_profile_level_id_is_the_three_bytes_after_the_sps_header() -> None:
    assert profile_level_id(SPS) == "42C01E"
    with pytest.raises(ValueError, match="SPS"):
        profile_level_id(PPS)


# -- AAC ----------------------------------------------------------------------------------------


def test_audio_specific_config_for_aac_lc() -> None:
    assert audio_specific_config(44100, 1) == bytes.fromhex("1208")
    assert audio_specific_config(48000, 2) == bytes.fromhex("1190")
    assert parse_audio_specific_config(bytes.fromhex("1508")) == (2, 11025, 1)
    with pytest.raises(ValueError, match="sample_rate"):
        audio_specific_config(44000, 1)


def test_aac_payload_has_a_16_bit_au_header_with_13_bit_size_and_zero_index() -> None:
    frame = bytes(range(200))
    [(payload, marker)] = packetize_aac(frame)
    assert marker
    assert payload[:2] == b"\x00\x10"  # AU-headers-length: 16 bits
    assert payload[2:4] == (200 << 3).to_bytes(2, "big")
    assert payload[4:] == frame
    assert parse_aac_payload(payload) == [(200, frame)]


def test_an_aac_payload_with_several_access_units_is_split() -> None:
    payload = b"\x00\x20" + (3 << 3).to_bytes(2, "big") + (2 << 3).to_bytes(2, "big") + b"abcde"
    assert parse_aac_payload(payload) == [(3, b"abc"), (2, b"de")]


def test_a_large_aac_frame_is_fragmented_and_reassembled() -> None:
    frame = bytes(random.Random(4).getrandbits(8) for _ in range(3000))
    pieces = packetize_aac(frame, max_payload=1000)
    assert [m for _, m in pieces] == [False, False, False, True]
    assert all(parse_aac_payload(p)[0][0] == 3000 for p, _ in pieces)
    depacketizer = AacDepacketizer()
    out = [f for p, m in pieces for f in depacketizer.push(p, marker=m)]
    assert out == [frame]


def test_an_aac_frame_too_big_for_sizelength_13_is_refused() -> None:
    with pytest.raises(ValueError, match="sizelength=13"):
        packetize_aac(b"\x00" * 8192)


# -- RTCP ---------------------------------------------------------------------------------------


def test_sender_report_layout_follows_rfc_3550() -> None:
    report = sender_report(0xCAFEBABE, 1_700_000_000.5, 123456, 10, 1000)
    assert len(report) == 28
    first, packet_type, length = struct.unpack_from("!BBH", report)
    assert (first, packet_type, length) == (0x80, RTCP_SR, 6)
    ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", report, 4)
    assert (ssrc, rtp_ts, packets, octets) == (0xCAFEBABE, 123456, 10, 1000)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800 and (ntp & 0xFFFFFFFF) == 1 << 31
    assert parse_sender_info(parse_rtcp(report)[0]).unix_time == pytest.approx(1_700_000_000.5)


def test_sdes_and_bye_make_a_parseable_compound_packet() -> None:
    compound = sender_report(7, 0.0, 0, 0, 0) + source_description(7, "benchtwin") + goodbye(7, "stop")
    assert len(compound) % 4 == 0
    packets = parse_rtcp(compound)
    assert [p.packet_type for p in packets] == [RTCP_SR, RTCP_SDES, RTCP_BYE]
    assert all(p.ssrc == 7 for p in packets)
    assert b"benchtwin" in packets[1].body and b"stop" in packets[2].body


def test_ntp_timestamp_of_the_unix_epoch() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32


# -- SDP ----------------------------------------------------------------------------------------


def test_describe_sdp_announces_h264_and_aac_hbr_tracks() -> None:
    text = describe_live(sps=SPS, pps=PPS, fps=30, audio=(44100, 1, bytes.fromhex("1208")), session_id=42)
    assert text.endswith("\r\n")
    sdp = parse_sdp(text)
    video, audio = sdp.media
    assert (video.kind, video.formats, video.rtpmap) == ("video", ["96"], (96, "H264", 90000, None))
    fmtp = video.fmtp
    assert fmtp["packetization-mode"] == "1" and fmtp["profile-level-id"] == "42C01E"
    sps_b64, pps_b64 = fmtp["sprop-parameter-sets"].split(",")
    assert (base64.b64decode(sps_b64), base64.b64decode(pps_b64)) == (SPS, PPS)
    assert video.control == "trackID=0"
    assert audio.rtpmap == (97, "MPEG4-GENERIC", 44100, 1)
    assert audio.fmtp == {
        "streamtype": "5",
        "profile-level-id": "1",
        "mode": "AAC-hbr",
        "sizelength": "13",
        "indexlength": "3",
        "indexdeltalength": "3",
        "config": "1208",
    }
    assert audio.control == "trackID=1"


def test_describe_sdp_without_audio_has_one_media_section() -> None:
    sdp = parse_sdp(describe_live(sps=SPS, pps=PPS, fps=15, audio=None, session_id=1))
    assert [m.kind for m in sdp.media] == ["video"]


def test_sdp_parser_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        parse_sdp("v=0\r\nnonsense\r\n")
