"""Misty II's rules: service exclusivity, stream lifecycles, microphone gating and every documented range.

Pure Python, no I/O: the device layer asks the model, performs the I/O the answer implies (bind a port,
close viewers, start an AV push) and reports back. Rules raise ``MistyError`` subclasses that the REST
layer maps to the robot's failure envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.misty.args import ArgumentError, Arguments

SERVICES = ("avstreaming", "camera", "audio", "slam")
BOOT_SERVICES = {"avstreaming": False, "camera": True, "audio": True, "slam": True}

# --- documented ranges (misty.md §2.2, §2.5) -----------------------------------------------------------
PORT_RANGE = (1024, 65535)
ROTATION_RANGE = (0, 180)
VIDEO_SIZE_RANGE = (200, 1600)  # or 0 = keep
QUALITY_RANGE = (1, 100)
VIDEO_DEFAULTS = {"Port": 5678, "Rotation": 0, "Width": 0, "Height": 0, "Quality": 100, "Overlay": False}

AV_RESOLUTIONS = ((1920, 1080), (1920, 1280), (1280, 960), (640, 480), (320, 240))
AV_DEFAULT_SIZE = (1920, 1080)
FRAME_RATE_RANGE = (1, 30)
VIDEO_BITRATE_RANGE = (256_000, 20_000_000)
AUDIO_BITRATE_RANGE = (32_000, 1_000_000)
SAMPLE_RATES = (11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
AV_DEFAULTS = {"FrameRate": 30, "VideoBitRate": 5_000_000, "AudioBitRate": 128_000, "AudioSampleRateHz": 44100}

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
    """A command failed; ``status`` is the HTTP code the robot answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadArgument(MistyError):
    status = 400


class CommandNotFound(MistyError):
    status = 404


class CommandException(MistyError):
    status = 500


class ServiceUnavailable(MistyError):
    status = 503


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


def _boolean(args: Arguments, name: str, default: bool) -> bool:
    try:
        return args.boolean(name, default)
    except ArgumentError as exc:
        raise BadArgument(exc.message) from None


def _string(args: Arguments, name: str) -> str | None:
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
        overlay = _boolean(args, "Overlay", False)
        return cls(port=port, rotation=rotation, width=sizes[0], height=sizes[1], quality=quality, overlay=overlay)


@dataclass(frozen=True)
class AvRequest:
    """StartAvStreaming's arguments after validation; ``mode`` is rtmp, rtsp (push) or rtspd (serve)."""

    url: str
    mode: str
    rtspd_port: int | None
    width: int
    height: int
    frame_rate: int
    video_bitrate: int
    audio_bitrate: int
    sample_rate: int
    username: str | None
    password: str | None

    @classmethod
    def from_arguments(cls, args: Arguments) -> AvRequest:
        try:
            url = args.required_string("URL", "start AV streaming")
        except ArgumentError as exc:
            raise BadArgument(exc.message) from None
        mode, rtspd_port = _parse_av_url(url)
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
            mode=mode,
            rtspd_port=rtspd_port,
            width=width,
            height=height,
            frame_rate=frame_rate,
            video_bitrate=video_bitrate,
            audio_bitrate=audio_bitrate,
            sample_rate=sample_rate,
            username=_string(args, "UserName"),
            password=_string(args, "Password"),
        )


def _parse_av_url(url: str) -> tuple[str, int | None]:
    lowered = url.lower()
    if lowered.startswith("rtspd:"):
        text = url[len("rtspd:") :].strip()
        if not text.isdigit():
            raise BadArgument(
                f"Invalid value for parameter 'URL': {url!r}. An rtspd URL is rtspd:<port> with a port between"
                f" {PORT_RANGE[0]} and {PORT_RANGE[1]}."
            )
        port = int(text)
        _between("URL", port, *PORT_RANGE)
        return "rtspd", port
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
            base64=_boolean(args, "Base64", False),
            file_name=_string(args, "FileName"),
            display_on_screen=_boolean(args, "DisplayOnScreen", False),
            overwrite_existing=_boolean(args, "OverwriteExisting", False),
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
            overwrite_existing=_boolean(args, "OverwriteExisting", False),
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
@dataclass
class StreamRecord:
    """A running stream as the model sees it: what was asked for, its stamp id and when it started."""

    stream_id: int
    started_at: float
    video: VideoParams | None = None
    av: AvRequest | None = None


@dataclass(frozen=True)
class Consequences:
    """What a state change implies for the I/O layer."""

    stop_video: bool = False
    stop_av: bool = False
    close_pubsub: bool = False


@dataclass
class MistyRobot:
    """The robot's service and stream state."""

    services: dict[str, bool] = field(default_factory=lambda: dict(BOOT_SERVICES))
    video: StreamRecord | None = None
    av: StreamRecord | None = None
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

    # ----- services ---------------------------------------------------------------------------------------
    def service_enabled(self, service: str) -> bool:
        self._check_service(service)
        return self.services[service]

    def enable(self, service: str, *, camera_flake: bool = False) -> Consequences:
        """Enable a service; the camera and AV services exclude each other. ``camera_flake`` = it silently fails."""
        self._check_service(service)
        if service == "camera":
            if camera_flake:
                return Consequences()
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
            stop_av = self.av is not None
            self.av = None
            return Consequences(stop_av=stop_av)
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

    def video_stopped(self) -> None:
        self.video = None

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
        self.av = StreamRecord(stream_id=self.take_stream_id(), started_at=now, av=request)
        return self.av

    def stop_av_command(self) -> Consequences:
        """StopAvStreaming: true while the service is on, streaming or not; 400 with the service off."""
        if not self.services["avstreaming"]:
            raise BadArgument(AV_DISABLED)
        stop_av = self.av is not None
        self.av = None
        return Consequences(stop_av=stop_av)

    def av_failed(self) -> None:
        """The push broke after start: the stream goes idle and is not retried."""
        self.av = None

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

    # ----- misc -------------------------------------------------------------------------------------------
    def set_websocket_version(self, version: str | None) -> None:
        if version not in WEBSOCKET_VERSIONS:
            raise BadArgument(
                f"Invalid value for parameter 'Version': {version!r}. Must be one of {', '.join(WEBSOCKET_VERSIONS)}."
            )
        self.websocket_version = version

    def reboot(self, *, core: bool, sensory_services: bool) -> Consequences:
        """Either part restarts the sensory services: streams stop, services return to boot state, mics free."""
        if not (core or sensory_services):
            return Consequences()
        stop_video = self.video is not None
        stop_av = self.av is not None
        self.video = None
        self.av = None
        self.services = dict(BOOT_SERVICES)
        self._release_microphones()
        self.video_recording = self.face_detection = self.face_recognition = False
        self.slam_streaming = False
        if core:
            self.websocket_version = "Current"
        return Consequences(stop_video=stop_video, stop_av=stop_av, close_pubsub=core)

    def take_stream_id(self) -> int:
        stream_id = self.next_stream_id
        # 16 bits in the frame stamp; wrap rather than overflow.
        self.next_stream_id = stream_id % 0xFFFF + 1
        return stream_id

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "services": dict(self.services),
            "video": None if self.video is None else {"stream_id": self.video.stream_id, **vars(self.video.video)},
            "av": None
            if self.av is None or self.av.av is None
            else {
                "stream_id": self.av.stream_id,
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
        }
