"""The live video WebSocket: fMP4 H.264 that PyAV decodes, one shared encoder, close codes, stream faults."""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clients.depthcam import DepthCamera
from clients.stamp import StreamKind, read_stamp
from emulators.depthcam.device import DepthCamEmulator
from emulators.depthcam.media import split_boxes
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MXID = "14442C10D13EABCE00"
VIDEO = f"/cameras/{MXID}/streams/{{}}/video"


@pytest.fixture
async def emulator() -> AsyncIterator[DepthCamEmulator]:
    async with DepthCamEmulator(egress=EGRESS, settings={"port": 0}) as emu:
        yield emu


async def receive(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        out.append(message.data)
    return out


def box_types(data: bytes) -> list[bytes]:
    boxes, used = split_boxes(data)
    assert used == len(data)
    return [kind for kind, _ in boxes]


def find_box(data: bytes, path: list[bytes]) -> bytes:
    """The payload of a nested box, e.g. [moof, traf, tfdt]."""
    for kind, raw in split_boxes(data)[0]:
        if kind == path[0]:
            header = 16 if struct.unpack_from(">I", raw)[0] == 1 else 8
            return raw[header:] if len(path) == 1 else find_box(raw[header:], path[1:])
    raise AssertionError(f"no {path[0]!r} box")


def tfdt(fragment: bytes) -> int:
    payload = find_box(fragment, [b"moof", b"traf", b"tfdt"])
    return struct.unpack_from(">Q", payload, 4)[0] if payload[0] == 1 else struct.unpack_from(">I", payload, 4)[0]


def avcc_profile(init: bytes) -> int:
    at = init.find(b"avcC")
    return init[at + 5]


async def test_the_first_message_is_the_init_segment_then_one_fragment_per_frame(emulator: DepthCamEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws:
        init, *fragments = await receive(ws, 5)
    assert box_types(init) == [b"ftyp", b"moov"]
    assert avcc_profile(init) == 0x42  # Baseline, as MSE's avc1.42E01E expects
    times = []
    for fragment in fragments:
        assert box_types(fragment) == [b"moof", b"mdat"]
        times.append(tfdt(fragment))
    assert times == sorted(times) and len(set(times)) == len(times)


async def test_video_decodes_in_pyav_with_stamps_in_order(emulator: DepthCamEmulator) -> None:
    async with DepthCamera(emulator.url(), MXID) as camera:
        await camera.activate("DEPTH_B_C")
        frames = []
        async for frame in camera.video("DEPTH_B_C"):
            frames.append(frame)
            if len(frames) == 4:
                break
    assert {(f.width, f.height) for f in frames} == {(640, 400)}
    stamps = [read_stamp(f) for f in frames]
    assert {s.stream_kind for s in stamps} == {StreamKind.DEPTHCAM_DEPTH}
    indices = [s.frame_index for s in stamps]
    assert indices == sorted(indices) and len(set(indices)) == 4


async def test_a_late_joiner_shares_the_encoder_the_init_segment_and_the_timeline(emulator: DepthCamEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url() + VIDEO.format("CAM_C")) as first:
        init_first, *_ = await receive(first, 4)
        async with http.ws_connect(emulator.url() + VIDEO.format("CAM_C")) as late:
            init_late, fragment = await receive(late, 2)
            runtime = emulator.runtimes[MXID]
            assert len(runtime.channels) == 1
            assert len(runtime.channels["CAM_C"].subscribers) == 2
    assert init_late == init_first
    assert tfdt(fragment) > 0


async def test_the_last_viewer_leaving_stops_the_encoder(emulator: DepthCamEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws:
        await receive(ws, 2)
    runtime = emulator.runtimes[MXID]
    async with asyncio.timeout(5):
        while runtime.channels:  # noqa: ASYNC110 - the server notices the close a moment after the client
            await asyncio.sleep(0.02)
    assert runtime.channels == {}
    assert emulator.tasks.live == 0


async def test_deactivating_the_stream_closes_its_viewers_with_1000(emulator: DepthCamEmulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws,
        DepthCamera(emulator.url(), MXID) as camera,
    ):
        await receive(ws, 2)
        await camera.activate("DEPTH_B_C")  # implicitly deactivates CAM_B
        while (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert ws.close_code == 1000


async def test_a_config_that_changes_the_frame_size_closes_viewers_with_1012(emulator: DepthCamEmulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws,
        DepthCamera(emulator.url(), MXID) as camera,
    ):
        await receive(ws, 2)
        await camera.set_config("CAM_B", {"resolution": "THE_480_P", "fps": 30})
        while (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert ws.close_code == 1012


async def test_an_inactive_stream_is_accepted_then_closed_1011_and_a_bad_name_is_refused(
    emulator: DepthCamEmulator,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(emulator.url() + VIDEO.format("DEPTH_B_C")) as ws:
            assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1011
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(emulator.url() + VIDEO.format("CAM_Z"))
        assert caught.value.status == 403


async def test_a_close_fault_on_the_video_stream_closes_with_its_code(emulator: DepthCamEmulator) -> None:
    emulator.faults.add({"match": {"stream": "*/CAM_B/video"}, "action": {"type": "close", "code": 4001}, "count": 1})
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws:
        while (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert ws.close_code == 4001
    assert emulator.events.query(kind="fault.applied")


async def test_dropped_frames_show_as_gaps_in_the_stamped_frame_numbers(emulator: DepthCamEmulator) -> None:
    async with DepthCamera(emulator.url(), MXID) as camera:
        indices = []
        async for frame in camera.video("CAM_C"):
            indices.append(read_stamp(frame).frame_index)
            if len(indices) == 1:
                emulator.faults.add({"match": {"stream": "*/CAM_C/video"}, "action": {"type": "drop"}, "count": 3})
            if len(emulator.events.query(kind="fault.applied")) == 3 and len(indices) >= 12:
                break
    gaps = [b - a for a, b in itertools.pairwise(indices)]
    assert min(gaps) >= 1
    assert max(gaps) >= 4  # three consecutive frames dropped: the numbers jump by four (more if a tick was late)


async def test_with_the_restart_quirk_any_restart_closes_the_devices_viewers() -> None:
    settings = {"port": 0, "quirk_restart_closes_websockets": True}
    async with (
        DepthCamEmulator(egress=EGRESS, settings=settings) as emu,
        aiohttp.ClientSession() as http,
        http.ws_connect(emu.url() + VIDEO.format("CAM_A")) as ws,
        DepthCamera(emu.url(), MXID) as camera,
    ):
        await receive(ws, 2)
        await camera.deactivate("CAM_C")  # a restart that does not touch CAM_A
        while (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert ws.close_code == 1012


async def test_a_reset_closes_viewers_and_leaves_no_task_behind(emulator: DepthCamEmulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as ws:
        await receive(ws, 2)
        await emulator.reset()
        while (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
            pass
        assert ws.close_code == 1001
    assert emulator.runtimes[MXID].channels == {}
    assert emulator.tasks.live == 0
