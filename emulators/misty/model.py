"""Misty II's backend: service exclusivity, stream lifecycles, reboots, microphone gating and every documented range.

Pure Python (no asyncio, no I/O, no clock reads: ``now`` is passed in). The service asks the backend, performs
the I/O its answer implies (bind a port, close viewers, start an AV push) and reports back. Rules raise
``MistyError`` subclasses, which carry their HTTP status; the REST layer renders them in one place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from emulators.misty.args import ArgumentError, Arguments

SERVICES = ("avstreaming", "camera", "audio", "slam")
BOOT_SERVICES = {"avstreaming": False, "camera": True, "audio": True, "slam": True}

# --- documented ranges (misty.md §2.2, §2.5) -----------------------------------------------------------
PORT_RANGE = (1024, 65535)
ROTATION_RANGE = (0, 180)
VIDEO_SIZE_RANGE = (200, 1600)  # or 0 = keep
QUALITY_RANGE = (1, 100)

AV_STREAM = "av"  # the AV stream's name for faults (`{"match": {"stream": "av"}}`) and pacing stats
AV_RESOLUTIONS = ((1920, 1080), (1920, 1280), (1280, 960), (640, 480), (320, 240))
AV_DEFAULT_SIZE = (1920, 1080)
FRAME_RATE_RANGE = (1, 30)
VIDEO_BITRATE_RANGE = (256_000, 20_000_000)
AUDIO_BITRATE_RANGE = (32_000, 1_000_000)
SAMPLE_RATES = (11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

PICTURE_RESOLUTIONS = (
    (4160, 3120), (3840, 2160), (3264, 2448), (3200, 2400), (2592, 1944), (2048, 1536), (1920, 1080),
    (1600, 1200), (1440, 1080), (1280, 960), (1024, 768), (800, 600), (640, 480), (320, 240),
)  # fmt: skip
PICTURE_DEFAULT_SIZE = (4160, 3120)
MAX_SPEECH_LENGTH_RANGE = (500, 20_000)
SILENCE_TIMEOUT_RANGE = (500, 10_000)
WEBSOCKET_VERSIONS = ("Current", "Deprecated")

# --- error texts (misty.md §2.5) ---------------------------------------------------------------------------
CAMERA_DISABLED = "Camera service is disabled. Enable it with EnableCameraService (POST /api/services/camera/enable)."
AV_DISABLED = (
    "AV streaming service is disabled. Enable it with EnableAvStreamingService (POST /api/services/avstreaming/enable)."
)
AV_ACTIVE = "AV streaming is already active. Call StopAvStreaming first."
MICS_BUSY_AV = "Microphones are in use by AV streaming. Stop AV streaming first."
AUDIO_DISABLED = "Audio service is disabled. Enable it with EnableAudioService (POST /api/services/audio/enable)."
RESTARTING = "Robot is restarting"


class MistyError(Exception):
    """A command failed; ``status`` is the HTTP code the robot answers with, ``body()`` its failure envelope."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:  # an HTTP-level error (413, a bad upgrade) keeps its own status
            self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.message, "status": "Failed"}


class BadArgument(MistyError):
    status = 400


class CommandNotFound(MistyError):
    status = 404


class CommandException(MistyError):
    status = 500


class ServiceUnavailable(MistyError):
    status = 503


class IllegalTransition(CommandException):
    """The service asked for a status change the transition table forbids: a bug, answered as a 500."""


def _between(name: str, value: int, lo: int, hi: int, *, also: str = "") -> int:
    if not lo <= value <= hi:
        raise BadArgument(f"Invalid value for parameter '{name}': {value}. Must be between {lo} and {hi}{also}.")
    return value


def _integer(args: Arguments, name: str, default: int) -> int:
    try:
        value = args.integer(name, default)
    except ArgumentError as exc:
        raise BadArgument(exc.message) from None
    assert value is not None
    return value


def boolean_argument(args: Arguments, name: str, default: bool) -> bool:
    """A boolean argument with the robot's coercion; BadArgument naming it when it cannot be one."""
    try:
        return args.boolean(name, default)
    except ArgumentError as exc:
        raise BadArgument(exc.message) from None


def string_argument(args: Arguments, name: str) -> str | None:
    """A string argument (None when unset); BadArgument naming it when it is not a string."""
    try:
        return args.string(name)
    except ArgumentError as exc:
        raise BadArgument(exc.message) from None


# --- command parameters ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoParams:
    """StartVideoStreaming's arguments after binding and validation."""

    port: int = 5678
    rotation: int = 0
    width: int = 0
    height: int = 0
    quality: int = 100
    overlay: bool = False

    @classmethod
    def from_arguments(cls, args: Arguments) -> VideoParams:
        port = _between("Port", _integer(args, "Port", 5678), *PORT_RANGE)
        rotation = _between("Rotation", _integer(args, "Rotation", 0), *ROTATION_RANGE)
        sizes = []
        for name in ("Width", "Height"):
            value = _integer(args, name, 0)
            if value != 0:
                _between(name, value, *VIDEO_SIZE_RANGE, also=", or 0 to keep the camera's size")
            sizes.append(value)
        quality = _between("Quality", _integer(args, "Quality", 100), *QUALITY_RANGE)
        overlay = boolean_argument(args, "Overlay", False)
        return cls(port=port, rotation=rotation, width=sizes[0], height=sizes[1], quality=quality, overlay=overlay)


@dataclass(frozen=True)
class AvRequest:
    """StartAvStreaming's arguments after validation; ``mode`` (from the URL) is rtmp, rtsp (push) or rtspd (serve)."""

    url: str
    width: int
    height: int
    frame_rate: int
    video_bitrate: int
    audio_bitrate: int
    sample_rate: int
    username: str | None
    password: str | None

    @property
    def mode(self) -> str:
        return split_av_url(self.url)[0]

    @property
    def rtspd_port(self) -> int | None:
        """The port of an ``rtspd:<port>`` URL (0 lets the system choose, for in-process use); None for a push."""
        return split_av_url(self.url)[1]

    @classmethod
    def from_arguments(cls, args: Arguments) -> AvRequest:
        try:
            url = args.required_string("URL", "start AV streaming")
        except ArgumentError as exc:
            raise BadArgument(exc.message) from None
        rtspd_port = split_av_url(url)[1]
        if rtspd_port is not None:
            _between("URL", rtspd_port, *PORT_RANGE)
        width = _integer(args, "Width", AV_DEFAULT_SIZE[0])
        height = _integer(args, "Height", AV_DEFAULT_SIZE[1])
        if (width, height) not in AV_RESOLUTIONS:
            allowed = ", ".join(f"{w}x{h}" for w, h in AV_RESOLUTIONS)
            raise BadArgument(
                f"Invalid value for parameters 'Width' and 'Height': {width}x{height}. Must be one of {allowed}."
            )
        frame_rate = _between("FrameRate", _integer(args, "FrameRate", 30), *FRAME_RATE_RANGE)
        video_bitrate = _between("VideoBitRate", _integer(args, "VideoBitRate", 5_000_000), *VIDEO_BITRATE_RANGE)
        audio_bitrate = _between("AudioBitRate", _integer(args, "AudioBitRate", 128_000), *AUDIO_BITRATE_RANGE)
        sample_rate = _integer(args, "AudioSampleRateHz", 44100)
        if sample_rate not in SAMPLE_RATES:
            allowed = ", ".join(str(r) for r in SAMPLE_RATES)
            raise BadArgument(
                f"Invalid value for parameter 'AudioSampleRateHz': {sample_rate}. Must be one of {allowed}."
            )
        return cls(
            url=url,
            width=width,
            height=height,
            frame_rate=frame_rate,
            video_bitrate=video_bitrate,
            audio_bitrate=audio_bitrate,
            sample_rate=sample_rate,
            username=string_argument(args, "UserName"),
            password=string_argument(args, "Password"),
        )


def split_av_url(url: str) -> tuple[str, int | None]:
    """(``rtmp``|``rtsp``|``rtspd``, the rtspd port or None), the scheme matched case-insensitively."""
    lowered = url.lower()
    if lowered.startswith("rtspd:"):
        text = url[len("rtspd:") :].strip()
        if not (text.isascii() and text.isdigit()):
            raise BadArgument(
                f"Invalid value for parameter 'URL': {url!r}. An rtspd URL is rtspd:<port> with a port between"
                f" {PORT_RANGE[0]} and {PORT_RANGE[1]}."
            )
        return "rtspd", int(text)
    for scheme in ("rtmp", "rtsp"):
        if lowered.startswith(f"{scheme}://") and len(url) > len(scheme) + 3:
            return scheme, None
    raise BadArgument(
        f"Invalid value for parameter 'URL': {url!r}. Must start with rtmp://, rtsp:// or be rtspd:<port>."
    )


@dataclass(frozen=True)
class PictureRequest:
    """TakePicture's arguments: the requested size and whether to answer base64 JSON or JPEG bytes."""

    width: int
    height: int
    base64: bool
    file_name: str | None
    display_on_screen: bool = False
    overwrite_existing: bool = False

    @classmethod
    def from_arguments(cls, args: Arguments) -> PictureRequest:
        width = _integer(args, "Width", 0)
        height = _integer(args, "Height", 0)
        if (width == 0) != (height == 0):
            raise BadArgument("Parameters 'Width' and 'Height' must be given together, or neither.")
        if width == 0:
            width, height = PICTURE_DEFAULT_SIZE
        if (width, height) not in PICTURE_RESOLUTIONS:
            allowed = ", ".join(f"{w}x{h}" for w, h in PICTURE_RESOLUTIONS)
            raise BadArgument(
                f"Invalid value for parameters 'Width' and 'Height': {width}x{height}. Must be one of {allowed}."
            )
        return cls(
            width=width,
            height=height,
            base64=boolean_argument(args, "Base64", False),
            file_name=string_argument(args, "FileName"),
            display_on_screen=boolean_argument(args, "DisplayOnScreen", False),
            overwrite_existing=boolean_argument(args, "OverwriteExisting", False),
        )


@dataclass(frozen=True)
class SpeechCaptureRequest:
    max_speech_length_ms: int
    silence_timeout_ms: int
    overwrite_existing: bool = False

    @classmethod
    def from_arguments(cls, args: Arguments) -> SpeechCaptureRequest:
        return cls(
            max_speech_length_ms=_between(
                "MaxSpeechLength", _integer(args, "MaxSpeechLength", 7500), *MAX_SPEECH_LENGTH_RANGE
            ),
            silence_timeout_ms=_between(
                "SilenceTimeout", _integer(args, "SilenceTimeout", 5000), *SILENCE_TIMEOUT_RANGE
            ),
            overwrite_existing=boolean_argument(args, "OverwriteExisting", False),
        )


def recording_file_name(args: Arguments) -> str:
    """StartRecordingAudio's FileName: required, and it must end in .wav."""
    try:
        name = args.required_string("FileName", "start recording audio")
    except ArgumentError as exc:
        raise BadArgument(exc.message) from None
    if not name.lower().endswith(".wav"):
        raise BadArgument(f"Invalid value for parameter 'FileName': {name!r}. Must end with .wav.")
    return name



# --- state -------------------------------------------------------------------------------------------------
class RobotStatus(Enum):
    """Whether the robot answers commands: a reboot with a restart delay makes it RESTARTING (503) until ready."""

    READY = "ready"
    RESTARTING = "restarting"


class AvStatus(Enum):
    """The AV stream: CONNECTING while a push handshakes (a second start is refused), STREAMING once media flows."""

    IDLE = "idle"
    CONNECTING = "connecting"
    STREAMING = "streaming"


# A reboot during a restart starts the wait over, so RESTARTING -> RESTARTING is legal.
ROBOT_TRANSITIONS: dict[RobotStatus, frozenset[RobotStatus]] = {
    RobotStatus.READY: frozenset({RobotStatus.RESTARTING}),
    RobotStatus.RESTARTING: frozenset({RobotStatus.RESTARTING, RobotStatus.READY}),
}
AV_TRANSITIONS: dict[AvStatus, frozenset[AvStatus]] = {
    AvStatus.IDLE: frozenset({AvStatus.CONNECTING}),
    AvStatus.CONNECTING: frozenset({AvStatus.STREAMING, AvStatus.IDLE}),
    AvStatus.STREAMING: frozenset({AvStatus.IDLE}),
}


def _check_transition(table: dict[Any, frozenset[Any]], current: Enum, new: Enum) -> None:
    if new not in table[current]:
        raise IllegalTransition(f"Illegal status change: {type(current).__name__} {current.value} -> {new.value}.")


@dataclass
class StreamRecord:
    """A running stream as the backend sees it: what was asked for, its stamp id and when it started."""

    stream_id: int
    started_at: float
    video: VideoParams | None = None
    av: AvRequest | None = None


@dataclass(frozen=True)
class Consequences:
    """What a state change implies for the service: streams to stop, the event WebSocket to close or reopen."""

    stop_video: bool = False
    stop_av: bool = False
    close_pubsub: bool = False
    open_pubsub: bool = False
    camera_flaked: bool = False  # the camera_enable_flaky quirk fired: answer true, change nothing


@dataclass(frozen=True)
class RobotReady:
    """The restart delay is over: commands are answered again; ``open_pubsub`` if a Core reboot closed it."""

    open_pubsub: bool


@dataclass
class MistyBackend:
    """The robot's service, stream, microphone and reboot state, and every rule that changes it.

    ``single_viewer`` and ``camera_enable_flaky`` are the quirk settings; ``seed`` makes the flaky camera repeatable.
    """

    single_viewer: bool = False
    camera_enable_flaky: float = 0.0
    seed: int = 0
    services: dict[str, bool] = field(default_factory=lambda: dict(BOOT_SERVICES))
    status: RobotStatus = RobotStatus.READY
    ready_at: float | None = None  # when a restart delay ends (the clock the service passes as ``now``)
    pubsub_open: bool = True
    video: StreamRecord | None = None
    av: StreamRecord | None = None
    av_status: AvStatus = AvStatus.IDLE
    viewer_latch_taken: bool = False  # single_viewer: a viewer has connected since boot
    recording: str | None = None  # audio recording file name
    raw_recording: bool = False
    keyphrase: bool = False
    capture_until: float = 0.0  # speech capture holds the microphones until then
    video_recording: bool = False
    face_detection: bool = False
    face_recognition: bool = False
    slam_streaming: bool = False
    websocket_version: str = "Current"
    next_stream_id: int = 1
    # Commands the emulator keeps no model of: the last arguments each was sent (GetX answers what SetX stored).
    remembered_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # ----- readiness and reboot ---------------------------------------------------------------------------
    def require_ready(self) -> None:
        if self.status is RobotStatus.RESTARTING:
            raise ServiceUnavailable(RESTARTING)

    @property
    def restarting(self) -> bool:
        return self.status is RobotStatus.RESTARTING

    def reboot(
        self, *, core: bool, sensory_services: bool, now: float = 0.0, restart_s: float = 0.0
    ) -> Consequences | None:
        """Either part restarts the sensory services: streams stop, services return to boot state, mics free.

        Core also closes the event WebSocket (forgetting every registration) and resets its format. With a
        ``restart_s`` delay the robot is RESTARTING until ``now + restart_s`` (see ``advance``). Neither part
        is no reboot at all: None.
        """
        if not (core or sensory_services):
            return None
        stop_video = self.video is not None
        stop_av = self._end_av()
        self.video = None
        self.services = dict(BOOT_SERVICES)
        self._release_microphones()
        self.video_recording = self.face_detection = self.face_recognition = False
        self.slam_streaming = False
        self.viewer_latch_taken = False
        close_pubsub = core and self.pubsub_open
        if core:
            self.websocket_version = "Current"
            self.pubsub_open = False
        open_pubsub = False
        if restart_s > 0:
            self._move(RobotStatus.RESTARTING)
            self.ready_at = now + restart_s
        else:
            if self.status is RobotStatus.RESTARTING:
                self._move(RobotStatus.READY)
                self.ready_at = None
            open_pubsub = not self.pubsub_open
            self.pubsub_open = True
        return Consequences(stop_video=stop_video, stop_av=stop_av, close_pubsub=close_pubsub, open_pubsub=open_pubsub)

    def next_wakeup(self) -> float | None:
        """When ``advance`` has something to do (the end of a restart delay), or None."""
        return self.ready_at if self.status is RobotStatus.RESTARTING else None

    def advance(self, now: float) -> list[RobotReady]:
        """Apply what is due at ``now``: the end of a restart delay."""
        if self.ready_at is None or self.status is not RobotStatus.RESTARTING or now < self.ready_at:
            return []
        self._move(RobotStatus.READY)
        self.ready_at = None
        open_pubsub = not self.pubsub_open
        self.pubsub_open = True
        return [RobotReady(open_pubsub=open_pubsub)]

    def _move(self, status: RobotStatus) -> None:
        _check_transition(ROBOT_TRANSITIONS, self.status, status)
        self.status = status

    # ----- services ---------------------------------------------------------------------------------------
    def service_enabled(self, service: str) -> bool:
        self._check_service(service)
        return self.services[service]

    def switch_service(self, service: str, enable: bool) -> Consequences:
        """Enable or disable a service; a camera enable from off may flake (the ``camera_enable_flaky`` quirk)."""
        self._check_service(service)
        if not enable:
            return self.disable(service)
        flake = service == "camera" and not self.services["camera"] and self._rng.random() < self.camera_enable_flaky
        return self.enable(service, camera_flake=flake)

    def enable(self, service: str, *, camera_flake: bool = False) -> Consequences:
        """Enable a service; the camera and AV services exclude each other. ``camera_flake`` = it silently fails."""
        self._check_service(service)
        if service == "camera":
            if camera_flake:
                return Consequences(camera_flaked=True)
            self.services["camera"] = True
            return self._turn_off("avstreaming")
        if service == "avstreaming":
            self.services["avstreaming"] = True
            return self._turn_off("camera")
        self.services[service] = True
        return Consequences()

    def disable(self, service: str) -> Consequences:
        self._check_service(service)
        return self._turn_off(service)

    def _turn_off(self, service: str) -> Consequences:
        self.services[service] = False
        if service == "camera":
            stop_video = self.video is not None
            self.video = None
            self.video_recording = self.face_detection = self.face_recognition = False
            return Consequences(stop_video=stop_video)
        if service == "avstreaming":
            return Consequences(stop_av=self._end_av())
        if service == "audio":
            self._release_microphones()
        return Consequences()

    @staticmethod
    def _check_service(service: str) -> None:
        if service not in SERVICES:
            raise CommandNotFound(f"Unknown service '{service}'. Must be one of {', '.join(SERVICES)}.")

    # ----- gates ------------------------------------------------------------------------------------------
    def require_camera(self) -> None:
        if not self.services["camera"]:
            raise BadArgument(CAMERA_DISABLED)

    def require_microphones(self) -> None:
        if not self.services["audio"]:
            raise BadArgument(AUDIO_DISABLED)
        if self.av is not None:
            raise BadArgument(MICS_BUSY_AV)

    def microphones_in_use(self, now: float) -> str | None:
        """What holds the microphones (recording, raw recording, speech capture, key phrase), if anything."""
        if self.recording is not None:
            return "audio recording"
        if self.raw_recording:
            return "raw audio recording"
        if now < self.capture_until:
            return "speech capture"
        if self.keyphrase:
            return "key phrase recognition"
        return None

    # ----- video WebSocket --------------------------------------------------------------------------------
    def check_video_start(self, params: VideoParams) -> None:
        self.require_camera()

    def video_started(self, params: VideoParams, now: float) -> StreamRecord:
        self.video = StreamRecord(stream_id=self.take_stream_id(), started_at=now, video=params)
        return self.video

    def video_bind_failed(self, previous: StreamRecord | None) -> None:
        """The new port could not be bound: the stream that was running (if any) goes on untouched."""
        self.video = previous

    def video_stopped(self) -> None:
        self.video = None

    def admit_viewer(self) -> bool:
        """Whether a new video viewer receives frames: with ``single_viewer`` only the first since boot does."""
        if not self.single_viewer:
            return True
        if self.viewer_latch_taken:
            return False
        self.viewer_latch_taken = True
        return True

    def camera_details(self, now: float, *, frames_encoded: int, dropped_frames: int) -> dict[str, Any]:
        """GetCameraDetails: 640x480 at 30 fps requested; fpsActual measured from the running video stream."""
        self.require_camera()
        fps = 30.0
        if self.video is not None and frames_encoded:
            elapsed = max(1e-3, now - self.video.started_at)
            fps = round(min(30.0, frames_encoded / elapsed), 2)
        return {
            "droppedFrames": dropped_frames,
            "fpsActual": fps,
            "fpsRequested": 30,
            "height": 480.0,
            "width": 640.0,
        }

    # ----- AV streaming -----------------------------------------------------------------------------------
    def check_av_start(self, request: AvRequest, now: float) -> None:
        if not self.services["avstreaming"]:
            raise BadArgument(AV_DISABLED)
        if self.av is not None:
            raise BadArgument(AV_ACTIVE)
        holder = self.microphones_in_use(now)
        if holder is not None:
            raise BadArgument(f"Microphones are in use by {holder}. Stop it before starting AV streaming.")

    def av_started(self, request: AvRequest, now: float) -> StreamRecord:
        """The start was accepted: CONNECTING until the push target (or the rtspd port) is ready."""
        self.check_av_start(request, now)
        self._av_to(AvStatus.CONNECTING)
        self.av = StreamRecord(stream_id=self.take_stream_id(), started_at=now, av=request)
        return self.av

    def av_connected(self) -> None:
        self._av_to(AvStatus.STREAMING)

    def stop_av_command(self) -> Consequences:
        """StopAvStreaming: true while the service is on, streaming or not; 400 with the service off."""
        if not self.services["avstreaming"]:
            raise BadArgument(AV_DISABLED)
        return Consequences(stop_av=self._end_av())

    def av_failed(self) -> None:
        """The push could not connect, or broke after start: the stream goes idle and is not retried."""
        self._end_av()

    def av_stopped(self) -> None:
        self._end_av()

    def _end_av(self) -> bool:
        """Back to IDLE; True if a stream was running (or connecting)."""
        if self.av_status is AvStatus.IDLE:
            return False
        self._av_to(AvStatus.IDLE)
        self.av = None
        return True

    def _av_to(self, status: AvStatus) -> None:
        _check_transition(AV_TRANSITIONS, self.av_status, status)
        self.av_status = status

    # ----- microphones ------------------------------------------------------------------------------------
    def start_recording(self, file_name: str) -> None:
        self.require_microphones()
        self.recording = file_name

    def start_raw_recording(self) -> None:
        self.require_microphones()
        self.raw_recording = True

    def start_speech_capture(self, request: SpeechCaptureRequest, now: float) -> None:
        self.require_microphones()
        self.capture_until = now + request.max_speech_length_ms / 1000.0

    def start_keyphrase(self) -> None:
        self.require_microphones()
        self.keyphrase = True

    def stop_recording(self) -> None:
        self.recording = None

    def stop_raw_recording(self) -> None:
        self.raw_recording = False

    def stop_keyphrase(self) -> None:
        self.keyphrase = False

    def _release_microphones(self) -> None:
        self.recording = None
        self.raw_recording = False
        self.keyphrase = False
        self.capture_until = 0.0

    # ----- camera-service stubs ---------------------------------------------------------------------------
    def set_camera_activity(self, activity: str, running: bool) -> None:
        """Video recording and face detection/recognition: state only, and only with the camera on."""
        if running:
            self.require_camera()
        setattr(self, activity, running)

    # ----- commands without a model -----------------------------------------------------------------------
    def remembered(self, name: str, verb: str, values: dict[str, Any]) -> Any:
        """A command the emulator has no model for. POST/DELETE/PUT: accepted, and the arguments remembered
        (true). GET: what the matching Set/Update/Save/Create command last stored, an empty object if none did."""
        if verb != "get":
            self.remembered_arguments[name] = {k: v for k, v in values.items() if v is not None}
            return True
        subject = name.removeprefix("Get")
        for prefix in ("Set", "Update", "Save", "Create", "Start"):
            stored = self.remembered_arguments.get(prefix + subject)
            if stored is not None:
                return dict(stored)
        return {}

    # ----- misc -------------------------------------------------------------------------------------------
    def set_websocket_version(self, version: str | None) -> None:
        if version not in WEBSOCKET_VERSIONS:
            raise BadArgument(
                f"Invalid value for parameter 'Version': {version!r}. Must be one of {', '.join(WEBSOCKET_VERSIONS)}."
            )
        self.websocket_version = version

    def take_stream_id(self) -> int:
        stream_id = self.next_stream_id
        # 16 bits in the frame stamp; wrap rather than overflow.
        self.next_stream_id = stream_id % 0xFFFF + 1
        return stream_id

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "services": dict(self.services),
            "restarting": self.restarting,
            "video": None if self.video is None else {"stream_id": self.video.stream_id, **vars(self.video.video)},
            "av": None
            if self.av is None or self.av.av is None
            else {
                "stream_id": self.av.stream_id,
                "status": self.av_status.value,
                "url": self.av.av.url,
                "mode": self.av.av.mode,
                "width": self.av.av.width,
                "height": self.av.av.height,
                "frame_rate": self.av.av.frame_rate,
            },
            "microphones": self.microphones_in_use(now),
            "video_recording": self.video_recording,
            "face_detection": self.face_detection,
            "face_recognition": self.face_recognition,
            "websocket_version": self.websocket_version,
            "single_viewer_taken": self.viewer_latch_taken,
            "remembered": {name: dict(values) for name, values in self.remembered_arguments.items()},
        }


def device_information(*, ip_address: str, battery: dict[str, Any], created: str,
                       serial_number: str = "EMULATED-MISTY-II") -> dict[str, Any]:
    """GetDeviceInformation: the emulated robot's identity, with the live battery and the camera's creation time."""
    return {
        "androidHardwareId": "emulated-0001",
        "androidOSVersion": "8.1.0",
        "batteryLevel": battery,
        "currentNetworkId": 0,
        "currentProfileName": "benchtwin",
        "hardwareInfo": {
            "rtcBoard": {"boardId": "0x00000001", "firmware": "1.9.2", "hardware": "1.0"},
            "mcBoard": {"boardId": "0x00000002", "firmware": "1.9.2", "hardware": "1.0"},
        },
        "ipAddress": ip_address,
        "networkConnectivity": "LocalAccess",
        "occipitalDeviceInfo": {"cameraId": "emulated", "created": created},
        "outputCapabilities": ["Display", "Audio", "Drive", "Arms", "Head", "Led"],
        "robotId": "00000000000000000000",
        "robotVersion": "1.9.2.10155",
        "sensorCapabilities": ["TimeOfFlight", "Imu", "BumpSensor", "TouchSensor", "Camera", "Microphone"],
        "sensoryServiceAppVersion": "1.9.2.10155",
        "serialNumber": serial_number,
        "sku": "MistyII",
        "windowsOSVersion": "10.0.17763.1577",
    }
