"""Misty's body and voice as pure rules: head and arm actuators, the drive base, speech, audio playback, speech
capture and the object detector, with the events each command makes (periodic samples and one-off events).

No I/O and no clock reads: ``t`` is monotonic seconds, ``wall`` Unix seconds, both passed in. The service
schedules one-off events (``Scheduled``) and asks ``fire`` when they are due; pubsub samples the periodic ones.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emulators.misty.args import doc_name
from emulators.misty.model import BadArgument
from emulators.misty.sensors import misty_timestamp

# --- actuators (degrees; the docs' ranges) -------------------------------------------------------------------
HEAD_RANGES = {"pitch": (-40.0, 26.0), "roll": (-40.0, 40.0), "yaw": (-81.0, 81.0)}
ARM_RANGE = (-29.0, 90.0)  # -29 = fully up, 90 = fully down
POSITION_UNITS = {"head": (-5.0, 5.0), "arm": (0.0, 10.0)}  # the "position" unit's scale per actuator kind
UNITS = ("degrees", "radians", "position")
VELOCITY_RANGE = (0.0, 100.0)
FULL_SPEED_DEG_S = 90.0  # an actuator at Velocity 100
DEFAULT_VELOCITY = 100.0
ACTUATORS = {  # sensorId: (sensorName, kind, rest position)
    "ahp": ("Actuator_HeadPitch", "head", 0.0),
    "ahr": ("Actuator_HeadRoll", "head", 0.0),
    "ahy": ("Actuator_HeadYaw", "head", 0.0),
    "ala": ("Actuator_LeftArm", "arm", 90.0),
    "ara": ("Actuator_RightArm", "arm", 90.0),
}
HEAD_IDS = {"pitch": "ahp", "roll": "ahr", "yaw": "ahy"}
ARM_IDS = {"left": "ala", "right": "ara"}

# --- drive ---------------------------------------------------------------------------------------------------
PERCENT_RANGE = (-100.0, 100.0)
MAX_LINEAR_M_S = 0.35  # LinearVelocity 100
MAX_ANGULAR_DEG_S = 90.0  # AngularVelocity 100
TRACK_WIDTH_M = 0.11  # between the treads: turns in place move them in opposite directions

# --- voice and sound -----------------------------------------------------------------------------------------
SECONDS_PER_WORD = 0.35  # at SpeechRate 1
MIN_UTTERANCE_S = 0.4
VOLUME_RANGE = (0, 100)
CAPTURE_FILE = "capture_Dialogue.wav"
SAMPLE_RATE = 16_000
# Sounds on every robot (a selection of the system assets); their audio is synthesised, their length is theirs.
SYSTEM_SOUNDS = {
    "s_Acceptance.wav": 0.9, "s_Awe.wav": 1.6, "s_Joy.wav": 1.2, "s_PhraseHello.wav": 1.1,
    "s_SystemCameraShutter.wav": 0.4, "s_SystemSuccess.wav": 0.7, "s_SystemWakeWord.wav": 0.5,
}  # fmt: skip

# --- object detector -----------------------------------------------------------------------------------------
DISC_LABEL = ("sports ball", 37)  # the scene's moving disc, as a COCO-trained detector names it
DISC_CONFIDENCE = 0.82


def _between(name: str, value: float, lo: float, hi: float) -> float:
    if not lo <= value <= hi:
        raise BadArgument(f"Invalid value for parameter '{name}': {value:g}. Must be between {lo:g} and {hi:g}.")
    return value


def _required(values: dict[str, Any], name: str, command: str, kind: str) -> Any:
    value = values.get(name)
    if value is None:
        raise BadArgument(f"Cannot {command} - Missing required {kind} parameter '{doc_name(name)}'.")
    return value


def wav_bytes(samples: np.ndarray) -> bytes:
    """16-bit mono PCM at SAMPLE_RATE as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes())
    return out.getvalue()


def synth_speech(seconds: float, seed: int) -> bytes:
    """A voice-like recording: a gliding, syllable-modulated tone over faint room noise, seeded."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2 / 2
    voice = 0.4 * syllables * (np.sin(phase) + 0.3 * np.sin(2 * phase))
    return wav_bytes(voice + rng.normal(0.0, 0.01, n))


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


@dataclass
class Ramp:
    """An actuator moving linearly from ``start`` to ``target`` between t0 and t1 (seconds, monotonic)."""

    start: float
    target: float
    t0: float = 0.0
    t1: float = 0.0

    def at(self, t: float) -> float:
        if t >= self.t1 or self.t1 <= self.t0:
            return self.target
        if t <= self.t0:
            return self.start
        return self.start + (self.target - self.start) * (t - self.t0) / (self.t1 - self.t0)


@dataclass
class Segment:
    """A drive command's motion: m/s and deg/s from t0 until t1 (None = until the next command)."""

    linear: float
    angular: float
    t0: float
    t1: float | None


@dataclass(frozen=True)
class Scheduled:
    """A one-off event the service must fire at ``due`` (monotonic seconds) by asking ``Body.fire(key, wall)``."""

    key: str
    due: float


@dataclass
class Body:
    """Actuators, odometry, the speech queue, playback, speech capture and the detector, from one boot."""

    seed: int = 0
    actuators: dict[str, Ramp] = field(default_factory=dict)
    segment: Segment | None = None
    left_m: float = 0.0  # tread distance of finished segments
    right_m: float = 0.0
    yaw_deg: float = 0.0  # heading change of finished segments
    speech_until: float = 0.0  # the queue's end
    audio: dict[str, bytes] = field(default_factory=dict)  # recordings made on the robot
    object_detector: dict[str, Any] | None = None  # StartObjectDetector's arguments while it runs
    pending: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # key -> (event type, message)
    _ids: int = 0

    def __post_init__(self) -> None:
        for sensor_id, (_, _, rest) in ACTUATORS.items():
            self.actuators.setdefault(sensor_id, Ramp(rest, rest))

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # ----- actuators --------------------------------------------------------------------------------------
    def _to_degrees(self, name: str, value: float, units: str, kind: str) -> float:
        if units == "radians":
            value = math.degrees(value)
        elif units == "position":
            lo, hi = POSITION_UNITS[kind]
            _between(name, value, lo, hi)
            full = HEAD_RANGES[name.lower()] if kind == "head" else ARM_RANGE
            value = full[0] + (value - lo) * (full[1] - full[0]) / (hi - lo)
        return value

    @staticmethod
    def _units(values: dict[str, Any]) -> str:
        units = (values.get("units") or "degrees").lower()
        if units not in UNITS:
            allowed = ", ".join(UNITS)
            raise BadArgument(f"Invalid value for parameter 'Units': {values['units']!r}. Must be one of {allowed}.")
        return units

    def _move(self, targets: dict[str, tuple[float, float]], duration: float | None, t: float) -> None:
        """Start ramps to ``targets`` (sensorId -> (degrees, velocity %)); Duration (s) wins over Velocity."""
        for sensor_id, (target, velocity) in targets.items():
            current = self.actuators[sensor_id].at(t)
            if duration is not None:
                seconds = duration
            elif velocity <= 0:
                seconds = 0.0  # Velocity 0 moves as fast as the motor can: no ramp to sample
            else:
                seconds = abs(target - current) / (FULL_SPEED_DEG_S * velocity / 100.0)
            self.actuators[sensor_id] = Ramp(current, target, t, t + seconds)

    def move_head(self, values: dict[str, Any], t: float) -> None:
        units = self._units(values)
        velocity = values.get("velocity")
        velocity = _between("Velocity", DEFAULT_VELOCITY if velocity is None else velocity, *VELOCITY_RANGE)
        duration = values.get("duration")
        if duration is not None:
            _between("Duration", duration, 0.0, 60.0)
        targets = {}
        for axis, sensor_id in HEAD_IDS.items():
            if values.get(axis) is None:
                continue
            name = doc_name(axis)
            degrees = self._to_degrees(name, values[axis], units, "head")
            targets[sensor_id] = (_between(name, round(degrees, 6), *HEAD_RANGES[axis]), velocity)
        if not targets:
            raise BadArgument("Cannot move head - at least one of 'Pitch', 'Roll' or 'Yaw' is required.")
        self._move(targets, duration, t)

    def move_arms(self, values: dict[str, Any], t: float) -> None:
        units = self._units(values)
        duration = values.get("duration")
        if duration is not None:
            _between("Duration", duration, 0.0, 60.0)
        targets = {}
        for side, sensor_id in ARM_IDS.items():
            position = values.get(f"{side}ArmPosition")
            if position is None:
                continue
            name = f"{side.capitalize()}ArmPosition"
            velocity = values.get(f"{side}ArmVelocity")
            velocity = DEFAULT_VELOCITY if velocity is None else velocity
            _between(f"{side.capitalize()}ArmVelocity", velocity, *VELOCITY_RANGE)
            degrees = self._to_degrees(name, position, units, "arm")
            targets[sensor_id] = (_between(name, round(degrees, 6), *ARM_RANGE), velocity)
        if not targets:
            raise BadArgument("Cannot move arms - at least one of 'LeftArmPosition' or 'RightArmPosition' is required.")
        self._move(targets, duration, t)

    def move_arm(self, values: dict[str, Any], t: float) -> None:
        arm = str(_required(values, "arm", "move arm", "string")).lower()
        position = _required(values, "position", "move arm", "double")
        sides = {"left": ["left"], "right": ["right"], "both": ["left", "right"]}.get(arm)
        if sides is None:
            raise BadArgument(
                f"Invalid value for parameter 'Arm': {values['arm']!r}. Must be one of left, right, both."
            )
        arms: dict[str, Any] = {"units": values.get("units"), "duration": values.get("duration")}
        for side in sides:
            arms[f"{side}ArmPosition"] = position
            arms[f"{side}ArmVelocity"] = values.get("velocity")
        self.move_arms(arms, t)

    def actuator_positions(self, t: float, wall: float) -> list[dict[str, Any]]:
        """One ActuatorPosition sample per actuator (degrees)."""
        return [
            {"created": misty_timestamp(wall), "sensorId": sensor_id, "sensorName": name,
             "value": round(self.actuators[sensor_id].at(t), 3)}
            for sensor_id, (name, _, _) in ACTUATORS.items()
        ]  # fmt: skip

    # ----- drive ------------------------------------------------------------------------------------------
    def _settle(self, t: float) -> None:
        """Fold the running segment's motion up to ``t`` into the odometry and end it there."""
        seg = self.segment
        if seg is None:
            return
        end = t if seg.t1 is None else min(t, seg.t1)
        left, right, yaw = _motion(seg, max(0.0, end - seg.t0))
        self.left_m += left
        self.right_m += right
        self.yaw_deg += yaw
        self.segment = None

    def _start(self, linear: float, angular: float, t: float, seconds: float | None) -> dict[str, Any]:
        self._settle(t)
        self.segment = Segment(linear, angular, t, None if seconds is None else t + seconds)
        return {"actionId": self._next_id(), "angularVelocity": round(angular, 4), "linearVelocity": round(linear, 4)}

    def drive(self, name: str, values: dict[str, Any], t: float) -> dict[str, Any]:
        """A drive command; the LocomotionCommand message it makes (without ``created``)."""
        if name in ("Stop", "Halt"):
            return self._start(0.0, 0.0, t, 0.0)
        if name == "DriveTrack":
            left = _between("LeftTrackSpeed", _required(values, "leftTrackSpeed", "drive", "double"), *PERCENT_RANGE)
            right = _between("RightTrackSpeed", _required(values, "rightTrackSpeed", "drive", "double"), *PERCENT_RANGE)
            linear = (left + right) / 200.0 * MAX_LINEAR_M_S
            angular = math.degrees((right - left) / 100.0 * MAX_LINEAR_M_S / TRACK_WIDTH_M)
            return self._start(linear, angular, t, None)
        if name in ("Drive", "DriveTime"):
            linear = _between("LinearVelocity", _required(values, "linearVelocity", "drive", "double"), *PERCENT_RANGE)
            angular = _between(
                "AngularVelocity", _required(values, "angularVelocity", "drive", "double"), *PERCENT_RANGE
            )
            seconds = None
            if name == "DriveTime":
                seconds = _between("TimeMs", _required(values, "timeMs", "drive", "integer"), 0, 3_600_000) / 1000
            return self._start(linear / 100 * MAX_LINEAR_M_S, angular / 100 * MAX_ANGULAR_DEG_S, t, seconds)
        # DriveArc / DriveHeading: turn to an absolute heading (degrees) in TimeMs.
        heading = _required(values, "heading", "drive", "double")
        seconds = _between("TimeMs", _required(values, "timeMs", "drive", "double"), 1, 3_600_000) / 1000
        if name == "DriveArc":
            radius = _between("Radius", _required(values, "radius", "drive", "double"), 0.0, 100.0)
        else:
            distance = _between("Distance", _required(values, "distance", "drive", "double"), 0.0, 100.0)
        self._settle(t)
        turn = (heading - self.yaw_deg + 180.0) % 360.0 - 180.0
        angular = turn / seconds
        linear = abs(math.radians(angular)) * radius if name == "DriveArc" else distance / seconds
        if values.get("reverse"):
            linear = -linear
        return self._start(linear, angular, t, seconds)

    def odometry(self, t: float) -> tuple[float, float, float]:
        """(left m, right m, yaw change in degrees) since boot, the running segment included."""
        left, right, yaw = self.left_m, self.right_m, self.yaw_deg
        seg = self.segment
        if seg is not None:
            end = t if seg.t1 is None else min(t, seg.t1)
            dl, dr, dy = _motion(seg, max(0.0, end - seg.t0))
            left, right, yaw = left + dl, right + dr, yaw + dy
        return left, right, yaw

    def velocities(self, t: float) -> tuple[float, float]:
        """(linear m/s, angular deg/s) right now."""
        seg = self.segment
        if seg is None or t < seg.t0 or (seg.t1 is not None and t >= seg.t1):
            return 0.0, 0.0
        return seg.linear, seg.angular

    def drive_encoders(self, t: float, wall: float) -> dict[str, Any]:
        left, right, _ = self.odometry(t)
        linear, angular = self.velocities(t)
        spin = math.radians(angular) * TRACK_WIDTH_M / 2
        return {
            "created": misty_timestamp(wall),
            "leftDistance": round(left * 1000, 2),
            "leftVelocity": round((linear - spin) * 1000, 2),
            "rightDistance": round(right * 1000, 2),
            "rightVelocity": round((linear + spin) * 1000, 2),
            "sensorId": "enc",
        }

    # ----- speech and sound -------------------------------------------------------------------------------
    def speak(self, values: dict[str, Any], t: float) -> Scheduled:
        text = _required(values, "text", "speak", "string")
        rate = values.get("speechRate")
        rate = 1.0 if rate is None else _between("SpeechRate", rate, 0.1, 10.0)
        if values.get("pitch") is not None:
            _between("Pitch", values["pitch"], 0.1, 10.0)
        if values.get("flush"):
            # Flush drops what is queued and speaking: those never report completion.
            for key in [k for k, (kind, _) in self.pending.items() if kind == "TextToSpeechComplete"]:
                del self.pending[key]
            self.speech_until = t
        utterance = values.get("utteranceId") or f"utterance-{self._next_id()}"
        words = max(1, len(str(text).split()))
        start = max(t, self.speech_until)
        self.speech_until = start + max(MIN_UTTERANCE_S, words * SECONDS_PER_WORD / rate)
        return self._schedule("TextToSpeechComplete", {"utteranceId": utterance}, self.speech_until)

    def sound(self, name: str) -> bytes | None:
        if name in self.audio:
            return self.audio[name]
        if name in SYSTEM_SOUNDS:
            return synth_speech(SYSTEM_SOUNDS[name], seed=len(name))
        return None

    def audio_list(self) -> list[dict[str, Any]]:
        names = sorted(set(SYSTEM_SOUNDS) | set(self.audio))
        return [{"name": n, "systemAsset": n in SYSTEM_SOUNDS, "userAddedAsset": n not in SYSTEM_SOUNDS} for n in names]

    def play_audio(self, values: dict[str, Any], t: float) -> Scheduled:
        name = _required(values, "fileName", "play audio", "string")
        if values.get("volume") is not None:
            _between("Volume", values["volume"], *VOLUME_RANGE)
        data = self.sound(name)
        if data is None:
            raise BadArgument(f"Cannot play audio - no audio file named {name!r} on the robot (see GetAudioList).")
        seconds = SYSTEM_SOUNDS.get(name) or wav_seconds(data)
        meta = {"name": name, "durationMs": round(seconds * 1000)}
        return self._schedule("AudioPlayComplete", {"metaData": meta}, t + seconds)

    def capture_speech(self, max_speech_ms: int, until: float) -> Scheduled:
        """Speech capture records until ``until``: the recording is generated now and VoiceRecord reports it then."""
        self.audio[CAPTURE_FILE] = synth_speech(max_speech_ms / 1000.0, seed=self.seed + self._ids)
        message = {
            "errorCode": 0,
            "errorMessage": "Success",
            "filename": CAPTURE_FILE,
            "speechRecognitionResult": "",
            "success": True,
        }
        return self._schedule("VoiceRecord", message, until)

    def _schedule(self, event_type: str, message: dict[str, Any], due: float) -> Scheduled:
        key = f"{event_type}-{self._next_id()}"
        self.pending[key] = (event_type, message)
        return Scheduled(key, due)

    def fire(self, key: str, wall: float) -> tuple[str, dict[str, Any]] | None:
        """The due event for ``key`` stamped ``created`` now, or None when it was cancelled (a flush, a reboot)."""
        entry = self.pending.pop(key, None)
        if entry is None:
            return None
        event_type, message = entry
        return event_type, {**message, "created": misty_timestamp(wall)}

    # ----- object detector --------------------------------------------------------------------------------
    def start_object_detector(self, values: dict[str, Any]) -> None:
        confidence = values.get("minimumConfidence")
        confidence = 0.5 if confidence is None else _between("MinimumConfidence", confidence, 0.0, 1.0)
        self.object_detector = {"minimumConfidence": confidence}

    def detect_objects(
        self, disc: tuple[float, float, float], frame: tuple[int, int], wall: float
    ) -> list[dict[str, Any]]:
        """ObjectDetection messages for the scene's disc (upright x, y, radius) when the detector runs and sees it."""
        detector = self.object_detector
        if detector is None or DISC_CONFIDENCE < detector["minimumConfidence"]:
            return []
        x, y, r = disc
        width, height = frame
        if x + r < 0 or x - r > width:
            return []
        return [{
            "bearing": round((0.5 - x / width) * 70.0, 2), "confidence": DISC_CONFIDENCE,
            "created": misty_timestamp(wall), "description": DISC_LABEL[0],
            "elevation": round((0.5 - y / height) * 55.0, 2), "id": 0,
            "imageLocationBottom": round(min(height, y + r), 1), "imageLocationLeft": round(max(0.0, x - r), 1),
            "imageLocationRight": round(min(width, x + r), 1), "imageLocationTop": round(max(0.0, y - r), 1),
            "labelId": DISC_LABEL[1], "trackId": 1,
        }]  # fmt: skip


def _motion(seg: Segment, seconds: float) -> tuple[float, float, float]:
    """(left m, right m, yaw degrees) a segment covers in ``seconds``."""
    spin = math.radians(seg.angular) * TRACK_WIDTH_M / 2
    return (seg.linear - spin) * seconds, (seg.linear + spin) * seconds, seg.angular * seconds
