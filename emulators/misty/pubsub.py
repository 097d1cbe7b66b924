"""Misty's pubsub protocol, sans-I/O: subscribe/unsubscribe parsing (JSON or Python repr), the robot-wide
registry of event names, conditions and debounce.

The WebSocket transport lives in ``pubsub_ws.py``; this module turns text into requests and replies, and
decides, per subscription, whether (and what) to deliver for a sensor message.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass, field
from typing import Any

# Event types both SDKs can register (misty.md §3.5): 32 common, 2 only in 0.1.1, 2 only in 0.2.0.
EVENT_TYPES = (
    "ActuatorPosition", "ArTagDetection", "AudioPlayComplete", "BatteryCharge", "BumpSensor",
    "CriticalStatusMessage", "DriveEncoders", "FaceRecognition", "FaceTraining", "HaltCommand",
    "HazardNotification", "IMU", "KeyPhraseRecognized", "LocomotionCommand", "ObjectDetection", "ObstacleMap",
    "PRUMessage", "RfCommMessage", "RfCommState", "RobotCommandMessage", "SelfState", "SerialMessage",
    "SkillData", "SkillSystemStateChange", "SourceFocusConfigMessage", "SourceTrackDataMessage",
    "TextToSpeechComplete", "TimeOfFlight", "TouchSensor", "UserSkillData", "VoiceRecord", "WorldState",
    "ChargerPoseMessage", "SlamStatus", "DialogAction", "RobotInteractionState",
)  # fmt: skip
# Sampled by the sources (the others are one-off events a command makes, or never sent).
EMULATED_TYPES = ("BatteryCharge", "TimeOfFlight", "IMU", "SelfState", "ActuatorPosition", "DriveEncoders",
                  "ObjectDetection")  # fmt: skip
INEQUALITIES = ("=>", "=", "!=", ">", "<", ">=", "<=", "exists", "empty", "delta")
DEFAULT_DEBOUNCE_MS = 250
# Sample times are on the sensor's schedule (start + n * period); a gap this close to DebounceMs is DebounceMs,
# so float rounding of the schedule never drops a sample when DebounceMs equals the sensor's period.
DEBOUNCE_SLACK_MS = 0.5

REGISTERED = "Registration Status: API event registered."
# Bounds on what one connection can make the robot do (none is documented; a subscribe message with conditions is
# under 1 KB). A larger message is ignored like any unparseable frame; nesting past the bound is never parsed, so
# no message costs the event loop more than a few milliseconds. A connection holds at most MAX_SUBSCRIPTIONS.
MAX_MESSAGE_CHARS = 16 * 1024
MAX_MESSAGE_NESTING = 16
MAX_SUBSCRIPTIONS_PER_CONNECTION = 64


def duplicate_reason(name: str) -> str:
    return f"Cannot register an event with same name ({name}) as a previously registered event."


class RegistrationRefused(ValueError):
    """A subscribe message that names an event but cannot be registered; the reply carries the reason."""

    def __init__(self, event_name: str, reason: str) -> None:
        super().__init__(reason)
        self.event_name = event_name
        self.reason = reason


def registration_reply(event_name: str, reason: str | None = None) -> dict[str, str]:
    """The robot's reply to a subscribe: registered, or ``Cannot register ...`` with the reason."""
    if reason is None:
        return {"eventName": event_name, "message": REGISTERED}
    if not reason.startswith("Cannot register"):
        reason = f"Cannot register event: {reason}"
    return {"eventName": event_name, "message": f"Registration Status: {reason}"}


@dataclass(frozen=True)
class Condition:
    property: str
    inequality: str
    value: Any


@dataclass(frozen=True)
class Subscribe:
    event_type: str
    event_name: str
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    return_property: str | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Unsubscribe:
    event_name: str


def _nesting(text: str) -> int:
    """How deeply brackets nest in ``text``, outside quoted strings (a linear scan, no parse)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for ch in text:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]})":
            depth -= 1
    return deepest


def _load(text: str) -> Any:
    """JSON, or the Python literal the official Python libraries send (str(dict): ' quotes, True/None); None for
    anything else, and for a message past MAX_MESSAGE_CHARS or MAX_MESSAGE_NESTING (checked before any parse)."""
    if len(text) > MAX_MESSAGE_CHARS or _nesting(text) > MAX_MESSAGE_NESTING:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # bounded above: at most 16 KB, 16 levels
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _keys_folded(raw: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in raw.items()}


def parse_message(text: str | bytes) -> Subscribe | Unsubscribe | None:
    """A client message as a request; None for empty or unparseable frames (the robot ignores those).

    Raises ``RegistrationRefused`` for a subscribe that cannot be registered.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return None
    if not text.strip():
        return None
    raw = _load(text.strip())
    if not isinstance(raw, dict):
        return None
    msg = _keys_folded(raw)
    operation = str(msg.get("operation") or "").lower()
    event_type = msg.get("type")
    event_name = msg.get("eventname")
    if operation == "unsubscribe":
        if event_name in (None, ""):
            return None
        return Unsubscribe(event_name=str(event_name))
    if operation != "subscribe":
        return None
    name = str(event_name) if event_name not in (None, "") else str(event_type or "")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise RegistrationRefused(name, f"Cannot register event: unknown event type {event_type!r}.")
    debounce = msg.get("debouncems")
    if debounce in (None, "", "null"):
        debounce_ms = DEFAULT_DEBOUNCE_MS
    else:
        try:
            as_float = float(debounce)
        except (TypeError, ValueError):
            reason = f"Cannot register event: DebounceMs {debounce!r} is not a number."
            raise RegistrationRefused(name, reason) from None
        if isinstance(debounce, bool) or not math.isfinite(as_float) or as_float < 0:
            raise RegistrationRefused(name, f"Cannot register event: DebounceMs must be 0 or more, got {debounce!r}.")
        debounce_ms = int(as_float)
    return_property = msg.get("returnproperty")
    if return_property in ("", "null"):
        return_property = None
    if return_property is not None and not isinstance(return_property, str):
        raise RegistrationRefused(name, "Cannot register event: ReturnProperty must be a property path string.")
    return Subscribe(
        event_type=event_type,
        event_name=name,
        debounce_ms=debounce_ms,
        return_property=return_property,
        conditions=_parse_conditions(name, msg.get("eventconditions")),
    )


def _parse_conditions(name: str, raw: Any) -> tuple[Condition, ...]:
    if raw in (None, "", "null"):
        return ()
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise RegistrationRefused(name, "Cannot register event: EventConditions must be a list of conditions.")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise RegistrationRefused(name, "Cannot register event: each event condition must be an object.")
        cond = _keys_folded(item)
        prop = cond.get("property")
        inequality = cond.get("inequality")
        if not isinstance(prop, str) or not prop:
            raise RegistrationRefused(name, "Cannot register event: an event condition has no Property.")
        if inequality not in INEQUALITIES:
            allowed = " ".join(INEQUALITIES)
            raise RegistrationRefused(
                name, f"Cannot register event: Inequality {inequality!r} is not one of {allowed}."
            )
        out.append(Condition(property=prop, inequality=inequality, value=cond.get("value")))
    return tuple(out)


# ----- matching -----------------------------------------------------------------------------------------------
_MISSING = object()


def lookup(message: Any, path: str) -> Any:
    """A dot-path property of a message, matching each name case-insensitively; _MISSING when absent."""
    node = message
    for part in path.split("."):
        if not isinstance(node, dict):
            return _MISSING
        wanted = part.lower()
        for key, value in node.items():
            if key.lower() == wanted:
                node = value
                break
        else:
            return _MISSING
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(actual: Any, inequality: str, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        left: Any = a
        right: Any = b
    else:
        left, right = _text(actual), _text(expected)
        if isinstance(actual, bool):
            right = right.lower()
    if inequality == "=":
        return bool(left == right)
    if inequality == "!=":
        return bool(left != right)
    if inequality == ">":
        return bool(left > right)
    if inequality == "<":
        return bool(left < right)
    if inequality in (">=", "=>"):
        return bool(left >= right)
    if inequality == "<=":
        return bool(left <= right)
    return False


@dataclass
class Subscription:
    """One registered event: its request plus the debounce and delta memory."""

    request: Subscribe
    last_delivery_ms: float | None = None
    last_values: dict[str, float] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return self.request.event_type

    def matches(self, message: dict[str, Any]) -> bool:
        for cond in self.request.conditions:
            actual = lookup(message, cond.property)
            if cond.inequality == "exists":
                ok = actual is not _MISSING and actual is not None
            elif cond.inequality == "empty":
                ok = actual is _MISSING or actual in (None, "") or actual == []
            elif cond.inequality == "delta":
                current = _number(actual) if actual is not _MISSING else None
                threshold = _number(cond.value) or 0.0
                previous = self.last_values.get(cond.property)
                ok = current is not None and (previous is None or abs(current - previous) >= threshold)
            else:
                ok = actual is not _MISSING and actual is not None and _compare(actual, cond.inequality, cond.value)
            if not ok:
                return False
        return True

    def offer(self, message: dict[str, Any], now_ms: float) -> tuple[bool, Any]:
        """(deliver?, payload) for a fresh sensor message sampled at ``now_ms`` (monotonic milliseconds).

        Debounce delivers at most once per DebounceMs, measured between sample times (not between the moments
        the sender woke), so DebounceMs equal to the sensor's period delivers every sample. Since sources keep
        producing, the first matching message after the window is the newest one.
        """
        if not self.matches(message):
            return False, None
        last = self.last_delivery_ms
        if last is not None and now_ms - last < self.request.debounce_ms - DEBOUNCE_SLACK_MS:
            return False, None
        self.last_delivery_ms = now_ms
        for cond in self.request.conditions:
            if cond.inequality == "delta":
                value = _number(lookup(message, cond.property))
                if value is not None:
                    self.last_values[cond.property] = value
        if self.request.return_property:
            value = lookup(message, self.request.return_property)
            return True, None if value is _MISSING else value
        return True, message


def event_envelope(
    event_name: str, payload: Any, *, version: str = "Current", event_type: str = "", sensor_name: str = ""
) -> dict[str, Any]:
    """An event as the robot sends it; the Deprecated format adds ``type`` and ``sensorName``."""
    if version == "Deprecated":
        if isinstance(payload, dict) and "sensorName" not in payload:  # ActuatorPosition names each actuator
            payload = {**payload, "sensorName": sensor_name}
        return {"eventName": event_name, "message": payload, "type": event_type}
    return {"eventName": event_name, "message": payload}


@dataclass(frozen=True)
class Registration:
    """The outcome of a subscribe: the reply for its connection; ``registered`` when the name was taken by it."""

    event_name: str
    event_type: str
    reply: dict[str, str]
    registered: bool


class PubsubRegistry:
    """Who subscribed to what. Event names are unique robot-wide: the robot refuses a name already registered.

    With ``sticky`` (the quirk) a name outlives its connection and stays taken until ``forget_all`` (a Core reboot).
    """

    def __init__(self, *, sticky: bool = False) -> None:
        self.sticky = sticky
        self.connections: dict[int, dict[str, Subscription]] = {}
        # Event name -> owning connection id; None = a sticky subscription whose connection died.
        self.names: dict[str, int | None] = {}
        self.events_sent = 0

    def connect(self, connection: int) -> None:
        self.connections[connection] = {}

    def disconnect(self, connection: int) -> None:
        for name in self.connections.pop(connection, {}):
            if self.names.get(name) == connection:
                if self.sticky:
                    self.names[name] = None  # the quirk: the name stays taken, silently
                else:
                    del self.names[name]

    def forget_all(self) -> None:
        """A Core reboot: every connection and registration is gone, sticky ones included."""
        self.connections.clear()
        self.names.clear()

    def receive(self, connection: int, data: str | bytes) -> Registration | None:
        """A client message; the registration reply to send back, or None (unsubscribe and ignored frames)."""
        subscriptions = self.connections.get(connection)
        if subscriptions is None:
            return None
        try:
            request = parse_message(data)
        except RegistrationRefused as exc:
            return Registration(exc.event_name, "", registration_reply(exc.event_name, exc.reason), False)
        if isinstance(request, Unsubscribe):
            # Only the subscribing connection can unsubscribe; there is no reply.
            if subscriptions.pop(request.event_name, None) is not None:
                self.names.pop(request.event_name, None)
            return None
        if request is None:
            return None
        name = request.event_name
        if name in self.names:
            return Registration(name, request.event_type, registration_reply(name, duplicate_reason(name)), False)
        if len(subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            reason = (f"Cannot register event: this connection already has {MAX_SUBSCRIPTIONS_PER_CONNECTION} "
                      "subscriptions; unsubscribe one first.")
            return Registration(name, request.event_type, registration_reply(name, reason), False)
        subscriptions[name] = Subscription(request)
        self.names[name] = connection
        return Registration(name, request.event_type, registration_reply(name), True)

    def wanted(self) -> set[str]:
        """The event types some live subscription asks for."""
        return {s.event_type for subs in self.connections.values() for s in subs.values()}

    def deliveries(
        self, event_type: str, message: dict[str, Any], now_ms: float, *, version: str, sensor_name: str
    ) -> list[tuple[int, dict[str, Any]]]:
        """(connection, event) for every subscription of ``event_type`` that takes this sensor message now."""
        out = []
        for connection, subscriptions in self.connections.items():
            for name, sub in subscriptions.items():
                if sub.event_type != event_type:
                    continue
                deliver, payload = sub.offer(message, now_ms)
                if deliver:
                    envelope = event_envelope(
                        name, payload, version=version, event_type=event_type, sensor_name=sensor_name
                    )
                    out.append((connection, envelope))
        self.events_sent += len(out)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "subscriptions": sorted(self.names),
            "events_sent": self.events_sent,
        }
