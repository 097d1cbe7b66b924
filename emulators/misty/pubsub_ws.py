"""The ``/pubsub`` WebSocket: connections, their outboxes and the paced sensor sources.

Protocol and registry decisions come from ``pubsub.py``; this module only moves text and owns the tasks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from emulators.kit.emulator import Emulator
from emulators.kit.faults import Abort, Close, Send, Skip, Stall
from emulators.kit.pacer import Pacer
from emulators.kit.tasks import TaskOwner
from emulators.kit.websocket import MaskedWebSocketResponse
from emulators.misty.body import Body
from emulators.misty.pubsub import EMULATED_TYPES, PubsubRegistry
from emulators.misty.scene import UPRIGHT_HEIGHT, UPRIGHT_WIDTH, MistyScene
from emulators.misty.sensors import SENSOR_NAMES, SensorSuite

STREAM_NAME = "pubsub"  # the stream name for faults and pacing stats
# The base tick: IMU, ActuatorPosition and DriveEncoders every tick; TimeOfFlight and SelfState every 2nd;
# ObjectDetection every 4th (a detector is slower than the sensors); battery every 20th.
SOURCE_HZ = 20.0
OUTBOX_LIMIT = 512  # per connection; a client that does not read loses its oldest messages

# A frame past this closes the connection with 1009 (message too big); anything between MAX_MESSAGE_CHARS and it is
# ignored like any message the robot cannot parse.
MAX_FRAME_BYTES = 64 * 1024


@dataclass(eq=False)
class Connection:
    id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    outbox: deque[str] = field(default_factory=lambda: deque(maxlen=OUTBOX_LIMIT))
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def post(self, message: dict[str, Any]) -> None:
        self.outbox.append(json.dumps(message, separators=(",", ":")))
        self.wake.set()


class PubsubHub:
    """Serves ``/pubsub`` on the REST app: one outbox and sender task per connection, one task for the sources."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        tasks: TaskOwner,
        registry: PubsubRegistry,
        sensors: Callable[[], SensorSuite],
        body: Callable[[], Body],
        scene: Callable[[], MistyScene],
        camera_on: Callable[[], bool],
        websocket_version: Callable[[], str],
    ) -> None:
        self.emulator = emulator
        self.tasks = tasks
        self.registry = registry
        self.sensors = sensors
        self.body = body
        self.scene = scene
        self.camera_on = camera_on
        self.websocket_version = websocket_version
        self.connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._accepting = True

    # ----- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._accepting = True
        self.tasks.spawn(self._run_sources(), name="sources")

    async def aclose(self) -> None:
        """Close every connection with 1000, stop the sources and forget every registration."""
        self._accepting = False
        await self.tasks.cancel_all()
        conns = list(self.connections.values())
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.OK) for c in conns), return_exceptions=True)
        self.connections.clear()
        self.registry.forget_all()

    # ----- the WebSocket ----------------------------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.StreamResponse:
        ws = MaskedWebSocketResponse(autoping=True, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        if not self._accepting:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER)
            return ws
        conn = Connection(id=next(self._ids), ws=ws, transport=request.transport)
        self.connections[conn.id] = conn
        self.registry.connect(conn.id)
        self.emulator.events.record("client.connected", stream=STREAM_NAME, connection=conn.id)
        sender = self.tasks.spawn(self._send_to(conn), name=f"conn-{conn.id}")
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_message(conn, msg.data)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self.connections.pop(conn.id, None)
            self.registry.disconnect(conn.id)
            self.emulator.events.record("client.disconnected", stream=STREAM_NAME, connection=conn.id)
        return ws

    def _on_message(self, conn: Connection, data: str | bytes) -> None:
        registration = self.registry.receive(conn.id, data)
        if registration is None:
            return
        if registration.registered:
            self.emulator.events.record(
                "pubsub.subscribed",
                connection=conn.id,
                event_name=registration.event_name,
                type=registration.event_type,
            )
        conn.post(registration.reply)

    async def _send_to(self, conn: Connection) -> None:
        while not conn.ws.closed:
            await conn.wake.wait()
            conn.wake.clear()
            while conn.outbox:
                text = conn.outbox.popleft()
                try:
                    await conn.ws.send_str(text)
                except (ConnectionError, RuntimeError):
                    return

    # ----- sources ----------------------------------------------------------------------------------------
    async def _run_sources(self) -> None:
        pacer = Pacer(1.0 / SOURCE_HZ, stats=self.emulator.pacing_stats(STREAM_NAME))
        clock = self.emulator.clock
        wall_ms: int | None = None  # the wall time (Unix ms) of the schedule's start, fixed at the first sample
        async for tick in pacer.ticks():
            wanted = self.registry.wanted() & set(EMULATED_TYPES)
            if not wanted:
                continue
            match self.emulator.stream_verdict(STREAM_NAME, tick=tick.index):
                case Send():
                    # A corrupt verdict is sent as is: the messages are JSON text, and damaged JSON is not what
                    # a robot's event WebSocket ever sends (deliberate deviation, see docs/misty.md).
                    pass
                case Skip():
                    continue
                case Stall() as stall:
                    await stall.wait()
                    continue
                case Close(code=code, reason=reason):
                    conns = list(self.connections.values())
                    await asyncio.gather(
                        *(c.ws.close(code=code, message=reason.encode()) for c in conns), return_exceptions=True
                    )
                    continue
                case Abort():
                    for conn in list(self.connections.values()):
                        if conn.transport is not None:
                            conn.transport.abort()
                    continue
            # A sample's time is its slot on the schedule in whole milliseconds, not when this task woke: jitter
            # must not make two samples look closer than the sensor's period (debounce compares sample times),
            # and ``created`` stamps are spaced exactly as the samples are.
            assert pacer.start is not None
            now_ms = round((tick.deadline - pacer.start) * 1000.0)
            if wall_ms is None:  # the schedule's start on the wall clock (not this tick's wake-up, which may be late)
                wall_ms = round((clock.now() - (time.monotonic() - pacer.start)) * 1000.0)
            now = (wall_ms + now_ms) / 1000.0
            sensors, body, t = self.sensors(), self.body(), tick.deadline
            if "IMU" in wanted:
                _, _, turned = body.odometry(t)
                imu = sensors.imu(now, turned_deg=turned, turning_deg_s=body.velocities(t)[1])
                self._dispatch("IMU", imu, now_ms)
            if "ActuatorPosition" in wanted:
                for message in body.actuator_positions(t, now):
                    self._dispatch("ActuatorPosition", message, now_ms)
            if "DriveEncoders" in wanted:
                self._dispatch("DriveEncoders", body.drive_encoders(t, now), now_ms)
            if tick.index % 4 == 0 and "ObjectDetection" in wanted and self.camera_on():
                disc = self.scene().upright_disc(t)
                frame = (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)
                for message in body.detect_objects((disc.x, disc.y, disc.radius), frame, now):
                    self._dispatch("ObjectDetection", message, now_ms)
            if tick.index % 2 == 0:
                if "TimeOfFlight" in wanted:
                    for message in sensors.time_of_flight(now):
                        self._dispatch("TimeOfFlight", message, now_ms)
                if "SelfState" in wanted:
                    state = sensors.self_state(now, camera_on=self.camera_on(), ip_address=self.emulator.host)
                    self._dispatch("SelfState", state, now_ms)
            if tick.index % int(SOURCE_HZ) == 0 and "BatteryCharge" in wanted:
                self._dispatch("BatteryCharge", sensors.battery(now), now_ms)

    def publish(self, event_type: str, message: dict[str, Any]) -> None:
        """A one-off event (a command's completion, a locomotion command) to every subscription that takes it."""
        if self._accepting:
            self._dispatch(event_type, message, self.emulator.clock.monotonic() * 1000.0)

    def _dispatch(self, event_type: str, message: dict[str, Any], now_ms: float) -> None:
        deliveries = self.registry.deliveries(
            event_type,
            message,
            now_ms,
            version=self.websocket_version(),
            sensor_name=SENSOR_NAMES.get(event_type, ""),
        )
        for connection, envelope in deliveries:
            conn = self.connections.get(connection)
            if conn is not None:
                conn.post(envelope)
