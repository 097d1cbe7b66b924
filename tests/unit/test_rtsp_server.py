"""The asyncio RTSP server over real loopback sockets, driven by a raw RTSP client written here."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket

import pytest

from emulators.kit.rtsp.h264 import join_annexb, nal_type, packetize_access_unit
from emulators.kit.rtsp.live import AacTrack, H264Track, LiveMedia
from emulators.kit.rtsp.message import Headers, InterleavedFrame, RtspMessageReader, RtspRequest, RtspResponse
from emulators.kit.rtsp.recorder import RtspRecorder
from emulators.kit.rtsp.rtcp import RTCP_BYE, RTCP_SR, parse_rtcp
from emulators.kit.rtsp.rtp import RtpPacket
from emulators.kit.rtsp.sdp import describe_live
from emulators.kit.rtsp.server import RtspServer
from emulators.kit.rtsp.transport import parse_transport

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")
TIMEOUT = 5.0


def idr(size: int = 3000) -> bytes:
    return join_annexb([SPS, PPS, b"\x65" + bytes(size)])


def slice_(size: int = 300) -> bytes:
    return join_annexb([b"\x41" + bytes(size)])


class RawClient:
    """Just enough RTSP client to drive the server byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str) -> None:
        self.reader, self.writer, self.url = reader, writer, url
        self.parser = RtspMessageReader("client")
        self.inbox: collections.deque = collections.deque()
        self.cseq = 0

    @classmethod
    async def connect(cls, port: int, path: str = "/video") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"rtsp://127.0.0.1:{port}{path}")

    async def _next(self) -> object:
        while not self.inbox:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise EOFError("server closed the connection")
            self.inbox.extend(self.parser.feed(data))
        return self.inbox.popleft()

    async def request(self, method: str, uri: str | None = None, body: bytes = b"", **headers: str) -> RtspResponse:
        self.cseq += 1
        items = [("CSeq", str(self.cseq))] + [(k.replace("_", "-"), v) for k, v in headers.items()]
        self.writer.write(RtspRequest(method, uri or self.url, Headers(items), body).serialize())
        await self.writer.drain()
        skipped = collections.deque()
        while True:
            message = await self._next()
            if isinstance(message, RtspResponse) and message.cseq == str(self.cseq):
                self.inbox.extendleft(reversed(skipped))  # keep media that arrived meanwhile
                return message
            skipped.append(message)

    async def frame(self) -> InterleavedFrame:
        while True:
            message = await self._next()
            if isinstance(message, InterleavedFrame):
                return message

    async def play_tcp(self) -> tuple[str, RtspResponse]:
        await self.request("DESCRIBE", Accept="application/sdp")
        first = await self.request("SETUP", self.url + "/trackID=0", Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
        session = first.headers["Session"].split(";")[0]
        await self.request(
            "SETUP", self.url + "/trackID=1", Transport="RTP/AVP/TCP;unicast;interleaved=2-3", Session=session
        )
        play = await self.request("PLAY", self.url + "/", Session=session, Range="npt=0.000-")
        assert play.status == 200
        return session, play

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class EventLog(list):
    """on_event sink that tests can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.disconnected = asyncio.Event()

    def __call__(self, kind: str, details: dict) -> None:
        self.append((kind, details))
        if kind == "client_disconnected":
            self.disconnected.set()


@pytest.fixture
async def live():
    media = LiveMedia(H264Track(320, 240, 30, SPS, PPS), AacTrack(44100, 1, b"\x12\x08"))
    events = EventLog()
    server = RtspServer(media, on_event=events, seed=3)
    await server.start()
    yield media, server, events
    await server.aclose()


def rtp_info(response: RtspResponse) -> dict[int, dict[str, str]]:
    result = {}
    for item in response.headers["RTP-Info"].split(","):
        fields = dict(part.split("=", 1) for part in item.split(";"))
        result[int(fields["url"].rsplit("=", 1)[1])] = fields
    return result


async def test_a_tcp_client_gets_interleaved_rtp_from_the_next_idr_matching_rtp_info(live) -> None:
    media, server, events = live
    client = await RawClient.connect(server.port)
    session, play = await client.play_tcp()
    info = rtp_info(play)
    media.publish_video(slice_(), 0.0, False)  # joined mid-GOP: must be skipped
    media.publish_video(idr(), 1 / 30, True)
    media.publish_audio(b"\x21" * 50, 0.04)
    first = await client.frame()
    assert first.channel == 0
    packet = RtpPacket.parse(first.payload)
    assert packet.sequence_number == int(info[0]["seq"]) and packet.timestamp == int(info[0]["rtptime"])
    assert nal_type(packet.payload) == 7
    channels = collections.Counter()
    while channels[2] < 1 or channels[1] < 1:
        frame = await client.frame()
        channels[frame.channel] += 1
    assert server.session_count == 1
    assert [k for k, _ in events][:2] == ["client_connected", "play"]
    teardown = await client.request("TEARDOWN", client.url + "/", Session=session)
    assert teardown.status == 200
    await client.close()
    assert server.session_count == 0


async def test_a_ticks_video_and_audio_go_to_each_tcp_client_in_one_write_with_the_first_report(live) -> None:
    media, server, _ = live
    clients = [await RawClient.connect(server.port) for _ in range(2)]
    try:
        for client in clients:
            await client.play_tcp()
        media.publish_video(idr(), 0.0, True)  # a producer's tick: video, then its audio frames
        media.publish_audio(b"\x21" * 50, 0.0)
        media.publish_audio(b"\x21" * 60, 0.02)
        for client in clients:
            channels = collections.Counter()
            while channels[2] < 2 or channels[1] < 1:  # both audio frames and the video SR
                channels[(await client.frame()).channel] += 1
        stats = server.session_stats()
        assert [s["writes"] for s in stats] == [1, 1] and [s["delivered"] for s in stats] == [3, 3]
    finally:
        for client in clients:
            await client.close()


async def test_a_udp_client_gets_rtp_and_sender_reports_on_its_ports_and_a_bye_at_teardown(live) -> None:
    media, server, _ = live
    loop = asyncio.get_running_loop()
    rtp_queue: asyncio.Queue[bytes] = asyncio.Queue()
    rtcp_queue: asyncio.Queue[bytes] = asyncio.Queue()
    rtp_transport, _ = await loop.create_datagram_endpoint(lambda: _Collect(rtp_queue), local_addr=("127.0.0.1", 0))
    rtcp_transport, _ = await loop.create_datagram_endpoint(lambda: _Collect(rtcp_queue), local_addr=("127.0.0.1", 0))
    rtp_port = rtp_transport.get_extra_info("sockname")[1]
    rtcp_port = rtcp_transport.get_extra_info("sockname")[1]
    client = await RawClient.connect(server.port, "")
    try:
        setup = await client.request(
            "SETUP", client.url + "/trackID=0", Transport=f"RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port}"
        )
        [answer] = parse_transport(setup.headers["Transport"])
        assert answer.client_port == (rtp_port, rtcp_port)
        assert answer.server_port is not None and answer.server_port[0] % 2 == 0
        session = setup.headers["Session"].split(";")[0]
        await client.request("PLAY", client.url, Session=session)
        media.publish_video(idr(), 0.0, True)
        packet = RtpPacket.parse(await asyncio.wait_for(rtp_queue.get(), TIMEOUT))
        assert packet.ssrc == answer.ssrc and nal_type(packet.payload) == 7
        report = parse_rtcp(await asyncio.wait_for(rtcp_queue.get(), TIMEOUT))
        assert report[0].packet_type == RTCP_SR
        await client.request("TEARDOWN", client.url, Session=session)
        goodbye = parse_rtcp(await asyncio.wait_for(rtcp_queue.get(), TIMEOUT))
        assert goodbye[-1].packet_type == RTCP_BYE and goodbye[-1].ssrc == answer.ssrc
    finally:
        await client.close()
        rtp_transport.close()
        rtcp_transport.close()


async def test_an_idle_udp_session_is_dropped_after_its_timeout() -> None:
    media = LiveMedia(H264Track(320, 240, 30, SPS, PPS), None)
    ended = asyncio.Event()
    server = RtspServer(media, session_timeout=0.3, on_event=lambda k, d: ended.set() if k == "teardown" else None)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        setup = await client.request("SETUP", client.url, Transport="RTP/AVP;unicast;client_port=9-10")
        assert setup.headers["Session"].endswith(";timeout=1")  # whole seconds, as RFC 2326 says
        await client.close()
        await asyncio.wait_for(ended.wait(), TIMEOUT)
        assert server.session_count == 0
    finally:
        await server.aclose()


async def test_a_slow_tcp_client_loses_frames_without_holding_back_a_fast_one() -> None:
    media = LiveMedia(H264Track(320, 240, 30, SPS, PPS), None)
    server = RtspServer(media, max_pending=4)
    await server.start()
    slow_sock = socket.socket()
    slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow_sock.connect(("127.0.0.1", server.port))
    slow = RawClient(*await asyncio.open_connection(sock=slow_sock), url=f"rtsp://127.0.0.1:{server.port}/")
    fast = await RawClient.connect(server.port)
    try:
        await slow.play_tcp()
        await fast.play_tcp()
        units = 120
        for index in range(units):
            media.publish_video(idr(25000) if index % 30 == 0 else slice_(25000), index / 30, index % 30 == 0)
            while True:  # the fast client keeps up: it sees each unit's last packet before the next
                packet = RtpPacket.parse((await fast.frame()).payload)
                if packet.marker and packet.payload_type == 96:
                    break
        by_drops = sorted(server.session_stats(), key=lambda s: s["dropped"])
        assert by_drops[0]["dropped"] == 0 and by_drops[0]["delivered"] == units
        assert by_drops[1]["dropped"] > 0 and by_drops[1]["pending"] <= 4
    finally:
        await fast.close()
        await slow.close()
        await server.aclose()


async def test_garbage_gets_a_400_and_the_connection_is_closed(live) -> None:
    _, server, _ = live
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data.startswith(b"RTSP/1.0 400 Bad Request\r\n")
    writer.close()


async def test_several_clients_play_at_once(live) -> None:
    media, server, _ = live
    clients = [await RawClient.connect(server.port, f"/cam{i}") for i in range(3)]
    try:
        for client in clients:
            await client.play_tcp()
        assert server.session_count == 3
        media.publish_video(idr(), 0.0, True)
        firsts = [RtpPacket.parse((await c.frame()).payload) for c in clients]
        assert all(nal_type(p.payload) == 7 for p in firsts)
        assert len({p.ssrc for p in firsts}) == 3  # each session its own SSRC
    finally:
        for client in clients:
            await client.close()


async def test_closing_the_media_sends_bye_and_ends_interleaved_clients(live) -> None:
    media, server, _events = live
    client = await RawClient.connect(server.port)
    await client.play_tcp()
    media.publish_video(idr(), 0.0, True)
    media.close()
    kinds = []
    with pytest.raises(EOFError):
        while True:
            frame = await client.frame()
            if frame.channel in (1, 3):
                kinds += [p.packet_type for p in parse_rtcp(frame.payload)]
    assert RTCP_BYE in kinds
    await client.close()


async def test_aclose_says_bye_to_udp_clients_and_frees_the_port() -> None:
    media = LiveMedia(H264Track(320, 240, 30, SPS, PPS), None)
    server = RtspServer(media)
    await server.start()
    port = server.port
    loop = asyncio.get_running_loop()
    rtcp_queue: asyncio.Queue[bytes] = asyncio.Queue()
    rtcp, _ = await loop.create_datagram_endpoint(lambda: _Collect(rtcp_queue), local_addr=("127.0.0.1", 0))
    rtcp_port = rtcp.get_extra_info("sockname")[1]
    client = await RawClient.connect(port)
    tasks_before = asyncio.all_tasks()
    try:
        setup = await client.request(
            "SETUP", client.url, Transport=f"RTP/AVP;unicast;client_port={rtcp_port - 1}-{rtcp_port}"
        )
        await client.request("PLAY", client.url, Session=setup.headers["Session"].split(";")[0])
        await server.aclose()
        bye = parse_rtcp(await asyncio.wait_for(rtcp_queue.get(), TIMEOUT))
        assert bye[-1].packet_type == RTCP_BYE
        assert server.session_count == 0
        assert not {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
        again = RtspServer(media, port=port)
        await again.start()  # the port is free again
        await again.aclose()
    finally:
        await client.close()
        rtcp.close()


async def test_starting_on_a_taken_port_raises_oserror(live) -> None:
    media, server, _ = live
    with pytest.raises(OSError):
        await RtspServer(media, port=server.port).start()


async def test_events_cover_connect_play_teardown_and_disconnect(live) -> None:
    _media, server, events = live
    client = await RawClient.connect(server.port)
    session, _ = await client.play_tcp()
    await client.request("TEARDOWN", client.url, Session=session)
    with pytest.raises(EOFError):
        while True:  # an RTCP BYE may come first, then the server closes
            await client.frame()
    await client.close()
    await asyncio.wait_for(events.disconnected.wait(), TIMEOUT)
    kinds = [k for k, _ in events]
    assert kinds == ["client_connected", "play", "teardown", "client_disconnected"]
    teardown = dict(events)["teardown"]
    assert teardown["session"] == session and teardown["reason"] == "teardown"


class _Collect(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


async def test_pipelined_requests_on_one_write_are_answered_in_order(live) -> None:
    _, server, _ = live
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    url = f"rtsp://127.0.0.1:{server.port}/"
    writer.write(b"".join(RtspRequest(m, url, Headers([("CSeq", str(i))])).serialize() for i, m in
                          enumerate(["OPTIONS", "DESCRIBE", "GET_PARAMETER"], start=1)))  # fmt: skip
    parser = RtspMessageReader("client")
    responses: list = []
    while len(responses) < 3:
        responses += parser.feed(await asyncio.wait_for(reader.read(65536), TIMEOUT))
    assert [(r.cseq, r.status) for r in responses] == [("1", 200), ("2", 200), ("3", 200)]
    assert responses[1].headers["Content-Type"] == "application/sdp"
    writer.close()


async def test_the_recorder_keeps_what_a_publisher_sends_over_its_socket() -> None:
    recorder = RtspRecorder(seed=2)
    await recorder.start()
    client = await RawClient.connect(recorder.port, "/live")
    try:
        sdp = describe_live(sps=SPS, pps=PPS, fps=30, audio=None, session_id=1).encode()
        assert (await client.request("ANNOUNCE", body=sdp, Content_Type="application/sdp")).status == 200
        setup = await client.request(
            "SETUP", client.url + "/trackID=0", Transport="RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"
        )
        session = setup.headers["Session"].split(";")[0]
        assert (await client.request("RECORD", Session=session)).status == 200
        idr_nal = b"\x65" + bytes(4000)
        for seq, (payload, marker) in enumerate(packetize_access_unit([SPS, PPS, idr_nal])):
            client.writer.write(
                InterleavedFrame(0, RtpPacket(96, seq, 3000, 9, payload, marker).serialize()).serialize()
            )
        await recorder.wait_for(lambda r: len(r.video) == 1, within=TIMEOUT)
        assert recorder.video[0].nals == (SPS, PPS, idr_nal)
        assert recorder.parameter_sets() == [SPS, PPS]
        await client.request("TEARDOWN", Session=session)
        await recorder.wait_for(lambda r: not r.recording, within=TIMEOUT)
    finally:
        await client.close()
        await recorder.aclose()
