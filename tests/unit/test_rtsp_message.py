"""RTSP message reader and Transport header: bytes in, messages out, no sockets."""

from __future__ import annotations

import pytest

from emulators.kit.rtsp.message import (
    Headers,
    InterleavedFrame,
    MessageError,
    RtspMessageReader,
    RtspRequest,
    RtspResponse,
    interleave,
)
from emulators.kit.rtsp.transport import TransportError, TransportSpec, parse_transport

OPTIONS = b"OPTIONS rtsp://127.0.0.1:8554/video RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: test\r\n\r\n"
ANNOUNCE = (
    b"ANNOUNCE rtsp://127.0.0.1/live RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 10\r\n\r\nv=0\r\ns=x\r\n"
)


def test_a_request_is_parsed_with_method_uri_headers_and_cseq() -> None:
    [request] = RtspMessageReader().feed(OPTIONS)
    assert isinstance(request, RtspRequest)
    assert (request.method, request.uri, request.version) == ("OPTIONS", "rtsp://127.0.0.1:8554/video", "RTSP/1.0")
    assert request.cseq == "1"
    assert request.headers.get("user-agent") == "test"


def test_pipelined_requests_in_one_chunk_come_out_in_order() -> None:
    messages = RtspMessageReader().feed(OPTIONS + ANNOUNCE + OPTIONS.replace(b"CSeq: 1", b"CSeq: 3"))
    assert [m.cseq for m in messages] == ["1", "2", "3"]  # type: ignore[union-attr]
    assert messages[1].body == b"v=0\r\ns=x\r\n"  # type: ignore[union-attr]


def test_a_request_fed_one_byte_at_a_time_appears_only_when_complete() -> None:
    reader = RtspMessageReader()
    seen: list = []
    for i in range(len(ANNOUNCE)):
        seen += reader.feed(ANNOUNCE[i : i + 1])
        if i < len(ANNOUNCE) - 1:
            assert seen == []
    assert len(seen) == 1 and seen[0].method == "ANNOUNCE" and seen[0].body.endswith(b"s=x\r\n")
    assert reader.buffered == 0


def test_interleaved_frames_between_requests_on_one_connection_are_split_out() -> None:
    rtcp = bytes(range(40))
    stream = interleave(1, rtcp) + OPTIONS + interleave(3, b"\x80" * 5) + ANNOUNCE
    reader = RtspMessageReader()
    messages = reader.feed(stream[:3]) + reader.feed(stream[3:50]) + reader.feed(stream[50:])
    assert messages[0] == InterleavedFrame(1, rtcp)
    assert isinstance(messages[1], RtspRequest) and messages[1].method == "OPTIONS"
    assert messages[2] == InterleavedFrame(3, b"\x80" * 5)
    assert isinstance(messages[3], RtspRequest) and messages[3].method == "ANNOUNCE"


def test_interleaved_header_is_dollar_channel_and_big_endian_length() -> None:
    assert interleave(2, b"abc") == b"$\x02\x00\x03abc"
    with pytest.raises(ValueError, match="channel"):
        interleave(256, b"")


def test_stray_crlf_between_messages_is_ignored() -> None:
    messages = RtspMessageReader().feed(b"\r\n" + OPTIONS + b"\r\n")
    assert len(messages) == 1


def test_binary_garbage_is_rejected_immediately() -> None:
    with pytest.raises(MessageError, match="not an RTSP message"):
        RtspMessageReader().feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")


def test_a_malformed_request_line_is_rejected() -> None:
    with pytest.raises(MessageError, match="request line"):
        RtspMessageReader().feed(b"hello there\r\n\r\n")


def test_a_bad_content_length_is_rejected_with_its_value() -> None:
    with pytest.raises(MessageError, match="Content-Length"):
        RtspMessageReader().feed(b"ANNOUNCE rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: lots\r\n\r\n")


def test_an_endless_head_is_rejected_rather_than_buffered() -> None:
    reader = RtspMessageReader()
    with pytest.raises(MessageError, match="exceeds"):
        reader.feed(b"OPTIONS rtsp://x/ RTSP/1.0\r\nX: " + b"a" * 20000)


def test_a_response_round_trips_through_the_client_reader() -> None:
    headers = Headers([("CSeq", "7"), ("Session", "ABC;timeout=60")])
    wire = RtspResponse(454, headers, b"gone\n").serialize()
    assert wire.startswith(b"RTSP/1.0 454 Session Not Found\r\n")
    assert b"Content-Length: 5\r\n" in wire
    [parsed] = RtspMessageReader("client").feed(wire)
    assert isinstance(parsed, RtspResponse)
    assert (parsed.status, parsed.cseq, parsed.body) == (454, "7", b"gone\n")


def test_session_id_drops_the_timeout_parameter() -> None:
    request = RtspRequest("PLAY", "rtsp://x/", Headers([("CSeq", "1"), ("session", "1234ABCD;timeout=60")]))
    assert request.session_id == "1234ABCD"


def test_tcp_interleaved_transport_is_parsed() -> None:
    [spec] = parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1")
    assert (spec.profile, spec.lower_transport, spec.unicast, spec.interleaved) == ("RTP/AVP", "TCP", True, (0, 1))


def test_udp_transport_with_client_ports_and_mode_is_parsed() -> None:
    [spec] = parse_transport("RTP/AVP;unicast;client_port=5000-5001;mode=record")
    assert (spec.lower_transport, spec.client_port, spec.mode) == ("UDP", (5000, 5001), "RECORD")


def test_transport_alternatives_keep_the_clients_order() -> None:
    specs = parse_transport("RTP/AVP/TCP;interleaved=2-3, RTP/AVP/UDP;unicast;client_port=6000")
    assert [s.lower_transport for s in specs] == ["TCP", "UDP"]
    assert specs[1].client_port == (6000, 6001)


def test_transport_errors_name_the_parameter() -> None:
    with pytest.raises(TransportError, match="client_port"):
        parse_transport("RTP/AVP;unicast;client_port=abc")
    with pytest.raises(TransportError, match="interleaved"):
        parse_transport("RTP/AVP/TCP;interleaved=300-301")
    with pytest.raises(TransportError, match="lower transport"):
        parse_transport("RTP/AVP/SCTP;unicast")


def test_the_server_transport_answer_names_ports_and_ssrc() -> None:
    answer = TransportSpec(client_port=(5000, 5001), server_port=(6000, 6001), ssrc=0xDEADBEEF).format()
    assert answer == "RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;ssrc=DEADBEEF"
    assert TransportSpec(lower_transport="TCP", interleaved=(2, 3)).format() == "RTP/AVP/TCP;unicast;interleaved=2-3"


def test_a_bare_lf_request_followed_by_a_crlf_one_splits_at_the_first_blank_line() -> None:
    lax = b"OPTIONS rtsp://x/ RTSP/1.0\nCSeq: 1\n\n"
    messages = RtspMessageReader().feed(lax + OPTIONS.replace(b"CSeq: 1", b"CSeq: 2"))
    assert [m.cseq for m in messages] == ["1", "2"]  # type: ignore[union-attr]


def test_a_head_over_the_limit_is_rejected_even_when_it_arrives_complete_in_one_read() -> None:
    head = b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n" + b"X-Pad: " + b"a" * 40_000 + b"\r\n\r\n"
    with pytest.raises(MessageError, match="exceeds 16384 bytes"):
        RtspMessageReader("server").feed(head)


def test_a_head_just_under_the_limit_in_one_read_is_accepted() -> None:
    head = b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nX-Pad: " + b"a" * 16_000 + b"\r\n\r\n"
    [message] = RtspMessageReader("server").feed(head)
    assert isinstance(message, RtspRequest) and message.cseq == "1"
