"""The ``/pubsub`` WebSocket: connections, the registry of event names, and the paced sensor sources.

Protocol decisions come from ``pubsub.py``; this module only moves text and owns the tasks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from emulators.kit.pacer import Pacer
from emulators.kit.tasks import TaskOwner
from emulators.misty.pubsub import (
    EMULATED_TYPES,
    RegistrationRefused,
    Subscribe,
    Subscription,
    Unsubscribe,
    duplicate_reason,
    event_envelope,
    parse_message,
    registration_reply,
)
from emulators.misty.sensors import SENSOR_NAMES, SensorSuite

if TYPE_CHECKING:
    from emulators.kit.emulator import Emulator

STREAM_NAME = "pubsub"  # the stream name for faults and pacing stats
SOURCE_HZ = 20.0  # the base tick: IMU every tick, TimeOfFlight and SelfState every 2nd, battery every 20th
OUTBOX_LIMIT = 512  # per connection; a client that does not read loses its oldest messages


@dataclass(eq=False)
class Connection:
    id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    outbox: deque[str] = field(default_factory=lambda: deque(maxlen=OUTBOX_LIMIT))
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def post(self, message: dict[str, Any]) -> None:
        self.outbox.append(json.dumps(message, separators=(",", ":")))
        self.wake.set()


class PubsubHub:
    """Serves ``/pubsub`` on the REST app. Event names are unique robot-wide, as the robot refuses duplicates."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        sensors: SensorSuite,
        camera_on: Callable[[], bool],
        websocket_version: Callable[[], str],
        sticky: bool = False,
    ) -> None:
        self.emulator = emulator
        self.sensors = sensors
        self.camera_on = camera_on
        self.websocket_version = websocket_version
        self.sticky = sticky
        self.tasks = TaskOwner("misty.pubsub")
        self.connections: dict[int, Connection] = {}
        # Event name -> owning connection id; None = a sticky subscription whose connection died.
        self.names: dict[str, int | None] = {}
        self.events_sent = 0
        self._ids = itertools.count(1)
        self._accepting = True

    # ----- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._accepting = True
        self.tasks.spawn(self._run_sources(), name="sources")

    async def aclose(self, *, forget_names: bool = True) -> None:
        """Close every connection with 1000 and stop the sources."""
        self._accepting = False
        await self.tasks.cancel_all()
        conns = list(self.connections.values())
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.OK) for c in conns), return_exceptions=True)
        self.connections.clear()
        if forget_names:
            self.names.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "subscriptions": sorted(self.names),
            "events_sent": self.events_sent,
        }

    # ----- the WebSocket ----------------------------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        if not self._accepting:
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER)
            return ws
        conn = Connection(id=next(self._ids), ws=ws, transport=request.transport)
        self.connections[conn.id] = conn
        self.emulator.events.record("client.connected", stream=STREAM_NAME, connection=conn.id)
        sender = self.tasks.spawn(self._send_to(conn), name=f"conn-{conn.id}")
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_message(conn, msg.data)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self._forget(conn)
            self.emulator.events.record("client.disconnected", stream=STREAM_NAME, connection=conn.id)
        return ws

    def _forget(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for name in conn.subscriptions:
            if self.names.get(name) == conn.id:
                if self.sticky:
                    self.names[name] = None  # the quirk: the name stays taken, silently
                else:
                    del self.names[name]
        conn.subscriptions.clear()

    def _on_message(self, conn: Connection, data: str | bytes) -> None:
        try:
            request = parse_message(data)
        except RegistrationRefused as exc:
            conn.post(registration_reply(exc.event_name, exc.reason))
            return
        if request is None:
            return
        if isinstance(request, Unsubscribe):
            # Only the subscribing connection can unsubscribe; there is no reply.
            if request.event_name in conn.subscriptions:
                del conn.subscriptions[request.event_name]
                self.names.pop(request.event_name, None)
            return
        assert isinstance(request, Subscribe)
        if request.event_name in self.names:
            conn.post(registration_reply(request.event_name, duplicate_reason(request.event_name)))
            return
        conn.subscriptions[request.event_name] = Subscription(request)
        self.names[request.event_name] = conn.id
        self.emulator.events.record(
            "pubsub.subscribed", connection=conn.id, event_name=request.event_name, type=request.event_type
        )
        conn.post(registration_reply(request.event_name))

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
    def _wanted(self) -> set[str]:
        return {s.event_type for c in self.connections.values() for s in c.subscriptions.values()}

    async def _run_sources(self) -> None:
        pacer = Pacer(1.0 / SOURCE_HZ, stats=self.emulator.pacing_stats(STREAM_NAME))
        async for tick in pacer.ticks():
            wanted = self._wanted() & set(EMULATED_TYPES)
            if not wanted:
                continue
            rule = self.emulator.stream_fault(STREAM_NAME)
            if rule is not None and await self._apply_fault(rule):
                continue
            now = time.time()
            now_ms = time.monotonic() * 1000.0
            if "IMU" in wanted:
                self._dispatch("IMU", self.sensors.imu(now), now_ms)
            if tick.index % 2 == 0:
                if "TimeOfFlight" in wanted:
                    for message in self.sensors.time_of_flight(now):
                        self._dispatch("TimeOfFlight", message, now_ms)
                if "SelfState" in wanted:
                    state = self.sensors.self_state(now, camera_on=self.camera_on(), ip_address=self.emulator.host)
                    self._dispatch("SelfState", state, now_ms)
            if tick.index % int(SOURCE_HZ) == 0 and "BatteryCharge" in wanted:
                self._dispatch("BatteryCharge", self.sensors.battery(now), now_ms)

    async def _apply_fault(self, rule: Any) -> bool:
        """Act on a stream fault; True when this tick's events are not sent."""
        action = rule.action
        if action.type == "drop":
            return True
        if action.type == "stall":
            await asyncio.sleep(action.seconds)
            return True
        if action.type in ("close", "disconnect"):
            conns = list(self.connections.values())
            if action.type == "close":
                await asyncio.gather(
                    *(c.ws.close(code=action.code, message=action.reason.encode()) for c in conns),
                    return_exceptions=True,
                )
            else:
                for conn in conns:
                    if conn.transport is not None:
                        conn.transport.abort()
            return True
        return False  # corrupt: applied per message below is not meaningful for JSON; send as is

    def _dispatch(self, event_type: str, message: dict[str, Any], now_ms: float) -> None:
        version = self.websocket_version()
        for conn in self.connections.values():
            for name, sub in conn.subscriptions.items():
                if sub.event_type != event_type:
                    continue
                deliver, payload = sub.offer(message, now_ms)
                if not deliver:
                    continue
                conn.post(
                    event_envelope(
                        name,
                        payload,
                        version=version,
                        event_type=event_type,
                        sensor_name=SENSOR_NAMES.get(event_type, ""),
                    )
                )
                self.events_sent += 1
