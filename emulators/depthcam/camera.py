"""One booted OAK device's state and its rules: which streams are active (exclusivity), configs, controls, NN, IR.

Pure Python: no asyncio, no I/O, no clock. A refused request raises a domain error from ``errors``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from emulators.depthcam.errors import ConfigRejected, StreamNotFound
from emulators.depthcam.hardware import (
    MONO_NAMES_FOR_COLOR,
    VIDEO_SIZE_CAP,
    DeviceSpec,
    SensorSpec,
    resolution_size,
)

COLOR_BOOT_CONFIG: dict[str, Any] = {
    "resolution": "THE_1080_P",
    "still_size": [1920, 1080],
    "preview_size": [300, 300],
    "video_size": [1920, 1080],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}
MONO_BOOT_CONFIG: dict[str, Any] = {"resolution": "THE_400_P", "fps": 30.0}

FOCUS_DEFAULTS: dict[str, Any] = {
    "auto_focus_mode": "CONTINUOUS_VIDEO",
    "auto_focus_trigger": False,
    "lens_position": 0.0,
}
# What the real server reports before anything was set (DepthAI's uninitialised defaults).
INITIAL_CONTROL: dict[str, Any] = {
    "exposure_time": 1,
    "sensitivity_iso": 850,
    "auto_exposure_enable": True,
    "auto_exposure_compensation": 0,
    "auto_exposure_limit": 0,
    "auto_exposure_lock": False,
    "contrast": 0,
    "brightness": 0,
    "saturation": 0,
    "chroma_denoise": 0,
    "luma_denoise": 0,
    "auto_whitebalance_lock": False,
    "auto_whitebalance_mode": "AUTO",
    "manual_whitebalance": 6500,
    "focus": None,
}


# ----- control merge-patch --------------------------------------------------------------------------------
def initial_control(*, has_focus: bool) -> dict[str, Any]:
    control = copy.deepcopy(INITIAL_CONTROL)
    if has_focus:
        control["focus"] = dict(FOCUS_DEFAULTS)
    return control


def merge_control(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Shallow merge-patch of the stored control with the fields a client set (``None`` values ignored).

    A ``focus`` object replaces the stored one whole, with unset fields at their defaults (``{}`` resets).
    Returns a new dict and leaves ``current`` alone; a shallow copy is enough because stored controls
    are never changed in place (``focus`` is always replaced by a new dict, the other values are scalars).
    """
    merged = dict(current)
    for key, value in update.items():
        if value is None:
            continue
        if key == "focus":
            merged["focus"] = {**FOCUS_DEFAULTS, **value}
        else:
            merged[key] = value
    return merged


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same JSON type (``1``, ``1.0`` and ``True`` compare equal in Python but not on the wire)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(v, b[k]) for k, v in a.items())
    return bool(a == b)


# ----- runtime state --------------------------------------------------------------------------------------
@dataclass
class NeuralNetwork:
    kind: str  # YOLO, MobileNet or Generic
    config: dict[str, Any]
    blob_size: int


@dataclass
class Camera:
    """One booted OAK device: which streams are active, their configs and controls."""

    spec: DeviceSpec
    number: int  # position in the rig config; goes into the frame stamp
    active_cams: set[str] = field(default_factory=set)
    active_pair: str | None = None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per socket letter
    controls: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stream name
    networks: dict[str, NeuralNetwork] = field(default_factory=dict)  # per stream name
    ir: dict[str, float] | None = None
    # Whether a network was deployed since boot: main's pipeline then stays an NN pipeline, whose NN delete restarts.
    nn_pipeline: bool = False

    @classmethod
    def boot(cls, spec: DeviceSpec, number: int) -> Camera:
        camera = cls(spec=spec, number=number)
        camera.reboot()
        return camera

    def reboot(self) -> None:
        """Boot state: every sensor stream active with its boot config and control; depth off."""
        self.active_cams = {s.socket for s in self.spec.sensors}
        self.active_pair = None
        self.configs = {s.socket: self._boot_config(s) for s in self.spec.sensors}
        self.controls = {f"CAM_{s.socket}": initial_control(has_focus=s.autofocus) for s in self.spec.sensors}
        self.networks = {}
        self.nn_pipeline = False
        self.ir = {"flood_light": 0.0, "dot_projector": 0.0} if self.spec.ir else None

    def reset_controls(self) -> None:
        """Every active stream's control back to the initial one (a restart builds new sensor objects on main)."""
        for stream in self.active_streams():
            has_focus = stream.startswith("CAM_") and self.sensor_of(stream).autofocus
            self.controls[stream] = initial_control(has_focus=has_focus)

    @staticmethod
    def _boot_config(sensor: SensorSpec) -> dict[str, Any]:
        return copy.deepcopy(COLOR_BOOT_CONFIG if sensor.kind == "color" else MONO_BOOT_CONFIG)

    # ----- lookups ------------------------------------------------------------------------------------------
    @property
    def mxid(self) -> str:
        return self.spec.mxid

    def knows(self, stream: str) -> bool:
        return stream in self.spec.stream_set

    def is_active(self, stream: str) -> bool:
        if stream.startswith("CAM_"):
            return stream[4] in self.active_cams
        return stream == self.active_pair

    def require_known(self, stream: str) -> None:
        if not self.knows(stream):
            raise StreamNotFound(self.mxid, stream, f"{self.spec.model} has no stream {stream}")

    def require_active(self, stream: str) -> None:
        self.require_known(stream)
        if not self.is_active(stream):
            raise StreamNotFound(self.mxid, stream, f"stream {stream} is not active")

    def stream_list(self) -> list[tuple[str, bool]]:
        """Connected sockets first, then one entry per stereo pair, as the real server lists them."""
        return [(name, self.is_active(name)) for name in self.spec.stream_order]

    def active_streams(self) -> list[str]:
        return [name for name, active in self.stream_list() if active]

    def sensor_of(self, stream: str) -> SensorSpec:
        """The sensor that produces a stream's frames (a pair's frames are aligned to its right sensor)."""
        socket = stream[4] if stream.startswith("CAM_") else stream[8]
        sensor = self.spec.sensor(socket)
        assert sensor is not None
        return sensor

    # ----- activation state machine -------------------------------------------------------------------------
    def activate(self, stream: str) -> bool:
        """Activate a stream; returns True when the pipeline changes (and so restarts)."""
        self.require_known(stream)
        if self.is_active(stream):
            return False
        if stream.startswith("CAM_"):
            socket = stream[4]
            pair = self.spec.pair(self.active_pair) if self.active_pair else None
            if pair is not None and socket in (pair.left, pair.right):
                # Re-activating one sensor of the active pair removes the pair; its partner stays off.
                self._drop_pair()
            sensor = self.spec.sensor(socket)
            assert sensor is not None
            self.active_cams.add(socket)
            self.configs[socket] = self._boot_config(sensor)
            self.controls[stream] = initial_control(has_focus=sensor.autofocus)
        else:
            pair = self.spec.pair(stream)
            assert pair is not None
            if self.active_pair is not None:
                self._drop_pair()  # one pair at a time; the old pair's sensors stay off
            for socket in (pair.left, pair.right):
                self.active_cams.discard(socket)
                self.controls.pop(f"CAM_{socket}", None)
                self.networks.pop(f"CAM_{socket}", None)
                # Stereo runs two 400P monos whatever the sensors were configured to.
                self.configs[socket] = copy.deepcopy(MONO_BOOT_CONFIG)
            self.active_pair = stream
            self.controls[stream] = initial_control(has_focus=False)
        return True

    def deactivate(self, stream: str) -> bool:
        """Deactivate a stream; a pair's sensors are not re-activated. True when the pipeline changes."""
        self.require_known(stream)
        if not self.is_active(stream):
            return False
        if stream.startswith("CAM_"):
            self.active_cams.discard(stream[4])
            self.controls.pop(stream, None)
            self.networks.pop(stream, None)
        else:
            self._drop_pair()
        return True

    def _drop_pair(self) -> None:
        if self.active_pair is not None:
            self.controls.pop(self.active_pair, None)
            self.networks.pop(self.active_pair, None)
            self.active_pair = None

    # ----- config -------------------------------------------------------------------------------------------
    def config(self, stream: str) -> dict[str, Any]:
        self.require_active(stream)
        return copy.deepcopy(self.configs[self.sensor_of_config(stream)])

    def sensor_of_config(self, stream: str) -> str:
        """The socket whose config a stream reports: a pair reports its left mono's."""
        return stream[4] if stream.startswith("CAM_") else stream[6]

    def set_config(self, stream: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply one complete config variant (``color``, ``mono`` or ``generic``); returns the config read back."""
        self.require_active(stream)
        if stream.startswith("DEPTH_"):
            if variant != "mono":
                raise ConfigRejected(
                    ("body",),
                    f"{stream} takes MonoCameraConfigProperties (applied to both monos)",
                    kind="variant",
                    body=body,
                )
            pair = self.spec.pair(stream)
            assert pair is not None
            targets = [self.spec.sensor(pair.left), self.spec.sensor(pair.right)]
        else:
            targets = [self.spec.sensor(stream[4])]
        for sensor in targets:
            assert sensor is not None
            _check_variant(stream, sensor, variant, body)
            _check_values(sensor, body)
        for sensor in targets:
            assert sensor is not None
            self.configs[sensor.socket] = copy.deepcopy(body)
        return self.config(stream)

    def merge_config(self, stream: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Overwrite some fields of a sensor's stored config, keeping its shape; returns the config read back."""
        self.require_active(stream)
        socket = self.sensor_of_config(stream)
        self.configs[socket] = {**self.configs[socket], **copy.deepcopy(fields)}
        return self.config(stream)

    def frame_size(self, stream: str, purpose: str = "video") -> tuple[int, int]:
        """Width and height of a stream's frames: ``video_size``/``still_size`` for colour, resolution otherwise."""
        config = self.configs[self.sensor_of_config(stream)]
        sensor = self.sensor_of(stream)
        if stream.startswith("CAM_") and "video_size" in config:
            key = "still_size" if purpose == "still" else "video_size"
            return int(config[key][0]), int(config[key][1])
        if isinstance(config["resolution"], str):
            return resolution_size(sensor.kind, config["resolution"])
        return int(config["resolution"][0]), int(config["resolution"][1])

    def fps(self, stream: str) -> float:
        config = self.configs[self.sensor_of_config(stream)]
        return float(min(float(config["fps"]), self.sensor_of(stream).max_fps))

    # ----- control ------------------------------------------------------------------------------------------
    def control(self, stream: str) -> dict[str, Any]:
        """A copy of the stream's control that the caller may change."""
        return copy.deepcopy(self.control_snapshot(stream))

    def control_snapshot(self, stream: str) -> dict[str, Any]:
        """The stored control itself, without a copy: read it, never change it.

        Controls are replaced whole on every change and never edited in place, so the same object means
        the same values; the wire layer keys its serialized body on it.
        """
        self.require_active(stream)
        return self.controls[stream]

    def set_control(self, stream: str, update: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the stream's control; returns a copy of the result that the caller may change."""
        return copy.deepcopy(self.apply_control(stream, update))

    def apply_control(self, stream: str, update: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the stream's control; returns the stored snapshot (read it, never change it).

        An update that changes nothing keeps the stored object, so a cached body of it stays valid.
        """
        self.require_active(stream)
        current = self.controls[stream]
        merged = merge_control(current, update)
        # Only the fields named in the update can differ (None values are not applied, so never differ).
        for key, value in update.items():
            if value is not None and not same_value(merged[key], current.get(key)):
                self.controls[stream] = merged
                break
        return self.controls[stream]

    # ----- neural networks ----------------------------------------------------------------------------------
    def deploy_network(self, stream: str, network: NeuralNetwork) -> None:
        self.require_active(stream)
        self.networks[stream] = network

    def delete_network(self, stream: str) -> bool:
        self.require_known(stream)
        return self.networks.pop(stream, None) is not None

    # ----- IR -----------------------------------------------------------------------------------------------
    def set_ir(self, values: dict[str, float]) -> dict[str, float] | None:
        if self.ir is None:
            return None
        self.ir = {"flood_light": float(values["flood_light"]), "dot_projector": float(values["dot_projector"])}
        return dict(self.ir)


def _check_variant(stream: str, sensor: SensorSpec, variant: str, body: dict[str, Any]) -> None:
    if variant == "color" and sensor.kind == "color":
        return
    if variant == "mono" and sensor.kind == "mono":
        return
    if variant == "mono" and sensor.kind == "color" and body["resolution"] in MONO_NAMES_FOR_COLOR:
        return
    names = {"color": "ColorCameraConfigProperties", "mono": "MonoCameraConfigProperties"}
    sent = names.get(variant, "CameraConfigProperties")
    if sensor.kind == "color":
        allowed = f"ColorCameraConfigProperties, or MonoCameraConfigProperties with {', '.join(MONO_NAMES_FOR_COLOR)}"
    else:
        allowed = "MonoCameraConfigProperties"
    raise ConfigRejected(
        ("body",),
        f"{sent} cannot be applied to {stream} ({sensor.model} {sensor.kind} sensor); it takes {allowed}",
        kind="variant",
        body=body,
    )


def _check_values(sensor: SensorSpec, body: dict[str, Any]) -> None:
    fps = float(body["fps"])
    if not fps > 0:
        raise ConfigRejected(("body", "fps"), f"fps must be greater than 0, got {body['fps']}", kind="value", body=body)
    if "still_size" not in body:
        return
    width, height = resolution_size(sensor.kind, body["resolution"])
    for key in ("still_size", "preview_size", "video_size"):
        w, h = body[key]
        if w <= 0 or h <= 0:
            raise ConfigRejected(("body", key), f"{key} must be positive, got [{w}, {h}]", kind="value", body=body)
        if w > width or h > height:
            raise ConfigRejected(
                ("body", key),
                f"{key} [{w}, {h}] is bigger than the sensor resolution {body['resolution']} ({width}x{height})",
                kind="value",
                body=body,
            )
    w, h = body["video_size"]
    if w > VIDEO_SIZE_CAP[0] or h > VIDEO_SIZE_CAP[1]:
        raise ConfigRejected(
            ("body", "video_size"),
            f"video_size [{w}, {h}] is above the {VIDEO_SIZE_CAP[0]}x{VIDEO_SIZE_CAP[1]} video limit",
            kind="value",
            body=body,
        )
    for value in body["sensor_crop"]:
        if not 0.0 <= value <= 1.0:
            raise ConfigRejected(
                ("body", "sensor_crop"),
                f"sensor_crop values must be between 0.0 and 1.0, got {value}",
                kind="value",
                body=body,
            )
