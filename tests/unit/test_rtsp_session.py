"""The sans-I/O RTSP server core: request in, response and effects out; no sockets, time given."""

from __future__ import annotations

import random

import pytest

from emulators.kit.rtsp.message import Headers, RtspMessageReader, RtspRequest, RtspResponse
from emulators.kit.rtsp.sdp import describe_live, parse_sdp
from emulators.kit.rtsp.session import (
    CloseConnection,
    ConnectionInfo,
    EndSession,
    PresentationTrack,
    RtspServerCore,
    SessionState,
    StartPlaying,
)
from emulators.kit.rtsp.transport import parse_transport

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")
URL = "rtsp://127.0.0.1:8554/video"
CONN = ConnectionInfo(1, "127.0.0.1")
OTHER_CONN = ConnectionInfo(2, "127.0.0.1")


class CountingPorts:
    """Hands out consecutive even/odd pairs, like the socket allocator but without binding."""

    def __init__(self) -> None:
        self.next_port = 40000
        self.held: dict[str, list[tuple[int, int]]] = {}

    def allocate(self, session_id: str, track_id: int) -> tuple[int, int]:
        pair = (self.next_port, self.next_port + 1)
        self.next_port += 2
        self.held.setdefault(session_id, []).append(pair)
        return pair

    def release(self, session_id: str) -> None:
        self.held.pop(session_id, None)


@pytest.fixture
def ports() -> CountingPorts:
    return CountingPorts()


@pytest.fixture
def core(ports: CountingPorts) -> RtspServerCore:
    return RtspServerCore(
        tracks=[PresentationTrack(0, 96, 90000), PresentationTrack(1, 97, 44100)],
        describe=lambda url: describe_live(sps=SPS, pps=PPS, fps=30, audio=(44100, 1, b"\x12\x08"), session_id=1),
        udp_ports=ports,
        rng=random.Random(7),
        session_timeout=60,
    )


def request(method: str, uri: str = URL, cseq: int = 1, body: bytes = b"", **headers: str):
    items = [("CSeq", str(cseq))] + [(k.replace("_", "-"), v) for k, v in headers.items()]
    return RtspRequest(method, uri, Headers(items), body)


def setup_tcp(core: RtspServerCore, now: float = 0.0) -> str:
    first = core.handle(
        request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP/TCP;unicast;interleaved=0-1"), CONN, now
    )
    session = first.response.headers["Session"].split(";")[0]
    core.handle(
        request("SETUP", URL + "/trackID=1", 3, Transport="RTP/AVP/TCP;unicast;interleaved=2-3", Session=session),
        CONN,
        now,
    )
    return session


def test_options_lists_the_public_methods_and_echoes_cseq(core: RtspServerCore) -> None:
    reply = core.handle(request("OPTIONS", cseq=41), CONN, 0)
    assert reply.response.status == 200
    assert reply.response.cseq == "41"
    assert reply.response.headers["Public"] == "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"


@pytest.mark.parametrize("path", ["", "/", "/video", "/any/thing?x=1"])
def test_describe_answers_on_any_path_with_sdp_and_content_base(core: RtspServerCore, path: str) -> None:
    uri = "rtsp://127.0.0.1:8554" + path
    reply = core.handle(request("DESCRIBE", uri, 2, Accept="application/sdp"), CONN, 0)
    assert reply.response.status == 200
    assert reply.response.headers["Content-Type"] == "application/sdp"
    assert reply.response.headers["Content-Base"] == uri.rstrip("/") + "/"
    assert [m.control for m in parse_sdp(reply.response.body.decode()).media] == ["trackID=0", "trackID=1"]


def test_a_request_without_cseq_is_a_400_that_says_so(core: RtspServerCore) -> None:
    reply = core.handle(RtspRequest("OPTIONS", URL, Headers()), CONN, 0)
    assert reply.response.status == 400 and b"CSeq" in reply.response.body


def test_setup_over_tcp_answers_interleaved_channels_ssrc_and_session_timeout(core: RtspServerCore) -> None:
    reply = core.handle(
        request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP/TCP;unicast;interleaved=0-1"), CONN, 0
    )
    assert reply.response.status == 200
    [answer] = parse_transport(reply.response.headers["Transport"])
    assert (answer.lower_transport, answer.interleaved) == ("TCP", (0, 1))
    assert answer.ssrc is not None
    session_header = reply.response.headers["Session"]
    assert session_header.endswith(";timeout=60")
    assert core.sessions[session_header.split(";")[0]].state is SessionState.READY


def test_setup_over_tcp_without_channels_gets_a_free_pair(core: RtspServerCore) -> None:
    session = core.handle(request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP/TCP;unicast"), CONN, 0)
    sid = session.response.headers["Session"].split(";")[0]
    second = core.handle(request("SETUP", URL + "/trackID=1", 3, Transport="RTP/AVP/TCP", Session=sid), CONN, 0)
    assert parse_transport(second.response.headers["Transport"])[0].interleaved == (2, 3)


def test_setup_over_udp_answers_server_ports_from_the_allocator(core: RtspServerCore, ports: CountingPorts) -> None:
    reply = core.handle(
        request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP;unicast;client_port=5000-5001"), CONN, 0
    )
    [answer] = parse_transport(reply.response.headers["Transport"])
    assert (answer.client_port, answer.server_port) == ((5000, 5001), (40000, 40001))
    sid = reply.response.headers["Session"].split(";")[0]
    assert ports.held[sid] == [(40000, 40001)]


def test_the_first_acceptable_transport_alternative_wins(core: RtspServerCore) -> None:
    header = "RTP/AVP;multicast, RTP/SAVP;unicast;client_port=1-2, RTP/AVP/TCP;unicast;interleaved=4-5"
    reply = core.handle(request("SETUP", URL + "/trackID=0", 2, Transport=header), CONN, 0)
    assert parse_transport(reply.response.headers["Transport"])[0].interleaved == (4, 5)


@pytest.mark.parametrize(
    ("transport", "reason"),
    [
        ("RTP/AVP;multicast", b"multicast"),
        ("RTP/AVP;unicast", b"client_port"),
        ("RTP/SAVP;unicast;client_port=5000-5001", b"RTP/AVP"),
        ("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", b"mode"),
        ("RTP/AVP/SCTP;unicast", b"lower transport"),
    ],
)
def test_unusable_transports_get_461_naming_the_problem(core: RtspServerCore, transport: str, reason: bytes) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=0", 2, Transport=transport), CONN, 0)
    assert reply.response.status == 461
    assert reason in reply.response.body


def test_setup_without_transport_is_461(core: RtspServerCore) -> None:
    assert core.handle(request("SETUP", URL + "/trackID=0"), CONN, 0).response.status == 461


def test_mixing_tcp_and_udp_in_one_session_is_461(core: RtspServerCore) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP/TCP;interleaved=0-1"), CONN, 0)
    sid = reply.response.headers["Session"].split(";")[0]
    mixed = core.handle(
        request("SETUP", URL + "/trackID=1", 3, Transport="RTP/AVP;unicast;client_port=6000-6001", Session=sid), CONN, 0
    )
    assert mixed.response.status == 461 and b"TCP" in mixed.response.body


def test_reusing_interleaved_channels_in_a_session_is_461(core: RtspServerCore) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=0", 2, Transport="RTP/AVP/TCP;interleaved=0-1"), CONN, 0)
    sid = reply.response.headers["Session"].split(";")[0]
    clash = core.handle(
        request("SETUP", URL + "/trackID=1", 3, Transport="RTP/AVP/TCP;interleaved=1-2", Session=sid), CONN, 0
    )
    assert clash.response.status == 461 and b"already in use" in clash.response.body


def test_setup_on_the_aggregate_url_of_two_tracks_is_459(core: RtspServerCore) -> None:
    reply = core.handle(request("SETUP", URL, 2, Transport="RTP/AVP/TCP;interleaved=0-1"), CONN, 0)
    assert reply.response.status == 459 and b"trackID=0" in reply.response.body


def test_setup_of_a_track_that_does_not_exist_is_404(core: RtspServerCore) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=7", 5, Transport="RTP/AVP/TCP;interleaved=0-1"), CONN, 0)
    assert (reply.response.status, reply.response.cseq) == (404, "5")


def test_unknown_session_is_454_for_setup_play_teardown_and_get_parameter(core: RtspServerCore) -> None:
    for method in ("PLAY", "TEARDOWN", "GET_PARAMETER"):
        assert core.handle(request(method, Session="NOPE"), CONN, 0).response.status == 454
    setup = request("SETUP", URL + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1", Session="NOPE")
    assert core.handle(setup, CONN, 0).response.status == 454
    assert core.handle(request("PLAY"), CONN, 0).response.status == 454  # no Session header at all


def test_play_starts_streaming_and_reports_rtp_info_for_each_track(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    reply = core.handle(request("PLAY", URL + "/", 4, Session=sid, Range="npt=0.000-"), CONN, 1)
    assert reply.response.status == 200
    assert reply.response.headers["Range"] == "npt=0.000-"
    session = core.sessions[sid]
    assert reply.effects == [StartPlaying(session)] and session.state is SessionState.PLAYING
    infos = reply.response.headers["RTP-Info"].split(",")
    for info, track_id in zip(infos, (0, 1), strict=True):
        fields = dict(item.split("=", 1) for item in info.split(";"))
        sender = session.tracks[track_id].sender
        assert fields["url"] == f"{URL}/trackID={track_id}"
        assert int(fields["seq"]) == sender.first_sequence and int(fields["rtptime"]) == sender.timestamp_base


def test_a_second_play_is_answered_without_restarting(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    core.handle(request("PLAY", Session=sid), CONN, 0)
    again = core.handle(request("PLAY", cseq=9, Session=sid), CONN, 0)
    assert again.response.status == 200 and again.effects == []


def test_setup_while_playing_is_455(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    core.handle(request("PLAY", Session=sid), CONN, 0)
    late = core.handle(
        request("SETUP", URL + "/trackID=1", Transport="RTP/AVP/TCP;interleaved=6-7", Session=sid), CONN, 0
    )
    assert late.response.status == 455


def test_play_on_a_single_track_url_is_460(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    assert core.handle(request("PLAY", URL + "/trackID=0", Session=sid), CONN, 0).response.status == 460


def test_play_from_a_seek_position_on_a_live_stream_is_457(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    assert core.handle(request("PLAY", Session=sid, Range="npt=10-"), CONN, 0).response.status == 457


def test_teardown_ends_the_session_and_closes_the_connection(core: RtspServerCore) -> None:
    sid = setup_tcp(core)
    reply = core.handle(request("TEARDOWN", Session=sid), CONN, 0)
    assert reply.response.status == 200
    assert isinstance(reply.effects[0], EndSession) and reply.effects[0].reason == "teardown"
    assert reply.effects[1:] == [CloseConnection()]
    assert sid not in core.sessions


def test_keep_alive_requests_refresh_a_udp_session_and_idle_ones_expire(
    core: RtspServerCore, ports: CountingPorts
) -> None:
    reply = core.handle(
        request("SETUP", URL + "/trackID=0", Transport="RTP/AVP;unicast;client_port=5000-5001"), CONN, 0
    )
    sid = reply.response.headers["Session"].split(";")[0]
    assert core.handle(request("GET_PARAMETER", Session=sid), CONN, 50).response.status == 200
    assert core.handle(request("OPTIONS", Session=sid), CONN, 100).response.headers["Session"].startswith(sid)
    assert core.expire(150) == []
    [ended] = core.expire(160.5)
    assert (ended.session.id, ended.reason) == (sid, "timeout")
    assert sid not in ports.held


def test_closing_the_connection_ends_its_sessions_except_udp_ones_that_are_playing(core: RtspServerCore) -> None:
    # Issue 17 names the old rule (every UDP session outlived its connection) as the defect: a READY UDP session
    # held two sockets per track for a whole timeout after its client was gone.
    tcp = setup_tcp(core)
    udp = core.handle(request("SETUP", URL + "/trackID=0", Transport="RTP/AVP;unicast;client_port=5000-5001"), CONN, 0)
    udp_id = udp.response.headers["Session"].split(";")[0]
    playing = core.handle(
        request("SETUP", URL + "/trackID=0", Transport="RTP/AVP;unicast;client_port=5002-5003"), CONN, 0
    )
    playing_id = playing.response.headers["Session"].split(";")[0]
    assert core.handle(request("PLAY", URL, Session=playing_id), CONN, 0).response.status == 200
    ended = core.connection_closed(CONN.id)
    assert sorted(e.session.id for e in ended) == sorted([tcp, udp_id])
    assert list(core.sessions) == [playing_id]
    [expired] = core.expire(61)  # with no RTCP from the client it times out like any idle UDP session
    assert expired.session.id == playing_id


def test_sessions_are_capped_per_connection_with_503_naming_the_limit(ports: CountingPorts) -> None:
    core = RtspServerCore(
        tracks=[PresentationTrack(0, 96, 90000)], describe=lambda url: "", udp_ports=ports,
        rng=random.Random(1), max_sessions=10, max_sessions_per_connection=3,
    )
    transport = "RTP/AVP;unicast;client_port=5000-5001"
    answers = [core.handle(request("SETUP", URL, cseq=n, Transport=transport), CONN, 0) for n in range(5)]
    assert [a.response.status for a in answers] == [200, 200, 200, 503, 503]
    assert b"per-connection limit" in answers[3].response.body
    assert sum(len(held) for held in ports.held.values()) == 3  # no ports were bound for the refused ones
    assert core.handle(request("SETUP", URL, Transport=transport), OTHER_CONN, 0).response.status == 200


def test_sessions_are_capped_per_server_with_503(ports: CountingPorts) -> None:
    core = RtspServerCore(
        tracks=[PresentationTrack(0, 96, 90000)], describe=lambda url: "", udp_ports=ports,
        rng=random.Random(1), max_sessions=4, max_sessions_per_connection=3,
    )
    transport = "RTP/AVP;unicast;client_port=5000-5001"
    statuses = [
        core.handle(request("SETUP", URL, Transport=transport), ConnectionInfo(n, "127.0.0.1"), 0).response.status
        for n in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 503, 503]
    assert len(core.sessions) == 4


@pytest.mark.parametrize("transport", [";;;", ";", " ; ; ", ",;,"])
def test_a_transport_of_only_separators_is_461_not_a_dropped_connection(core: RtspServerCore, transport: str) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=0", Transport=transport), CONN, 0)
    assert reply.response.status == 461
    assert b"RTP/AVP" in reply.response.body


def test_interleaved_tracks_must_be_set_up_on_the_sessions_own_connection(core: RtspServerCore) -> None:
    reply = core.handle(request("SETUP", URL + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1"), CONN, 0)
    sid = reply.response.headers["Session"].split(";")[0]
    other = core.handle(
        request("SETUP", URL + "/trackID=1", Transport="RTP/AVP/TCP;interleaved=2-3", Session=sid), OTHER_CONN, 0
    )
    assert other.response.status == 461


def test_unsupported_known_methods_are_405_with_allow_and_unknown_ones_501(core: RtspServerCore) -> None:
    paused = core.handle(request("PAUSE"), CONN, 0).response
    assert paused.status == 405 and "PLAY" in paused.headers["Allow"]
    assert core.handle(request("FROBNICATE"), CONN, 0).response.status == 501


def test_get_parameter_with_a_parameter_name_is_451(core: RtspServerCore) -> None:
    reply = core.handle(request("GET_PARAMETER", body=b"position\r\n"), CONN, 0)
    assert reply.response.status == 451 and b"position" in reply.response.body


def test_rtsp_2_requests_are_505(core: RtspServerCore) -> None:
    reply = core.handle(RtspRequest("OPTIONS", URL, Headers([("CSeq", "1")]), version="RTSP/2.0"), CONN, 0)
    assert reply.response.status == 505


def test_responses_serialize_to_bytes_a_client_reader_accepts(core: RtspServerCore) -> None:
    reply = core.handle(request("DESCRIBE", cseq=3), CONN, 0)
    [parsed] = RtspMessageReader("client").feed(reply.response.serialize())
    assert isinstance(parsed, RtspResponse) and parsed.body == reply.response.body


def test_a_required_option_is_551_with_unsupported(core: RtspServerCore) -> None:
    reply = core.handle(request("OPTIONS", Require="play.basic"), CONN, 0)
    assert reply.response.status == 551 and reply.response.headers["Unsupported"] == "play.basic"


def test_track_urls_under_a_content_base_with_a_query_still_resolve(core: RtspServerCore) -> None:
    base = core.handle(request("DESCRIBE", URL + "?token=1"), CONN, 0).response.headers["Content-Base"]
    reply = core.handle(request("SETUP", base + "trackID=1", Transport="RTP/AVP/TCP;interleaved=2-3"), CONN, 0)
    assert reply.response.status == 200
