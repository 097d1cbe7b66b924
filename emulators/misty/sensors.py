"""Synthetic sensor messages for pubsub: BatteryCharge, TimeOfFlight, IMU and SelfState, seeded and pure.

Each builder takes the wall time (Unix seconds) and returns camelCase messages in the Current format (no
``sensorName``; the Deprecated envelope adds it from SENSOR_NAMES).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np

# (sensorId, sensorPosition, type): misty.md §3.5.
RANGE_SENSORS = (("toffr", "Right"), ("toffl", "Left"), ("toffc", "Center"), ("tofr", "Back"))
EDGE_SENSORS = (("tofdfr", "DownFrontRight"), ("tofdfl", "DownFrontLeft"), ("tofdrr", "DownBackRight"), ("tofdrl", "DownBackLeft"))  # noqa: E501
SENSOR_NAMES = {
    "BatteryCharge": "/Sensors/RTC/BatteryCharge",
    "TimeOfFlight": "/Sensors/RTC/TimeOfFlight",
    "IMU": "/Sensors/RTC/IMU",
    "SelfState": "/SelfState",
}


def misty_timestamp(unix_s: float) -> str:
    """The robot's timestamp format: ISO 8601 UTC with 7 fractional digits, e.g. 2019-12-18T18:37:17.3061319Z."""
    # A float Unix time resolves ~0.24 us, so the 7th digit would be noise: round to whole microseconds (exact
    # for times that are whole milliseconds, as pubsub samples are) and carry into the seconds.
    seconds, micros = divmod(round(unix_s * 1_000_000), 1_000_000)
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros * 10:07d}Z"


@dataclass
class SensorSuite:
    """The robot's synthetic sensors. ``camera_status`` is read by SelfState (Ready, or Disabled when off)."""

    seed: int = 0
    booted_at: float = 0.0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._phase = float(self._rng.uniform(0, 2 * math.pi))

    def battery(self, now: float) -> dict[str, Any]:
        up = max(0.0, now - self.booted_at)
        # Falls slowly from 0.97 while the robot discharges; never below 5 %.
        charge = max(0.05, 0.97 - up / 36_000.0)
        voltage = 8.1 + 0.3 * charge
        return {
            "chargePercent": round(charge, 4),
            "created": misty_timestamp(now),
            "current": round(-0.55 + 0.15 * math.sin(up / 7.0 + self._phase), 3),
            "expiry": misty_timestamp(now + 10.0),
            "healthPercent": None,
            "isCharging": False,
            "sensorId": "charge",
            "state": "Discharging",
            "temperature": 24,
            "trained": False,
            "voltage": round(voltage, 3),
        }

    def time_of_flight(self, now: float) -> list[dict[str, Any]]:
        up = max(0.0, now - self.booted_at)
        out = []
        for i, (sensor_id, position) in enumerate(RANGE_SENSORS):
            distance = 1.15 + 0.85 * math.sin(up / (2.0 + i) + self._phase + i)
            distance = round(min(2.0, max(0.3, distance + float(self._rng.normal(0, 0.005)))), 3)
            out.append(self._tof(now, sensor_id, position, "Range", distance, 0 if distance <= 1.2 else 104))
        for sensor_id, position in EDGE_SENSORS:
            distance = round(0.025 + float(self._rng.normal(0, 0.001)), 4)
            out.append(self._tof(now, sensor_id, position, "Edge", distance, 0))
        return out

    def _tof(
        self, now: float, sensor_id: str, position: str, kind: str, distance: float, status: int
    ) -> dict[str, Any]:
        return {
            "averageTimeMs": round(float(self._rng.uniform(3.5, 5.5)), 3),
            "created": misty_timestamp(now),
            "distanceInMeters": distance,
            "inHazard": kind == "Edge" and distance > 0.06,
            "sensorId": sensor_id,
            "sensorPosition": position,
            "sigma": round(float(self._rng.uniform(0.001, 0.004)), 4),
            "signal": round(float(self._rng.uniform(5.0, 12.0)), 3),
            "status": status,
            "type": kind,
        }

    def imu(self, now: float, *, turned_deg: float = 0.0, turning_deg_s: float = 0.0) -> dict[str, Any]:
        """IMU; ``turned_deg``/``turning_deg_s`` are the drive base's heading change and turn rate."""
        up = max(0.0, now - self.booted_at)
        noise = self._rng.normal(0, 0.05, size=6)
        return {
            "created": misty_timestamp(now),
            "expiry": misty_timestamp(now + 0.4),
            "pitch": round(0.4 + float(noise[0]), 4),
            "pitchVelocity": round(float(noise[1]), 4),
            "roll": round(-0.2 + float(noise[2]), 4),
            "rollVelocity": round(float(noise[3]), 4),
            "sensorId": "imu",
            # A slow yaw drift, as a real gyro shows when the robot stands still.
            "yaw": round((12.0 + 0.01 * up + turned_deg + float(noise[4])) % 360.0, 4),
            "yawVelocity": round(turning_deg_s + float(noise[5]), 4),
            "xAcceleration": round(float(self._rng.normal(0.0, 0.02)), 4),
            "yAcceleration": round(float(self._rng.normal(0.0, 0.02)), 4),
            "zAcceleration": round(9.8 + float(self._rng.normal(0.0, 0.02)), 4),
        }

    def self_state(self, now: float, *, camera_on: bool, ip_address: str) -> dict[str, Any]:
        battery = self.battery(now)
        return {
            "acceleration": None,
            "battery": battery,
            "bumpedState": {"disengagedSensorIds": [], "disengagedSensorNames": [], "engagedSensorIds": []},
            "cameraStatus": {"isTakingPicture": False, "onboardCameraStatus": "Ready" if camera_on else "Disabled"},
            "currentGoal": None,
            "localIPAddress": ip_address,
            "location": None,
            "mentalState": None,
            "occupancyGridCell": {"x": 0, "y": 0},
            "occupancyGridCellMeters": 0.0,
            "robotRunState": {"currentState": "Running", "faultCodes": []},
            "serialMessages": [],
            "slamStatus": {"runMode": "Ready", "sensorStatus": "Ready", "status": 0, "statusList": ["Ready"]},
            "touchedState": {"touchedSensors": []},
        }


@cache
def nested_properties() -> dict[str, list[str]]:
    """What /api/websockets reports per emulated class: the keys of the messages sent, in PascalCase."""
    suite = SensorSuite()
    samples = {
        "BatteryCharge": suite.battery(0.0),
        "TimeOfFlight": suite.time_of_flight(0.0)[0],
        "IMU": suite.imu(0.0),
        "SelfState": suite.self_state(0.0, camera_on=True, ip_address=""),
    }
    return {cls: [key[0].upper() + key[1:] for key in message] for cls, message in samples.items()}
