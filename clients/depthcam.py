"""Reference client for the Robopipe API (Luxonis OAK cameras on a Robopipe controller).

Works against the emulator and a real controller alike; only ``base_url`` changes, e.g.
``DepthCamera("https://robopipe-1.local", mxid, verify_tls=False)`` for a controller's self-signed TLS.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from clients.http import SessionOwner

OAK_D_BASELINE_M = 0.075
MONO_FOCAL_400P = 441.25  # OV9282 focal length in pixels at 640x400


class RobopipeError(Exception):
    """A non-success reply: ``status`` and the decoded body (``null``, ``{"detail": ...}`` or text)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body!r}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Detection:
    label: int
    confidence: float
    coords: tuple[float, float, float, float]
    spatial_mm: tuple[float, float, float] | None


def _mp4_boxes(data: bytes, offset: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """Boxes in ``data[offset:end]`` as (type, payload start, box end)."""
    end = len(data) if end is None else end
    out = []
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header:
            break
        out.append((kind, offset + header, offset + size))
        offset += size
    return out


def avcc_from_init(init: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord from an fMP4 init segment (ftyp+moov)."""
    at = init.find(b"avcC")
    if at < 4:
        raise ValueError("init segment has no avcC box")
    size = struct.unpack_from(">I", init, at - 4)[0]
    return init[at + 4 : at - 4 + size]


def mdat_payload(fragment: bytes) -> bytes:
    for kind, start, end in _mp4_boxes(fragment):
        if kind == b"mdat":
            return fragment[start:end]
    raise ValueError("fragment has no mdat box")


class DepthCamera(SessionOwner):
    """One OAK camera (by ``mxid``) behind a Robopipe API at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        mxid: str,
        *,
        session: aiohttp.ClientSession | None = None,
        verify_tls: bool = True,
        timeout_s: float = 30.0,
    ) -> None:
        super().__init__(
            session,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=lambda: aiohttp.TCPConnector(ssl=True if verify_tls else False),
        )
        self.base_url = base_url.rstrip("/")
        self.mxid = mxid

    def _stream_path(self, name: str, tail: str = "") -> str:
        return f"/cameras/{self.mxid}/streams/{name}/{tail}"

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            raw = await response.read()
            content_type = response.headers.get("Content-Type", "")
            if "json" in content_type:
                body: Any = json.loads(raw) if raw else None
            elif content_type.startswith("image/"):
                body = raw
            else:
                body = raw.decode("utf-8", "replace")
            if response.status >= 400:
                raise RobopipeError(method, path, response.status, body)
            return body

    # ----- cameras ----------------------------------------------------------------------------------------
    async def cameras(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self._request("GET", "/cameras/"))

    async def info(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", f"/cameras/{self.mxid}/"))

    async def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", f"/cameras/{self.mxid}/stats"))

    # ----- streams ----------------------------------------------------------------------------------------
    async def streams(self) -> dict[str, bool]:
        """Stream name -> active, from either list form (the object of older servers or the newer list)."""
        body = await self._request("GET", f"/cameras/{self.mxid}/streams/")
        if isinstance(body, list):
            return {item["name"]: bool(item["active"]) for item in body}
        return {name: bool(value["active"]) for name, value in body.items()}

    async def activate(self, name: str) -> None:
        await self._request("POST", self._stream_path(name))

    async def deactivate(self, name: str) -> None:
        await self._request("DELETE", self._stream_path(name))

    async def config(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", self._stream_path(name, "config")))

    async def set_config(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """Send one complete config (colour or mono variant); returns the config the camera now runs."""
        return cast(dict[str, Any], await self._request("POST", self._stream_path(name, "config"), json=config))

    async def control(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", self._stream_path(name, "control")))

    async def set_control(self, name: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the sensor control; returns the stored control."""
        return cast(dict[str, Any], await self._request("POST", self._stream_path(name, "control"), json=changes))

    async def still(self, name: str, format: str = "jpeg", *, decode: bool = True) -> np.ndarray | bytes:
        """Capture a still; decoded to a numpy array (RGB HxWx3, or HxW for grey pictures) unless ``decode=False``."""
        data = await self._request("GET", self._stream_path(name, "still"), params={"format": format})
        if not decode:
            return cast("np.ndarray | bytes", data)
        return await asyncio.to_thread(decode_image, data)

    async def depth_at(
        self, x: int, y: int, *, stream: str | None = None, baseline_m: float = OAK_D_BASELINE_M, window: int = 2
    ) -> float | None:
        """Distance in metres at pixel (x, y) of the active depth stream, from its disparity still.

        Z = f*B/d with f = 441.25 px scaled by the frame width; the median of valid disparities in a small
        window is used; None where the camera reports no disparity.
        """
        if stream is None:
            stream = next(
                (n for n, active in (await self.streams()).items() if active and n.startswith("DEPTH_")), None
            )
            if stream is None:
                raise RobopipeError("GET", "streams", 404, "no active DEPTH stream")
        disparity = await self.still(stream, "png")
        assert isinstance(disparity, np.ndarray)
        if disparity.ndim == 3:
            disparity = disparity[..., 0]
        patch = disparity[max(0, y - window) : y + window + 1, max(0, x - window) : x + window + 1]
        valid = patch[patch > 0]
        if valid.size == 0:
            return None
        focal = MONO_FOCAL_400P * disparity.shape[1] / 640.0
        return float(focal * baseline_m / float(np.median(valid)))

    # ----- live video -------------------------------------------------------------------------------------
    def _ws_url(self, name: str, tail: str) -> str:
        base = self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/cameras/{self.mxid}/streams/{name}/{tail}"

    async def video_segments(self, name: str) -> AsyncIterator[bytes]:
        """The raw fMP4 messages of the video WebSocket: the init segment first, then moof+mdat fragments."""
        async with self.session.ws_connect(self._ws_url(name, "video"), max_msg_size=0) as ws:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    yield message.data
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break

    async def video(self, name: str) -> AsyncIterator[av.VideoFrame]:
        """Decoded frames (PyAV) of a stream's live video."""
        decoder: VideoCodecContext | None = None
        async for segment in self.video_segments(name):
            if decoder is None:
                decoder = av.CodecContext.create("h264", "r")
                decoder.extradata = avcc_from_init(segment)
                continue
            packet = av.Packet(mdat_payload(segment))
            frames = await asyncio.to_thread(decoder.decode, packet)
            for frame in frames:
                yield frame

    # ----- neural networks --------------------------------------------------------------------------------
    async def deploy_nn(self, name: str, model: bytes, nn_config: dict[str, Any]) -> None:
        form = aiohttp.FormData()
        form.add_field("model", model, filename="model.blob", content_type="application/octet-stream")
        form.add_field("nn_config", json.dumps(nn_config))
        await self._request("POST", self._stream_path(name, "nn"), data=form)

    async def delete_nn(self, name: str) -> None:
        await self._request("DELETE", self._stream_path(name, "nn"))

    async def detections(self, name: str) -> AsyncIterator[list[Detection] | list[float]]:
        """NN results of a stream: detections for YOLO/MobileNet networks, the raw floats for generic ones."""
        async with self.session.ws_connect(self._ws_url(name, "nn")) as ws:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                items = json.loads(message.data)["detections"]
                if items and not isinstance(items[0], dict):
                    yield [float(v) for v in items]
                    continue
                out = []
                for item in items:
                    spatial = item.get("spatial_coords")
                    out.append(
                        Detection(
                            label=int(item["label"]),
                            confidence=float(item["confidence"]),
                            coords=tuple(item["coords"]),
                            spatial_mm=(spatial["x"], spatial["y"], spatial["z"]) if spatial else None,
                        )
                    )
                yield out


def decode_image(data: bytes) -> np.ndarray:
    """Decode a still (JPEG, PNG, WebP, BMP, GIF, TIFF, PPM/PGM) to RGB HxWx3, or HxW for grey pictures."""
    with av.open(io.BytesIO(data), mode="r", format="image2pipe") as container:
        frame = next(container.decode(video=0))
    if frame.format.name.startswith("gray"):
        return frame.to_ndarray(format="gray")
    return frame.to_ndarray(format="rgb24")
