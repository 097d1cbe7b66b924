"""The robot's command table (``commands.json``) and the /api/help and /api/websockets answers built from it.

The table lists the firmware's commands as its SDK was generated from them: name, verb, endpoint, group and
the typed arguments in ordinal order. /api/help is shaped as the SDK's generator reads it: ``result`` maps
lowercase verbs to command lists, each argument with a .NET ``getValueType`` name and an ``ordinalNumber``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_CORELIB = "System.Private.CoreLib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e"
# .NET value types are reported as Nullable<T> (the robot binds null as "use the default").
VALUE_TYPES = frozenset({"Int32", "Boolean", "Double", "Single", "Byte", "DateTime"})
ARGUMENT_TYPES = VALUE_TYPES | {"String", "Byte[]", "Object", "GridCell"}
VERBS = ("get", "post", "delete", "put")

# The event classes /api/websockets lists: those of the firmware the command table comes from. Two more
# (ChargerPoseMessage, SlamStatus: an older firmware's) can still be registered, see pubsub.EVENT_TYPES.
WEBSOCKET_CLASSES = (
    "ActuatorPosition", "ArTagDetection", "AudioPlayComplete", "BatteryCharge", "BumpSensor",
    "CriticalStatusMessage", "DialogAction", "DriveEncoders", "FaceRecognition", "FaceTraining", "HaltCommand",
    "HazardNotification", "IMU", "KeyPhraseRecognized", "LocomotionCommand", "ObjectDetection", "ObstacleMap",
    "PRUMessage", "RfCommMessage", "RfCommState", "RobotCommandMessage", "RobotInteractionState", "SelfState",
    "SerialMessage", "SkillData", "SkillSystemStateChange", "SourceFocusConfigMessage", "SourceTrackDataMessage",
    "TextToSpeechComplete", "TimeOfFlight", "TouchSensor", "UserSkillData", "VoiceRecord", "WorldState",
)  # fmt: skip


def value_type_name(type_name: str) -> str:
    if type_name in VALUE_TYPES:
        return f"System.Nullable`1[[System.{type_name}, {_CORELIB}]], {_CORELIB}"
    return f"System.{type_name}, {_CORELIB}"


@dataclass(frozen=True)
class Command:
    verb: str  # lowercase: get, post, delete, put
    endpoint: str  # without the /api/ prefix
    name: str
    group: str
    arguments: tuple[tuple[str, str], ...] = ()  # (camelCase name, .NET type name), in ordinal order

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


@cache
def load_commands() -> tuple[Command, ...]:
    """The command table, in the order the firmware lists it (the generated SDK's method order)."""
    raw = json.loads(resources.files("emulators.misty").joinpath("commands.json").read_text(encoding="utf-8"))
    out = []
    for item in raw:
        args = tuple((str(name), str(kind)) for name, kind in item["arguments"])
        if item["verb"] not in VERBS or any(kind not in ARGUMENT_TYPES for _, kind in args):
            raise ValueError(f"commands.json: {item['name']} has an unknown verb or argument type")
        out.append(Command(item["verb"], item["endpoint"], item["name"], item["group"], args))
    return tuple(out)


COMMANDS: tuple[Command, ...] = load_commands()
BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}


def help_catalogue(command: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The ``result`` of GET /api/help; ``command`` filters by command name (case-insensitive)."""
    out: dict[str, list[dict[str, Any]]] = {verb: [] for verb in VERBS}
    wanted = command.lower() if command else None
    for cmd in COMMANDS:
        if wanted is not None and cmd.name.lower() != wanted:
            continue
        out[cmd.verb].append(cmd.as_help())
    return out


def websocket_classes(wanted: str | None = None) -> list[str]:
    """The classes /api/websockets lists; ``wanted`` filters by class name (case-insensitive)."""
    return [c for c in WEBSOCKET_CLASSES if wanted is None or c.lower() == wanted.lower()]
