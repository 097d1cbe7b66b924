"""OAK hardware as the Robopipe server sees it: device models, their sensors and stereo pairs, stream names.

Pure descriptions (frozen dataclasses and tables); the rig setting builds its devices from these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

SOCKETS = "ABCDEFGH"
STREAM_NAME_PATTERN = "CAM_[A-H]|DEPTH_[A-H]_[A-H]"
MXID_PATTERN = "[A-Z0-9]+"

COLOR_RESOLUTIONS: dict[str, tuple[int, int]] = {
    "THE_1080_P": (1920, 1080),
    "THE_1200_P": (1920, 1200),
    "THE_12_MP": (4056, 3040),
    "THE_1352X1012": (1352, 1012),
    "THE_13_MP": (4208, 3120),
    "THE_1440X1080": (1440, 1080),
    "THE_2024X1520": (2024, 1520),
    "THE_4000X3000": (4000, 3000),
    "THE_48_MP": (8000, 6000),
    "THE_4_K": (3840, 2160),
    "THE_5312X6000": (5312, 6000),
    "THE_5_MP": (2592, 1944),
    "THE_720_P": (1280, 720),
    "THE_800_P": (1280, 800),
}
MONO_RESOLUTIONS: dict[str, tuple[int, int]] = {
    "THE_1200_P": (1920, 1200),
    "THE_400_P": (640, 400),
    "THE_480_P": (640, 480),
    "THE_720_P": (1280, 720),
    "THE_800_P": (1280, 800),
}
# Mono resolution names the colour sensor also understands (the real server passes them through).
MONO_NAMES_FOR_COLOR = ("THE_720_P", "THE_800_P", "THE_1200_P")
VIDEO_SIZE_CAP = (3840, 2160)  # DepthAI's 4K limit on the colour camera's video output
# Pillow's names for the still formats the real server accepts (``?format=``, case-insensitive).
STILL_FORMATS = ("jpeg", "png", "webp", "bmp", "gif", "tiff", "ppm")


@dataclass(frozen=True)
class SensorSpec:
    socket: str
    model: str  # IMX378, OV9282, ...
    kind: str  # "color" or "mono"
    autofocus: bool
    max_size: tuple[int, int]
    max_fps: float
    position_x: float  # metres along the rig's baseline axis, from the colour camera


@dataclass(frozen=True)
class PairSpec:
    left: str
    right: str
    baseline_m: float

    @property
    def name(self) -> str:
        return f"DEPTH_{self.left}_{self.right}"


@dataclass(frozen=True)
class DeviceSpec:
    mxid: str
    model: str
    name: str
    protocol: str
    sensors: tuple[SensorSpec, ...]
    pairs: tuple[PairSpec, ...]
    ir: bool = False
    platform: str = "X_LINK_MYRIAD_X"

    def sensor(self, socket: str) -> SensorSpec | None:
        return next((s for s in self.sensors if s.socket == socket), None)

    def pair(self, name: str) -> PairSpec | None:
        return next((p for p in self.pairs if p.name == name), None)

    @cached_property
    def stream_order(self) -> tuple[str, ...]:
        """The device's stream names, connected sockets first; computed once (the spec is frozen)."""
        return tuple([f"CAM_{s.socket}" for s in self.sensors] + [p.name for p in self.pairs])

    @cached_property
    def stream_set(self) -> frozenset[str]:
        return frozenset(self.stream_order)


def _imx378(socket: str, x: float) -> SensorSpec:
    return SensorSpec(socket, "IMX378", "color", True, (4056, 3040), 60.0, x)


def _ov9282(socket: str, x: float) -> SensorSpec:
    return SensorSpec(socket, "OV9282", "mono", False, (1280, 800), 120.0, x)


def oak_d(mxid: str = "14442C10D13EABCE00", name: str = "1.1", *, ir: bool = False) -> DeviceSpec:
    return DeviceSpec(
        mxid=mxid,
        model="OAK-D",
        name=name,
        protocol="X_LINK_USB_VSC",
        sensors=(_imx378("A", 0.0), _ov9282("B", -0.0375), _ov9282("C", 0.0375)),
        pairs=(PairSpec("B", "C", 0.075),),
        ir=ir,
    )


def oak_d_lr(mxid: str = "18443010D116631200", name: str = "169.254.1.222", *, ir: bool = False) -> DeviceSpec:
    # Sensor models of the LR are a choice (the dossier leaves them open); none has autofocus.
    def ar0234(socket: str, x: float) -> SensorSpec:
        return SensorSpec(socket, "AR0234", "color", False, (1920, 1200), 60.0, x)

    return DeviceSpec(
        mxid=mxid,
        model="OAK-D-LR",
        name=name,
        protocol="X_LINK_TCP_IP",
        sensors=(ar0234("A", 0.099), ar0234("B", 0.0), ar0234("C", 0.150)),
        pairs=(PairSpec("B", "C", 0.150), PairSpec("B", "A", 0.099), PairSpec("A", "C", 0.051)),
        ir=ir,
    )


def oak_1(mxid: str = "14442C1071659ACD00", name: str = "1.2", *, ir: bool = False) -> DeviceSpec:
    return DeviceSpec(
        mxid=mxid, model="OAK-1", name=name, protocol="X_LINK_USB_VSC", sensors=(_imx378("A", 0.0),), pairs=(), ir=ir
    )


DEVICE_MODELS = {"OAK-D": oak_d, "OAK-D-LR": oak_d_lr, "OAK-1": oak_1}


def device_from_config(entry: dict[str, Any]) -> DeviceSpec:
    """A device from a rig config entry ``{"model": "OAK-D-LR", "mxid": ..., "name": ..., "ir": false}``."""
    model = entry.get("model")
    if model not in DEVICE_MODELS:
        raise ValueError(f"devices[].model must be one of {', '.join(DEVICE_MODELS)}, got {model!r}")
    kwargs: dict[str, Any] = {}
    if "mxid" in entry:
        mxid = entry["mxid"]
        if not isinstance(mxid, str) or not re.fullmatch(MXID_PATTERN, mxid):
            raise ValueError(f"devices[].mxid must be upper-case letters and digits, got {mxid!r}")
        kwargs["mxid"] = mxid
    if "name" in entry:
        kwargs["name"] = str(entry["name"])
    if "ir" in entry:
        kwargs["ir"] = bool(entry["ir"])
    return DEVICE_MODELS[model](**kwargs)


def stream_code(stream: str) -> int:
    """The stream's code in the frame stamp: CAM_X -> 0..7, DEPTH_L_R -> 0x80 | L<<3 | R."""
    if stream.startswith("CAM_"):
        return SOCKETS.index(stream[4])
    return 0x80 | SOCKETS.index(stream[6]) << 3 | SOCKETS.index(stream[8])


def resolution_size(kind: str, resolution: str) -> tuple[int, int]:
    table = COLOR_RESOLUTIONS if kind == "color" else MONO_RESOLUTIONS
    if resolution in table:
        return table[resolution]
    return MONO_RESOLUTIONS[resolution]  # a mono name given to the colour sensor

