"""Behaviour of Misty's AV streaming (misty.md §3.2-3.4): the rtspd server, RTMP/RTSP push, audio, faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import struct
import threading
from dataclasses import dataclass, replace

import aiohttp
import av
import numpy as np
import pytest

from clients.stamp import FrameStamp, StreamKind, read_stamp
from emulators.kit.rtsp.recorder import RtspRecorder
from emulators.misty.av import AvConnectError, AvStream
from emulators.misty.av_push import PushTarget
from emulators.misty.device import MistyEmulator
from emulators.misty.media import AvProducer, AvTone, effective_audio_bitrate
from emulators.misty.model import AvRequest
from emulators.misty.scene import BAR, SKY, MistyScene

PARAMS = AvRequest(
    url="rtspd:0",
    width=320,
    height=240,
    frame_rate=30,
    video_bitrate=300_000,
    audio_bitrate=64_000,
    sample_rate=16_000,
    username=None,
    password=None,
)


@pytest.fixture
async def misty(emulator_factory) -> MistyEmulator:
    return await emulator_factory("misty")


def av_stream(emulator: MistyEmulator, url: str = "rtspd:0", stream_id: int = 1, audio: bool = True,
              **changes: object) -> AvStream:
    params = replace(PARAMS, url=url, **changes)  # type: ignore[arg-type]
    return AvStream(
        params,
        host="127.0.0.1",
        stream_id=stream_id,
        scene=emulator.service.scene,
        emulator=emulator,
        tasks=emulator.tasks.child(f"av-{stream_id}"),
        egress=emulator.egress,
        audio=audio,
    )


@dataclass
class Pulled:
    width: int
    height: int
    stamps: list[FrameStamp]
    audio_codec: str | None
    audio_rate: int | None


def pull(url: str, transport: str, frames: int = 8) -> Pulled:
    """Play an RTSP URL with FFmpeg (through PyAV) and read the stamps of the first decoded frames."""
    with av.open(url, options={"rtsp_transport": transport}, timeout=(10.0, 10.0)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        stamps: list[FrameStamp] = []
        size = (0, 0)
        for frame in container.decode(video):
            size = (frame.width, frame.height)
            stamps.append(read_stamp(frame))
            if len(stamps) >= frames:
                break
        return Pulled(
            size[0],
            size[1],
            stamps,
            audio.codec_context.name if audio else None,
            audio.codec_context.sample_rate if audio else None,
        )


async def wait_until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition that has no event of its own (a counter in another component)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


def decode_recorded(units: list[bytes]) -> list[FrameStamp]:
    decoder = av.CodecContext.create("h264", "r")
    stamps = []
    for data in units:
        for frame in decoder.decode(av.Packet(data)):
            stamps.append(read_stamp(frame))
    return stamps


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[int(np.argmax(spectrum))])


# ----- a challenging RTMP server ---------------------------------------------------------------------------------
def _amf_read(data: bytes, i: int) -> tuple[object, int]:
    """One AMF0 value (number, boolean, string, object, ECMA array, null) starting at data[i]."""
    marker, i = data[i], i + 1
    if marker == 0:
        return struct.unpack(">d", data[i : i + 8])[0], i + 8
    if marker == 1:
        return bool(data[i]), i + 1
    if marker == 2:
        n = int.from_bytes(data[i : i + 2], "big")
        return data[i + 2 : i + 2 + n].decode(), i + 2 + n
    if marker in (3, 8):
        i += 4 if marker == 8 else 0
        obj: dict[str, object] = {}
        while True:
            n = int.from_bytes(data[i : i + 2], "big")
            if n == 0 and data[i + 2] == 9:
                return obj, i + 3
            key = data[i + 2 : i + 2 + n].decode()
            obj[key], i = _amf_read(data, i + 2 + n)
    if marker in (5, 6):
        return None, i
    raise ValueError(f"AMF0 marker {marker} not handled")


def _amf_string(value: str) -> bytes:
    raw = value.encode()
    return b"\x02" + len(raw).to_bytes(2, "big") + raw


def _amf_object(fields: dict[str, str]) -> bytes:
    body = b"".join(len(k).to_bytes(2, "big") + k.encode() + _amf_string(v) for k, v in fields.items())
    return b"\x03" + body + b"\x00\x00\x09"


class AdobeAuthRtmpServer:
    """An RTMP server that answers every `connect` with FFmpeg's Adobe auth challenge (RTMP handshake,
    chunk stream, AMF0 `_error`), so a test can check the publisher's user name and password response."""

    SALT, CHALLENGE, OPAQUE = "s4lt", "ch4llenge", "0paque"

    def __init__(self) -> None:
        self.apps: list[str] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> AdobeAuthRtmpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def response_matches(self, user: str, password: str) -> bool:
        """Whether the last connect carried the response FFmpeg computes from these credentials."""
        query = dict(pair.split("=", 1) for pair in self.apps[-1].split("?", 1)[1].split("&"))
        inner = base64.b64encode(hashlib.md5((user + self.SALT + password).encode()).digest())
        outer = hashlib.md5(inner + self.OPAQUE.encode() + query["challenge"].encode()).digest()
        return query.get("user") == user and query.get("response") == base64.b64encode(outer).decode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            c0c1 = await reader.readexactly(1 + 1536)
            writer.write(b"\x03" + bytes(1536) + c0c1[1:])  # S0, S1, S2 (= C1 echoed)
            await reader.readexactly(1536)  # C2
            command = await self._read_command(reader)
            app = str(command[2]["app"])  # type: ignore[index]
            self.apps.append(app)
            if "authmod=adobe" not in app:
                reason = "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : "
            elif "response=" not in app:
                reason = (
                    "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user="
                    f"{app.split('user=', 1)[1].split('&', 1)[0]}&salt={self.SALT}&challenge={self.CHALLENGE}"
                    f"&opaque={self.OPAQUE}"
                )
            else:
                reason = "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed"
            payload = (
                _amf_string("_error") + b"\x00" + struct.pack(">d", command[1]) + b"\x05"  # type: ignore[arg-type]
                + _amf_object({"level": "error", "code": "NetConnection.Connect.Rejected", "description": reason})
            )
            header = b"\x03" + bytes(3) + len(payload).to_bytes(3, "big") + b"\x14" + bytes(4)
            writer.write(header + b"\xc3".join(payload[i : i + 128] for i in range(0, len(payload), 128)))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read_command(reader: asyncio.StreamReader) -> list[object]:
        """Reassemble chunks until the first AMF0 command message (type 20) and decode it."""
        chunk_size, streams = 128, {}  # type: ignore[var-annotated]
        while True:
            first = (await reader.readexactly(1))[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid < 2:
                csid = 64 + int.from_bytes(await reader.readexactly(csid + 1), "little")
            state = streams.setdefault(csid, {"length": 0, "type": 0, "data": b""})
            header = await reader.readexactly((11, 7, 3, 0)[fmt])
            if fmt in (0, 1):
                state["length"], state["type"] = int.from_bytes(header[3:6], "big"), header[6]
            state["data"] += await reader.readexactly(min(chunk_size, state["length"] - len(state["data"])))
            if len(state["data"]) < state["length"]:
                continue
            message, state["data"] = state["data"], b""
            if state["type"] == 1:  # Set Chunk Size
                chunk_size = int.from_bytes(message, "big") & 0x7FFFFFFF
            elif state["type"] == 20:
                values, i = [], 0
                while i < len(message):
                    value, i = _amf_read(message, i)
                    values.append(value)
                return values


# ----- audio -------------------------------------------------------------------------------------------------
def test_av_audio_is_a_440_hz_tone_with_a_50_ms_1_khz_beep_at_every_second() -> None:
    tone = AvTone(sample_rate=16_000, frame_rate=30)
    samples = tone.samples_through(59)  # two seconds
    assert len(samples) == 32_000
    for second in (0, 1):
        start = second * 16_000
        assert dominant_frequency(samples[start : start + 800], 16_000) == pytest.approx(1000, abs=25)
        assert dominant_frequency(samples[start + 1600 : start + 16_000], 16_000) == pytest.approx(440, abs=5)


def test_av_audio_continues_without_gaps_when_frames_are_skipped() -> None:
    tone = AvTone(sample_rate=11_025, frame_rate=30)
    first = tone.samples_through(0)
    after_skip = tone.samples_through(9)  # frames 1..8 never rendered: their audio still comes
    whole = AvTone(sample_rate=11_025, frame_rate=30).samples_through(9)
    assert np.array_equal(np.concatenate([first, after_skip]), whole)
    assert len(whole) == 11_025 * 10 // 30


def test_audio_bitrate_is_capped_where_the_aac_encoder_cannot_follow() -> None:
    assert effective_audio_bitrate(128_000, 44_100) == 128_000
    assert effective_audio_bitrate(1_000_000, 48_000) == 288_000
    assert effective_audio_bitrate(128_000, 11_025) == 66_150


# ----- video -------------------------------------------------------------------------------------------------
def test_av_frames_keep_the_sensor_rotation_and_carry_the_av_stamp() -> None:
    producer = AvProducer(PARAMS, stream_id=70_000 + 5, scene=MistyScene(0))
    picture = producer.render(frame_index=42, capture_time_ms=1_700_000_000_000)
    assert picture.shape == (240 * 3 // 2, 320)  # drawn in I420, the encoder's own format
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p").to_ndarray(format="rgb24")
    stamp = read_stamp(frame)
    assert (stamp.stream_kind, stamp.stream_id, stamp.frame_index) == (StreamKind.MISTY_AV, (70_005) & 0xFFFF, 42)
    # Rotated 90° CCW like the sensor: sky on the left, the red bar along the bottom (misty.md §3.2).
    assert np.abs(frame[200, 20].astype(int) - SKY).max() < 30
    assert np.abs(frame[236, 240].astype(int) - BAR).max() < 30


# ----- rtspd -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_rtspd_serves_h264_and_aac_at_the_requested_size_and_rate(misty: MistyEmulator, transport: str) -> None:
    stream = av_stream(misty, stream_id=9)
    await stream.start()
    try:
        assert stream.endpoint is not None and stream.endpoint.startswith("rtsp://127.0.0.1:")
        pulled = await asyncio.to_thread(pull, stream.endpoint + "video", transport)
    finally:
        await stream.aclose()
    assert (pulled.width, pulled.height) == (320, 240)
    assert (pulled.audio_codec, pulled.audio_rate) == ("aac", 16_000)
    indexes = [s.frame_index for s in pulled.stamps]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    assert {(s.stream_kind, s.stream_id) for s in pulled.stamps} == {(StreamKind.MISTY_AV, 9)}


async def test_with_av_audio_off_rtspd_and_a_push_carry_video_only(emulator_factory, free_port: int) -> None:  # type: ignore[no-untyped-def]
    """The emulator's own `av_audio = false`: one H.264 track in the SDP, stamped frames still flowing."""
    quiet = await emulator_factory("misty", settings={"av_audio": False})
    rest = f"http://127.0.0.1:{quiet.ports['rest']}/api"
    port = free_port
    async with aiohttp.ClientSession() as session:
        for path, body in (("services/avstreaming/enable", {}),
                           ("avstreaming/start", {"URL": f"rtspd:{port}", "Width": 320, "Height": 240})):
            async with session.post(f"{rest}/{path}", json=body) as resp:
                assert (resp.status, (await resp.json())["result"]) == (200, True)
        pulled = await asyncio.to_thread(pull, f"rtsp://127.0.0.1:{port}/", "tcp")
        async with session.post(f"{rest}/avstreaming/stop", json={}) as resp:
            assert resp.status == 200
    assert (pulled.width, pulled.height, pulled.audio_codec) == (320, 240, None)
    assert pulled.stamps and {s.stream_kind for s in pulled.stamps} == {StreamKind.MISTY_AV}

    recorder = RtspRecorder()
    await recorder.start()
    try:
        stream = av_stream(quiet, url=f"rtsp://127.0.0.1:{recorder.port}/robot", stream_id=4, audio=False)
        await stream.start()
        try:
            await recorder.wait_for(lambda r: len(r.video) >= 10, within=10)
        finally:
            await stream.aclose()
        sdp, audio_frames = recorder.sdp or "", len(recorder.audio)
    finally:
        await recorder.aclose()
    assert "H264/90000" in sdp and "MPEG4-GENERIC" not in sdp and "m=audio" not in sdp
    assert audio_frames == 0


async def test_rtspd_serves_two_clients_from_one_encode(misty: MistyEmulator) -> None:
    stream = av_stream(misty)
    await stream.start()
    try:
        assert stream.endpoint is not None
        tcp, udp = await asyncio.gather(
            asyncio.to_thread(pull, stream.endpoint, "tcp", 12), asyncio.to_thread(pull, stream.endpoint, "udp", 12)
        )
        snapshot = stream.snapshot()
    finally:
        await stream.aclose()
    assert len(tcp.stamps) == len(udp.stamps) == 12
    for pulled in (tcp, udp):
        indexes = [s.frame_index for s in pulled.stamps]
        assert indexes == sorted(indexes)
    # One encode per tick whatever the audience (a tick may be mid-encode when the snapshot is taken).
    assert misty.pacing["av"].ticks - 1 <= snapshot["frames_sent"] <= misty.pacing["av"].ticks


async def test_rtspd_on_a_taken_port_raises_oserror_and_leaves_nothing_running(misty: MistyEmulator) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stream = av_stream(misty, url=f"rtspd:{taken.getsockname()[1]}")
        with pytest.raises(OSError):
            await stream.start()
    await stream.aclose()
    assert stream.endpoint is None


async def test_stopping_rtspd_ends_its_sessions_and_frees_the_port(misty: MistyEmulator) -> None:
    stream = av_stream(misty)
    await stream.start()
    assert stream.endpoint is not None
    port = int(stream.endpoint.rsplit(":", 1)[1].strip("/"))

    playing = threading.Event()

    def play_until_the_end() -> int:
        frames = 0
        with av.open(stream.endpoint, options={"rtsp_transport": "tcp"}, timeout=(10.0, 10.0)) as container:
            for _frame in container.decode(video=0):
                frames += 1
                playing.set()
        return frames

    player = asyncio.ensure_future(asyncio.to_thread(play_until_the_end))
    assert await asyncio.to_thread(playing.wait, 10)
    await stream.aclose()
    frames = await asyncio.wait_for(player, 10)
    assert frames > 0
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    kinds = [e.kind for e in misty.events.query(kind="stream")]
    assert kinds[-1] == "stream.stopped"


# ----- push --------------------------------------------------------------------------------------------------
async def test_rtsp_push_announces_and_records_with_the_credentials_then_tears_down(misty: MistyEmulator) -> None:
    recorder = RtspRecorder(credentials=("misty", "s3cret"))
    await recorder.start()
    try:
        url = f"rtsp://127.0.0.1:{recorder.port}/robot"
        stream = av_stream(misty, url=url, stream_id=3, username="misty", password="s3cret")
        await stream.start()
        try:
            await recorder.wait_for(lambda r: len(r.video) >= 20, within=10)
        finally:
            await stream.aclose()
        await recorder.wait_for(lambda r: not r.recording, within=5)
        methods = [request.method for request in recorder.requests]
        authorizations = [request.headers.get("Authorization") for request in recorder.requests]
        sdp = recorder.sdp or ""
        stamps = decode_recorded([unit.annexb for unit in recorder.video])
        audio_frames = len(recorder.audio)
    finally:
        await recorder.aclose()
    assert methods[:1] == ["OPTIONS"] or methods[0] == "ANNOUNCE"
    assert {"ANNOUNCE", "SETUP", "RECORD", "TEARDOWN"} <= set(methods)
    # FFmpeg first asks without credentials, meets the 401 and repeats with UserName/Password (Basic).
    assert authorizations[0] is None
    assert authorizations[-1] == "Basic " + base64.b64encode(b"misty:s3cret").decode()
    assert "H264/90000" in sdp and "MPEG4-GENERIC/16000" in sdp
    assert audio_frames > 0
    assert [s.frame_index for s in stamps] == sorted(s.frame_index for s in stamps)
    assert {s.stream_id for s in stamps} == {3}
    assert misty.events.query(kind="outbound.connected")


async def test_rtsp_push_with_wrong_credentials_is_refused_with_the_reason(misty: MistyEmulator) -> None:
    recorder = RtspRecorder(credentials=("misty", "s3cret"))
    await recorder.start()
    try:
        url = f"rtsp://127.0.0.1:{recorder.port}/robot"
        stream = av_stream(misty, url=url, username="misty", password="wrong")
        with pytest.raises(AvConnectError, match=r"(?i)unauthorized|401|permission|denied"):
            await stream.start()
        await stream.aclose()
        assert not recorder.recording and not recorder.video
    finally:
        await recorder.aclose()


async def test_rtmp_push_answers_an_adobe_auth_challenge_with_the_credentials(misty: MistyEmulator) -> None:
    async with AdobeAuthRtmpServer() as server:
        url = f"rtmp://127.0.0.1:{server.port}/live/robot"
        stream = av_stream(misty, url=url, username="robot", password="s3cret")
        with pytest.raises(AvConnectError):
            await stream.start()  # this server rejects even a correct response: it only checks it
        await stream.aclose()
    assert server.apps[0] == "live"  # no credentials until the server asks
    assert server.apps[1] == "live?authmod=adobe&user=robot"
    assert server.response_matches("robot", "s3cret")
    assert not server.response_matches("robot", "wrong")


async def test_push_to_a_closed_port_fails_with_the_reason(misty: MistyEmulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    stream = av_stream(misty, url=f"rtmp://127.0.0.1:{port}/live/robot")
    with pytest.raises(AvConnectError, match=r"(?i)refused"):
        await stream.start()
    await stream.aclose()
    assert misty.events.query(kind="outbound.failed")


async def test_push_to_a_server_that_never_answers_gives_up_after_5_seconds(misty: MistyEmulator) -> None:
    silent_connections: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_connections.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    try:
        stream = av_stream(misty, url=f"rtmp://127.0.0.1:{server.sockets[0].getsockname()[1]}/live/robot")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AvConnectError, match="within 5 s"):
            await stream.start()
        assert 4.5 <= loop.time() - started < 30  # 5 s for the handshake, after the worker is ready
        await stream.aclose()
    finally:
        for writer in silent_connections:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("url", "reason"), [("rtmp://:1935/live", "no host"), ("rtsp://robot:99999/cam", "port")]
)
async def test_an_unusable_push_url_fails_with_the_reason(misty: MistyEmulator, url: str, reason: str) -> None:
    stream = av_stream(misty, url=url)
    with pytest.raises(AvConnectError, match=reason):
        await stream.start()
    await stream.aclose()
    assert misty.events.query(kind="outbound.failed")


async def test_push_outside_the_egress_allowlist_is_refused(misty: MistyEmulator) -> None:
    stream = av_stream(misty, url="rtmp://203.0.113.7/live/robot")  # TEST-NET-3: never reachable anyway
    with pytest.raises(AvConnectError, match="egress allowlist"):
        await stream.start()
    await stream.aclose()


async def test_a_push_whose_receiver_goes_away_becomes_failed(misty: MistyEmulator) -> None:
    recorder = RtspRecorder()
    await recorder.start()
    stream = av_stream(misty, url=f"rtsp://127.0.0.1:{recorder.port}/robot")
    await stream.start()
    try:
        await recorder.wait_for(lambda r: len(r.video) >= 3, within=10)
        await recorder.aclose()
        reason = await asyncio.wait_for(stream.wait_failed(), 10)
    finally:
        await stream.aclose()
    assert reason and stream.failed
    assert misty.events.query(kind="stream.error")


def test_push_credentials_travel_as_url_userinfo_and_never_appear_in_logs() -> None:
    target = PushTarget.parse("rtmp://cdn.local:1936/live/key?token=1", "robot", "p@ss:word")
    assert target.muxer_url() == "rtmp://robot:p%40ss%3Aword@cdn.local:1936/live/key?token=1"
    assert target.redacted == "rtmp://robot:***@cdn.local:1936/live/key?token=1"
    from_url = PushTarget.parse("rtsp://me:pw@10.0.0.2/cam", None, None)
    assert (from_url.port, from_url.username, from_url.password) == (554, "me", "pw")


# ----- faults ------------------------------------------------------------------------------------------------
async def test_drop_fault_skips_frames_and_the_stream_still_decodes(misty: MistyEmulator) -> None:
    misty.faults.add({"match": {"stream": "av"}, "action": {"type": "drop"}, "count": 5})
    recorder = RtspRecorder()
    await recorder.start()
    try:
        stream = av_stream(misty, url=f"rtsp://127.0.0.1:{recorder.port}/robot")
        await stream.start()
        try:
            await recorder.wait_for(lambda r: len(r.video) >= 10, within=10)
        finally:
            await stream.aclose()
        stamps = decode_recorded([unit.annexb for unit in recorder.video])
    finally:
        await recorder.aclose()
    assert stamps[0].frame_index == 5
    assert len(misty.events.query(kind="fault.applied")) == 5


async def test_disconnect_fault_ends_every_rtspd_session(misty: MistyEmulator) -> None:
    stream = av_stream(misty)
    await stream.start()
    try:
        assert stream.endpoint is not None
        await asyncio.to_thread(pull, stream.endpoint, "tcp", 2)
        misty.faults.add({"match": {"stream": "av"}, "action": {"type": "disconnect"}, "count": 1})
        assert await asyncio.wait_for(stream.wait_failed(), 10) == "disconnect fault"
    finally:
        await stream.aclose()


async def test_stall_fault_pauses_the_stream_and_skips_the_missed_ticks(misty: MistyEmulator) -> None:
    stream = av_stream(misty)
    await stream.start()
    try:
        misty.faults.add({"match": {"stream": "av"}, "action": {"type": "stall", "seconds": 0.4}, "count": 1})
        await wait_until(lambda: misty.pacing["av"].skipped >= 8)
    finally:
        await stream.aclose()


async def test_corrupt_fault_damages_frames_but_the_stream_goes_on(misty: MistyEmulator) -> None:
    stream = av_stream(misty)
    await stream.start()
    try:
        misty.faults.add({"match": {"stream": "av"}, "action": {"type": "corrupt"}, "count": 3})
        seen = 0
        for _ in range(3):
            seen = (await misty.events.wait_for("fault.applied", since=seen)).id
        assert len(misty.events.query(kind="fault.applied")) == 3
        sent = stream.frames_sent
        await wait_until(lambda: stream.frames_sent >= sent + 5)
        assert not stream.failed
    finally:
        await stream.aclose()
