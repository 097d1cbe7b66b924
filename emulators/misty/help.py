"""The /api/help catalogue: every emulated command with its verb, endpoint, group and typed arguments.

Shaped as the SDK's generator reads it: ``result`` maps lowercase verbs to command lists, and each argument
has a .NET ``getValueType`` name and an ``ordinalNumber``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_CORELIB = "System.Private.CoreLib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e"
# .NET value types are reported as Nullable<T> (the robot binds null as "use the default").
_VALUE_TYPES = {"Int32", "Boolean", "Double", "Single", "Byte", "DateTime"}


def value_type_name(type_name: str) -> str:
    if type_name in _VALUE_TYPES:
        return f"System.Nullable`1[[System.{type_name}, {_CORELIB}]], {_CORELIB}"
    return f"System.{type_name}, {_CORELIB}"


@dataclass(frozen=True)
class Command:
    verb: str  # lowercase: get, post, delete, put
    endpoint: str  # without the /api/ prefix
    name: str
    group: str
    arguments: tuple[tuple[str, str], ...] = ()  # (camelCase name, .NET type name)

    def as_help(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "apiCommand": {
                "name": self.name,
                "apiCommandGroup": self.group,
                "arguments": {
                    arg: {"getValueType": value_type_name(kind), "ordinalNumber": i}
                    for i, (arg, kind) in enumerate(self.arguments)
                },
            },
        }


_I, _B, _S = "Int32", "Boolean", "String"
COMMANDS: tuple[Command, ...] = (
    Command("get", "help", "GetHelp", "Help", (("command", _S),)),
    Command("get", "device", "GetDeviceInformation", "Info"),
    Command("get", "battery", "GetBatteryLevel", "Info"),
    Command("get", "camera", "GetCameraDetails", "Camera"),
    Command("get", "websockets", "GetWebsocketNames", "Events", (("websocketClass", _S),)),
    Command("get", "websocket/version", "GetWebsocketVersion", "Events"),
    Command("post", "websocket/version", "SetWebsocketVersion", "Events", (("version", _S),)),
    Command("post", "reboot", "Reboot", "System", (("core", _B), ("sensoryServices", _B))),
    Command(
        "post",
        "videostreaming/start",
        "StartVideoStreaming",
        "Camera",
        (("port", _I), ("rotation", _I), ("width", _I), ("height", _I), ("quality", _I), ("overlay", _B)),
    ),
    Command("post", "videostreaming/stop", "StopVideoStreaming", "Camera"),
    Command(
        "post",
        "avstreaming/start",
        "StartAvStreaming",
        "Camera",
        (
            ("url", _S),
            ("width", _I),
            ("height", _I),
            ("frameRate", _I),
            ("videoBitRate", _I),
            ("audioBitRate", _I),
            ("audioSampleRateHz", _I),
            ("userName", _S),
            ("password", _S),
        ),
    ),
    Command("post", "avstreaming/stop", "StopAvStreaming", "Camera"),
    Command("get", "services/avstreaming", "GetAvStreamingServiceEnabled", "Camera"),
    Command("post", "services/avstreaming/enable", "EnableAvStreamingService", "Camera"),
    Command("post", "services/avstreaming/disable", "DisableAvStreamingService", "Camera"),
    Command("get", "services/camera", "CameraServiceEnabled", "Camera"),
    Command("post", "services/camera/enable", "EnableCameraService", "Camera"),
    Command("post", "services/camera/disable", "DisableCameraService", "Camera"),
    Command("get", "services/audio", "AudioServiceEnabled", "Audio"),
    Command("post", "services/audio/enable", "EnableAudioService", "Audio"),
    Command("post", "services/audio/disable", "DisableAudioService", "Audio"),
    Command("get", "services/slam", "SlamServiceEnabled", "Slam"),
    Command("post", "services/slam/enable", "EnableSlamService", "Slam"),
    Command("post", "services/slam/disable", "DisableSlamService", "Slam"),
    Command("post", "slam/streaming/start", "StartSlamStreaming", "Slam"),
    Command("post", "slam/streaming/stop", "StopSlamStreaming", "Slam"),
    Command(
        "get",
        "cameras/rgb",
        "TakePicture",
        "Camera",
        (
            ("base64", _B),
            ("fileName", _S),
            ("width", _I),
            ("height", _I),
            ("displayOnScreen", _B),
            ("overwriteExisting", _B),
        ),
    ),
    Command("post", "videos/recordings/start", "StartRecordingVideo", "Camera", (("fileName", _S),)),
    Command("post", "videos/recordings/stop", "StopRecordingVideo", "Camera"),
    Command("post", "video/record/start", "StartRecordingVideoLegacy", "Camera", (("fileName", _S),)),
    Command("post", "video/record/stop", "StopRecordingVideoLegacy", "Camera"),
    Command("post", "faces/detection/start", "StartFaceDetection", "Faces"),
    Command("post", "faces/detection/stop", "StopFaceDetection", "Faces"),
    Command("post", "faces/recognition/start", "StartFaceRecognition", "Faces"),
    Command("post", "faces/recognition/stop", "StopFaceRecognition", "Faces"),
    Command("post", "audio/record/start", "StartRecordingAudio", "Audio", (("fileName", _S),)),
    Command("post", "audio/record/stop", "StopRecordingAudio", "Audio"),
    Command("post", "audio/raw/record/start", "StartRawAudioRecording", "Audio"),
    Command("post", "audio/raw/record/stop", "StopRawAudioRecording", "Audio"),
    *(
        Command(
            "post",
            f"audio/speech/capture{variant}",
            f"CaptureSpeech{variant.capitalize()}",
            "Audio",
            (("overwriteExisting", _B), ("maxSpeechLength", _I), ("silenceTimeout", _I)),
        )
        for variant in ("", "azure", "google", "vosk")
    ),
    Command("post", "audio/keyphrase/start", "StartKeyPhraseRecognition", "Audio"),
    Command("post", "audio/keyphrase/stop", "StopKeyPhraseRecognition", "Audio"),
    Command("post", "audio/keyphrase/vosk/start", "StartKeyPhraseRecognitionVosk", "Audio"),
    Command("post", "audio/keyphrase/vosk/stop", "StopKeyPhraseRecognitionVosk", "Audio"),
)


def help_catalogue(command: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The ``result`` of GET /api/help; ``command`` filters by command name (case-insensitive)."""
    out: dict[str, list[dict[str, Any]]] = {"get": [], "post": [], "delete": [], "put": []}
    wanted = command.lower() if command else None
    for cmd in COMMANDS:
        if wanted is not None and cmd.name.lower() != wanted:
            continue
        out[cmd.verb].append(cmd.as_help())
    return out
