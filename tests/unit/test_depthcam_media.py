"""Depthcam media: still formats, fMP4 segmenting, the shared video channel's fan-out rules."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from clients.depthcam import avcc_from_init, decode_image, mdat_payload
from clients.stamp import read_stamp
from emulators.depthcam import media
from emulators.depthcam.camera import Camera
from emulators.depthcam.hardware import STILL_FORMATS, oak_d
from emulators.kit.faults import SEND
from emulators.kit.pacer import LatenessStats

T0_MS = 1_700_000_000_000


def frame(stream: str = "CAM_B", index: int = 7) -> np.ndarray:
    camera = Camera.boot(oak_d(), 0)
    return media.render_frame(media.frame_spec(camera, stream, frame_index=index, capture_ms=T0_MS))


@pytest.mark.parametrize("fmt", STILL_FORMATS)
def test_every_still_format_decodes_and_keeps_the_stamp(fmt: str) -> None:
    image = frame()
    decoded = decode_image(media.encode_still(image, fmt))
    assert decoded.shape[:2] == image.shape[:2]
    assert read_stamp(decoded).frame_index == 7


def test_the_segmenter_sends_ftyp_moov_first_then_one_moof_mdat_per_message() -> None:
    encoder = media.Fmp4Encoder(640, 400, 30.0)
    try:
        messages = []
        for pts in range(4):
            messages += encoder.encode(frame(index=pts), pts)
    finally:
        encoder.close()
    kinds = [[kind for kind, _ in media.split_boxes(m)[0]] for m in messages]
    assert kinds[0] == [b"ftyp", b"moov"]
    assert all(k == [b"moof", b"mdat"] for k in kinds[1:]) and len(kinds) >= 3
    # What the reference client takes out of them decodes as H.264.
    assert avcc_from_init(messages[0])[1] == 0x42
    assert mdat_payload(messages[1])[:4] != b"\x00\x00\x00\x01"  # length-prefixed, not Annex-B


def test_split_boxes_keeps_an_incomplete_box_for_later() -> None:
    box = (16).to_bytes(4, "big") + b"free" + bytes(8)
    boxes, used = media.split_boxes(box + box[:10])
    assert [kind for kind, _ in boxes] == [b"free"] and used == 16


def test_an_odd_frame_size_is_cropped_by_one_pixel() -> None:
    encoder = media.Fmp4Encoder(641, 401, 30.0)
    try:
        image = np.full((401, 641), 128, dtype=np.uint8)
        init, fragment = encoder.encode(image, 0) + encoder.encode(image, 1)
    finally:
        encoder.close()
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = avcc_from_init(init)
    (picture,) = decoder.decode(av.Packet(mdat_payload(fragment)))
    assert (picture.width, picture.height) == (640, 400)


async def test_a_viewer_more_than_two_seconds_behind_is_closed_with_1008() -> None:
    events: list[tuple[str, dict]] = []

    async def ready() -> None:
        return None

    hooks = media.ChannelHooks(
        wait_ready=ready,
        next_frame=lambda index: None,
        verdict=lambda name, **detail: SEND,
        record=lambda kind, **detail: events.append((kind, detail)),
        preview=lambda name, frame: None,
    )
    channel = media.VideoChannel("M/CAM_B/video", "CAM_B", (640, 400), 30.0, hooks, LatenessStats())
    slow, fast = channel.subscribe(), channel.subscribe()
    for i in range(slow.queue.maxsize + 1):
        channel._broadcast(b"fragment %d" % i)
        fast.queue.get_nowait()
    assert slow.closed and slow.close_code == 1008
    assert slow not in channel.subscribers and fast in channel.subscribers
    assert events[0][0] == "stream.error"
    await asyncio.sleep(0)
