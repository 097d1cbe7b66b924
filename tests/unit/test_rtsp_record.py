"""The sans-I/O record core (ANNOUNCE/SETUP mode=record/RECORD) and its Basic auth, over bytes."""

from __future__ import annotations

import base64
import hashlib
import random
import re

import pytest

from emulators.kit.rtsp.aac import packetize_aac
from emulators.kit.rtsp.h264 import packetize_access_unit, parse_sprop_parameter_sets
from emulators.kit.rtsp.message import Headers, InterleavedFrame, RtspRequest
from emulators.kit.rtsp.record import RecordCore
from emulators.kit.rtsp.rtp import RtpPacket
from emulators.kit.rtsp.sdp import describe_live
from emulators.kit.rtsp.transport import parse_transport

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")
URL = "rtsp://127.0.0.1:8554/live"
SDP = describe_live(sps=SPS, pps=PPS, fps=30, audio=(44100, 1, b"\x12\x08"), session_id=5).encode()


class Publisher:
    """Sends what a push client sends, with incrementing CSeq."""

    def __init__(self, core: RecordCore, auth: str | None = None) -> None:
        self.core, self.auth, self.cseq, self.session = core, auth, 0, None

    def send(self, method: str, uri: str = URL, body: bytes = b"", **headers: str):
        self.cseq += 1
        items = [("CSeq", str(self.cseq))] + [(k.replace("_", "-"), v) for k, v in headers.items()]
        if self.auth:
            items.append(("Authorization", self.auth))
        if self.session and "Session" not in headers:
            items.append(("Session", self.session))
        reply = self.core.handle(RtspRequest(method, uri, Headers(items), body))
        if "Session" in reply.response.headers and method == "SETUP":
            self.session = reply.response.headers["Session"].split(";")[0]
        return reply

    def start_recording(self) -> None:
        assert self.send("ANNOUNCE", body=SDP, Content_Type="application/sdp").response.status == 200
        video = self.send("SETUP", URL + "/trackID=0", Transport="RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
        assert video.response.status == 200
        audio = self.send("SETUP", URL + "/trackID=1", Transport="RTP/AVP/TCP;unicast;interleaved=2-3;mode=record")
        assert audio.response.status == 200
        assert self.send("RECORD", Range="npt=0.000-").response.status == 200


def rtp_frames(channel: int, payloads: list[tuple[bytes, bool]], pt: int, timestamp: int, first_seq: int = 0):
    return [
        InterleavedFrame(channel, RtpPacket(pt, first_seq + i, timestamp, 1, payload, marker).serialize())
        for i, (payload, marker) in enumerate(payloads)
    ]


def test_a_publisher_announces_sets_up_records_and_its_media_is_depacketized() -> None:
    core = RecordCore(rng=random.Random(1))
    publisher = Publisher(core)
    publisher.start_recording()
    assert core.recording and core.announced_sdp == SDP.decode()
    idr = b"\x65" + bytes(range(256)) * 20
    for frame in rtp_frames(0, packetize_access_unit([SPS, PPS, idr]), 96, 9000):
        core.receive(frame)
    for frame in rtp_frames(2, packetize_aac(b"\x21" * 300), 97, 1024):
        core.receive(frame)
    core.receive(InterleavedFrame(1, b"\x80\xc8\x00\x06" + bytes(24)))  # an SR from the publisher
    assert [u.nals for u in core.video] == [(SPS, PPS, idr)]
    assert core.video[0].timestamp == 9000 and core.video[0].annexb.startswith(b"\x00\x00\x00\x01" + SPS)
    assert [a.frame for a in core.audio] == [b"\x21" * 300]
    assert core.tracks[0].rtcp_packets == 1
    assert publisher.send("TEARDOWN").close
    assert not core.recording
    assert [r.method for r in core.requests] == ["ANNOUNCE", "SETUP", "SETUP", "RECORD", "TEARDOWN"]


def test_media_before_record_is_rejected_and_counted() -> None:
    core = RecordCore()
    core.receive(InterleavedFrame(0, RtpPacket(96, 1, 1, 1, b"\x65\x00", True).serialize()))
    assert core.video == [] and core.rejected_frames == 1


def test_setup_answers_the_interleaved_channels_in_record_mode() -> None:
    core = RecordCore()
    publisher = Publisher(core)
    publisher.send("ANNOUNCE", body=SDP, Content_Type="application/sdp")
    reply = publisher.send("SETUP", URL + "/trackID=1", Transport="RTP/AVP/TCP;unicast;interleaved=2-3;mode=record")
    [answer] = parse_transport(reply.response.headers["Transport"])
    assert (answer.interleaved, answer.mode) == ((2, 3), "RECORD")
    assert reply.response.headers["Session"].endswith(";timeout=60")


def test_setup_before_announce_is_455() -> None:
    reply = Publisher(RecordCore()).send(
        "SETUP", URL + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1;mode=record"
    )
    assert reply.response.status == 455 and b"ANNOUNCE" in reply.response.body


def test_udp_or_play_mode_setup_is_461_for_a_recorder() -> None:
    publisher = Publisher(RecordCore())
    publisher.send("ANNOUNCE", body=SDP, Content_Type="application/sdp")
    udp = publisher.send("SETUP", URL + "/trackID=0", Transport="RTP/AVP;unicast;client_port=5000-5001;mode=record")
    play = publisher.send("SETUP", URL + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1")
    assert udp.response.status == play.response.status == 461
    assert b"mode=record" in udp.response.body


def test_setup_of_media_not_announced_is_404_naming_the_controls() -> None:
    publisher = Publisher(RecordCore())
    publisher.send("ANNOUNCE", body=SDP, Content_Type="application/sdp")
    reply = publisher.send("SETUP", URL + "/streamid=9", Transport="RTP/AVP/TCP;interleaved=0-1;mode=record")
    assert reply.response.status == 404 and b"trackID=0" in reply.response.body


def test_announce_needs_an_sdp_body() -> None:
    publisher = Publisher(RecordCore())
    assert publisher.send("ANNOUNCE", body=b"{}", Content_Type="application/json").response.status == 415
    bad = publisher.send("ANNOUNCE", body=b"hello", Content_Type="application/sdp")
    assert bad.response.status == 400 and b"SDP" in bad.response.body


def test_record_without_the_session_is_454() -> None:
    publisher = Publisher(RecordCore())
    publisher.send("ANNOUNCE", body=SDP, Content_Type="application/sdp")
    assert publisher.send("RECORD").response.status == 454


def test_with_credentials_every_request_is_challenged_until_basic_auth_matches() -> None:
    core = RecordCore(credentials=("misty", "secret"))
    challenged = Publisher(core).send("OPTIONS")
    assert challenged.response.status == 401
    assert challenged.response.headers["WWW-Authenticate"] == 'Basic realm="benchtwin"'
    wrong = "Basic " + base64.b64encode(b"misty:guess").decode()
    assert Publisher(core, wrong).send("OPTIONS").response.status == 401
    right = Publisher(core, "Basic " + base64.b64encode(b"misty:secret").decode())
    assert right.send("OPTIONS").response.status == 200
    right.start_recording()
    assert core.recording


def test_pull_methods_are_405_on_a_recorder() -> None:
    reply = Publisher(RecordCore()).send("PLAY")
    assert reply.response.status == 405 and "RECORD" in reply.response.headers["Allow"]


def test_sprop_parameter_sets_decode_to_nal_units() -> None:
    value = f"{base64.b64encode(SPS).decode()}, {base64.b64encode(PPS).decode()}"
    assert parse_sprop_parameter_sets(value) == [SPS, PPS]
    with pytest.raises(ValueError, match="base64"):
        parse_sprop_parameter_sets("not base64!")


def test_digest_auth_challenges_with_a_nonce_and_accepts_the_rfc_2069_response() -> None:
    core = RecordCore(credentials=("misty", "secret"), auth_scheme="digest", rng=random.Random(3))
    challenge = Publisher(core).send("OPTIONS").response
    assert challenge.status == 401
    header = challenge.headers["WWW-Authenticate"]
    assert header.startswith('Digest realm="benchtwin"')
    nonce = re.search(r'nonce="([^"]+)"', header).group(1)  # type: ignore[union-attr]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    def authorization(password: str) -> str:
        response = md5(f"{md5(f'misty:benchtwin:{password}')}:{nonce}:{md5(f'OPTIONS:{URL}')}")
        return f'Digest username="misty", realm="benchtwin", nonce="{nonce}", uri="{URL}", response="{response}"'

    assert Publisher(core, authorization("guess")).send("OPTIONS").response.status == 401
    assert Publisher(core, authorization("secret")).send("OPTIONS").response.status == 200
    basic = "Basic " + base64.b64encode(b"misty:secret").decode()
    assert Publisher(core, basic).send("OPTIONS").response.status == 401  # the scheme offered is Digest
