"""The asyncio transport of the RTSP pull server: TCP control connections, interleaved or UDP
media. Media goes out in one batch per event-loop tick for every session that has some; each
session's task only waits out back-pressure, sends its SRs and ends it. Protocol rules live in
`session.RtspServerCore`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from emulators.kit.rtsp.connection import serve_control_connection
from emulators.kit.rtsp.egress import Outgoing, SessionEgress, Stamped
from emulators.kit.rtsp.live import LiveMedia, Subscription
from emulators.kit.rtsp.message import (
    InterleavedFrame,
    RtspMessage,
    RtspRequest,
    RtspResponse,
    interleave,
    respond,
)
from emulators.kit.rtsp.sdp import (
    AUDIO_PAYLOAD_TYPE,
    AUDIO_TRACK,
    VIDEO_PAYLOAD_TYPE,
    VIDEO_TRACK,
    describe_live,
)
from emulators.kit.rtsp.session import (
    CloseConnection,
    ConnectionInfo,
    EndSession,
    PresentationTrack,
    RtspServerCore,
    RtspSession,
    StartPlaying,
)

log = logging.getLogger(__name__)
EventSink = Callable[[str, dict[str, Any]], None]


class _DatagramSink(asyncio.DatagramProtocol):
    """A server RTP/RTCP socket; whatever a client sends to it counts as a sign of life."""

    def __init__(self, on_datagram: Callable[[], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._on_datagram()


class _UdpPorts:
    """Binds an even/odd (RTP, RTCP) socket pair per track at SETUP time, synchronously, so the
    SETUP reply can name `server_port`; the server wraps `fresh` pairs in asyncio endpoints
    right after, and from then on the endpoints own the sockets."""

    def __init__(self, host: str) -> None:
        self._host = host
        self.fresh: list[tuple[str, int, socket.socket, socket.socket]] = []

    def allocate(self, session_id: str, track_id: int) -> tuple[int, int]:
        for _ in range(64):
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind((self._host, 0))
            port = rtp.getsockname()[1]
            if port % 2 == 0 and port < 65535:
                rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    rtcp.bind((self._host, port + 1))
                except OSError:
                    rtcp.close()
                else:
                    rtp.setblocking(False)
                    rtcp.setblocking(False)
                    self.fresh.append((session_id, track_id, rtp, rtcp))
                    return port, port + 1
            rtp.close()
        raise OSError("no free even/odd UDP port pair on the loopback interface")

    def release(self, session_id: str) -> None:
        for entry in [e for e in self.fresh if e[0] == session_id]:
            self.fresh.remove(entry)
            entry[2].close()
            entry[3].close()


@dataclass
class _Connection:
    info: ConnectionInfo
    writer: asyncio.StreamWriter
    peer: str


@dataclass
class _PlayingSession:
    session: RtspSession
    egress: SessionEgress
    subscription: Subscription
    connection: _Connection
    interleaved: bool
    udp: dict[int, tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    # Set for the sender task: the stream ended, the send buffer filled up, or the peer is gone.
    attention: asyncio.Event = field(default_factory=asyncio.Event)
    # The interleaved send buffer passed its high-water mark: the batches stop and the sender task
    # drains it, while new units queue in the subscription (which drops them once it is full).
    blocked: bool = False
    lost: bool = False
    writes: int = 0  # interleaved writes of media and reports: about one per producer tick
    high_water: int = 64 * 1024  # the connection transport's pause threshold


class RtspServer:
    """Serves `LiveMedia` to any number of RTSP clients on any path, over TCP or UDP."""

    def __init__(
        self,
        media: LiveMedia,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: EventSink | None = None,
        session_timeout: float = 60.0,
        report_interval: float = 5.0,
        max_pending: int = 90,
        send_buffer: int = 512 * 1024,
        seed: int | None = None,
        max_connections: int = 256,
        max_sessions: int = 256,
        max_sessions_per_connection: int = 16,
        idle_timeout: float = 60.0,
        head_timeout: float = 10.0,
    ) -> None:
        self._media = media
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._head_timeout = head_timeout
        self._host = host
        self._requested_port = port
        self._on_event = on_event
        self._report_interval = report_interval
        self._max_pending = max_pending
        self._send_buffer = send_buffer
        self._udp_ports = _UdpPorts(host)
        tracks = [PresentationTrack(VIDEO_TRACK, VIDEO_PAYLOAD_TYPE, 90000)]
        if media.audio is not None:
            tracks.append(PresentationTrack(AUDIO_TRACK, AUDIO_PAYLOAD_TYPE, media.audio.sample_rate))
        self._sdp_version = random.Random(seed).getrandbits(31)
        self.core = RtspServerCore(
            tracks=tracks,
            describe=self._describe,
            udp_ports=self._udp_ports,
            rng=random.Random(seed),
            session_timeout=session_timeout,
            max_sessions=max_sessions,
            max_sessions_per_connection=max_sessions_per_connection,
        )
        self._server: asyncio.Server | None = None
        self._connections: dict[int, _Connection] = {}
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._playing: dict[str, _PlayingSession] = {}
        self._udp_endpoints: dict[str, dict[int, tuple[asyncio.DatagramTransport, asyncio.DatagramTransport]]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._sender_tasks: set[asyncio.Task[None]] = set()
        self._ready: list[_PlayingSession] = []  # sessions with queued media for the next batch
        self._batch: asyncio.Handle | None = None
        self._connection_ids = itertools.count(1)
        self._closing = False
        self.dropped_units = 0  # summed over ended sessions; live ones are in `session_stats()`

    # -- public interface ---------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self._host, self._requested_port)
        self._housekeeping = asyncio.create_task(self._expire_idle_sessions(), name="rtsp-housekeeping")

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("RtspServer.port is only known after start()")
        return cast(int, self._server.sockets[0].getsockname()[1])

    @property
    def session_count(self) -> int:
        return len(self.core.sessions)

    def sending_counters(self) -> list[dict[str, Any]]:
        """Per playing session: its transport and the RTP packets and payload bytes sent so far (for /metrics)."""
        return [
            {
                "transport": p.session.lower_transport.lower(),
                "packets": sum(t.sender.packet_count for t in p.session.tracks.values()),
                "octets": sum(t.sender.octet_count for t in p.session.tracks.values()),
            }
            for p in self._playing.values()
        ]

    def session_stats(self) -> list[dict[str, Any]]:
        return [
            {
                "session": p.session.id,
                "transport": p.session.lower_transport.lower(),
                "delivered": p.subscription.delivered,
                "dropped": p.subscription.dropped,
                "pending": p.subscription.pending,
                "writes": p.writes,
                "packets": {t: s.sender.packet_count for t, s in p.session.tracks.items()},
            }
            for p in self._playing.values()
        ]

    async def aclose(self) -> None:
        """Closes every connection, sends RTCP BYE to UDP clients, frees the port, awaits all tasks."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        for session_id in list(self.core.sessions):
            await self._end(self.core.end(session_id, "server closed"))
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        await self._close_connections()
        await asyncio.gather(*self._sender_tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    async def _close_connections(self) -> None:
        """Close politely, then abort whatever a stuck client keeps open. Connection tasks end on
        their own once their socket is gone; cancelling them is the last resort because asyncio
        reports a cancelled client_connected_cb task as an unhandled error."""
        for connection in list(self._connections.values()):
            connection.writer.close()
        pending = {t for t in self._connection_tasks if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending:
            for connection in list(self._connections.values()):
                connection.writer.transport.abort()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- connections --------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closing:
            writer.close()
            return
        if len(self._connections) >= self._max_connections:
            # Refused at once so the descriptor is freed; the other connections keep being served.
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(respond(503, None, f"the server has {self._max_connections} connections").serialize())
            writer.close()
            self._emit("client_refused", {"reason": "connection limit", "limit": self._max_connections})
            return
        self._connection_tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None and self._send_buffer > 0:
            # Caps the kernel's share of a slow client's backlog (autotuning would let it grow to
            # megabytes, i.e. seconds of stale video) so the bounded queue above it decides drops.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
        peer_address = writer.get_extra_info("peername") or ("?", 0)
        peer = f"{peer_address[0]}:{peer_address[1]}"
        info = ConnectionInfo(next(self._connection_ids), peer_address[0])
        connection = _Connection(info, writer, peer)
        self._connections[info.id] = connection
        self._emit("client_connected", {"peer": peer})
        try:
            await serve_control_connection(
                reader,
                writer,
                partial(self._serve_messages, connection),
                idle_timeout=self._idle_timeout,
                head_timeout=self._head_timeout,
                busy=partial(self._owns_sessions, info.id),
            )
        finally:
            self._connections.pop(info.id, None)
            if not self._closing:
                for ended in self.core.connection_closed(info.id):
                    await self._end(ended)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            self._emit("client_disconnected", {"peer": peer})
            self._connection_tasks.discard(task)

    def _owns_sessions(self, connection_id: int) -> bool:
        return any(s.connection_id == connection_id for s in self.core.sessions.values())

    async def _serve_messages(self, connection: _Connection, messages: list[RtspMessage]) -> bool:
        """Answer each request in order; False when the connection should close."""
        for message in messages:
            if isinstance(message, InterleavedFrame):
                # RTCP receiver reports on an odd channel: the client is alive.
                for session in self.core.sessions.values():
                    if session.connection_id == connection.info.id:
                        self.core.touch(session.id, time.monotonic())
                continue
            if not isinstance(message, RtspRequest):
                continue
            reply = self.core.handle(message, connection.info, time.monotonic())
            if message.method == "SETUP" and reply.response.status == 200:
                await self._open_udp_endpoints()
            try:
                await self._send_response(connection, reply.response)
            except (ConnectionError, OSError):
                connected = False  # a client may hang up right after TEARDOWN; the effects still apply
            else:
                connected = True
            for effect in reply.effects:
                if isinstance(effect, StartPlaying) and connected:
                    self._start_playing(effect.session, connection)
                elif isinstance(effect, EndSession):
                    await self._end(effect)
                elif isinstance(effect, CloseConnection):
                    connected = False
            if not connected:
                return False
        return True

    async def _send_response(self, connection: _Connection, response: RtspResponse) -> None:
        connection.writer.write(response.serialize())
        await connection.writer.drain()

    def _describe(self, url: str) -> str:
        video = self._media.video
        audio = self._media.audio
        return describe_live(
            sps=self._media.sps,
            pps=self._media.pps,
            fps=video.fps,
            audio=(audio.sample_rate, audio.channels, audio.audio_specific_config) if audio else None,
            session_id=self._sdp_version,
            address=self._host,
        )

    async def _open_udp_endpoints(self) -> None:
        loop = asyncio.get_running_loop()
        while self._udp_ports.fresh:
            session_id, track_id, rtp_sock, rtcp_sock = self._udp_ports.fresh.pop(0)
            touch = _toucher(self.core, session_id)
            rtp, _ = await loop.create_datagram_endpoint(partial(_DatagramSink, touch), sock=rtp_sock)
            rtcp, _ = await loop.create_datagram_endpoint(partial(_DatagramSink, touch), sock=rtcp_sock)
            replaced = self._udp_endpoints.setdefault(session_id, {}).get(track_id)
            for endpoint in replaced or ():
                endpoint.close()
            self._udp_endpoints[session_id][track_id] = (rtp, rtcp)

    # -- sessions -----------------------------------------------------------------------------

    def _start_playing(self, session: RtspSession, connection: _Connection) -> None:
        egress = SessionEgress(
            self._media,
            {t: s.sender for t, s in session.tracks.items()},
            report_interval=self._report_interval,
            channels={t: s.interleaved[0] if s.interleaved else 0 for t, s in session.tracks.items()},
        )
        subscription = self._media.subscribe(max_pending=self._max_pending)
        playing = _PlayingSession(
            session, egress, subscription, connection, session.lower_transport == "TCP",
            self._udp_endpoints.get(session.id, {}),
        )
        subscription.listener = partial(self._media_ready, playing)
        playing.high_water = connection.writer.transport.get_write_buffer_limits()[1]
        self._playing[session.id] = playing
        playing.task = asyncio.create_task(self._stream(playing), name=f"rtsp-session-{session.id}")
        # Kept until done: a sender that ends on its own (media closed) is still awaited by aclose().
        self._sender_tasks.add(playing.task)
        playing.task.add_done_callback(self._sender_tasks.discard)
        self._emit(
            "play",
            {
                "session": session.id,
                "peer": connection.peer,
                "transport": session.lower_transport.lower(),
                "tracks": sorted(session.tracks),
            },
        )

    def _media_ready(self, playing: _PlayingSession, subscription: Subscription) -> None:
        """The subscription's listener: queued media joins the next batch; an ended stream wakes the task."""
        if subscription.closed:
            playing.attention.set()
            return
        self._ready.append(playing)
        if self._batch is None and not self._closing:
            # One callback per loop tick for every session: a producer that publishes a tick's video
            # and audio back to back gets them out as one write per client.
            self._batch = asyncio.get_running_loop().call_soon(self._send_batch)

    def _send_batch(self) -> None:
        self._batch = None
        ready, self._ready = self._ready, []
        now, wallclock = time.monotonic(), time.time()
        for playing in ready:
            if playing.blocked or playing.lost or self._playing.get(playing.session.id) is not playing:
                continue  # its sender task has it (or it has ended)
            try:
                self._send_pending(playing, now, wallclock)
            except Exception as exc:
                # One session's failure must not hold back the others' batches: its task ends it.
                if not isinstance(exc, OSError):
                    log.exception("RTSP session %s failed to send", playing.session.id)
                playing.lost = True
                playing.attention.set()

    def _send_pending(self, playing: _PlayingSession, now: float, wallclock: float) -> None:
        """Everything queued for the session plus any SR that is due, in one write (TCP) or one
        datagram per packet (UDP). Per unit, only the shared packets' headers are stamped."""
        out = bytearray()
        egress = playing.egress
        stamped: list[Stamped] = []
        for unit in playing.subscription.take_all():
            placed = egress.append_packets(unit, out)
            if placed is not None:
                stamped.append(placed)
        reports = egress.reports_due(now, wallclock)
        if not stamped and not reports:
            return
        if playing.interleaved:
            writer = playing.connection.writer
            if writer.is_closing():
                playing.lost = True
                playing.attention.set()
                return
            tracks = playing.session.tracks
            for report in reports:
                channels = tracks[report.track_id].interleaved or (0, 1)
                out += interleave(channels[1], report.data)
            transport = writer.transport
            transport.write(out)
            playing.writes += 1
            if transport.get_write_buffer_size() > playing.high_water:
                playing.blocked = True  # a slow reader: only its own task waits, others keep going
                playing.attention.set()
            return
        for placed in stamped:
            endpoints = playing.udp.get(placed.track_id)
            client_port = playing.session.tracks[placed.track_id].client_port
            if endpoints is None or client_port is None:
                continue
            send, address = endpoints[0].sendto, (playing.session.peer_host, client_port[0])
            for packet in placed.template.packets(out, placed.start):
                send(packet, address)
        self._send_udp(playing, reports)

    async def _stream(self, playing: _PlayingSession) -> None:
        session = playing.session
        egress = playing.egress
        try:
            while not playing.lost:
                playing.attention.clear()
                if playing.blocked:
                    # A slow reader holds only this task; its subscription fills and drops meanwhile.
                    await playing.connection.writer.drain()
                    playing.blocked = False
                self._send_pending(playing, time.monotonic(), time.time())  # a backlog, or a due SR
                if playing.blocked or playing.lost:
                    continue
                if playing.subscription.closed:
                    break  # what was queued went out just above
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(egress.seconds_until_report(time.monotonic())):
                        await playing.attention.wait()
        except (ConnectionError, OSError):
            pass
        # The stream ended on its own (media closed or client gone): finish the session here.
        if session.id in self.core.sessions:
            await self._end(self.core.end(session.id, "stream ended"), from_sender=True)

    async def _deliver(self, playing: _PlayingSession, connection: _Connection, out: list[Outgoing]) -> bool:
        """RTCP outside the batches (the goodbyes at the end)."""
        session = playing.session
        if session.lower_transport == "TCP":
            writer = connection.writer
            if writer.is_closing():
                return False
            chunks = []
            for item in out:
                setup = session.tracks[item.track_id]
                channels = setup.interleaved or (0, 1)
                chunks.append(interleave(channels[1] if item.rtcp else channels[0], item.data))
            writer.write(b"".join(chunks))
            await writer.drain()
            return True
        self._send_udp(playing, out)
        return True

    async def _end(self, ended: EndSession, *, from_sender: bool = False) -> None:
        session = ended.session
        playing = self._playing.pop(session.id, None)
        if playing is not None:
            playing.subscription.close()  # ends the sender even if a cancellation got lost
            if playing.task is not None and not from_sender:
                playing.task.cancel()
                await asyncio.gather(playing.task, return_exceptions=True)
            self.dropped_units += playing.subscription.dropped
            byes = playing.egress.goodbyes(time.time(), ended.reason)
            connection = self._connections.get(session.connection_id)
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                if session.lower_transport == "UDP":
                    self._send_udp(playing, byes)
                elif connection is not None and not connection.writer.is_closing():
                    async with asyncio.timeout(1.0):
                        await self._deliver(playing, connection, byes)
            if session.lower_transport == "TCP" and ended.reason == "stream ended" and connection is not None:
                connection.writer.close()  # the live stream is over: clients see EOF
        for endpoints in self._udp_endpoints.pop(session.id, {}).values():
            for endpoint in endpoints:
                endpoint.close()
        self._emit(
            "teardown",
            {
                "session": session.id,
                "reason": ended.reason,
                "transport": session.lower_transport.lower(),
                "dropped": playing.subscription.dropped if playing else 0,
                "packets": {t: s.sender.packet_count for t, s in session.tracks.items()},
            },
        )

    def _send_udp(self, playing: _PlayingSession, out: list[Outgoing]) -> None:
        for item in out:
            setup = playing.session.tracks[item.track_id]
            endpoints = playing.udp.get(item.track_id)
            if endpoints is not None and setup.client_port is not None:
                port = setup.client_port[1] if item.rtcp else setup.client_port[0]
                endpoints[1 if item.rtcp else 0].sendto(item.data, (playing.session.peer_host, port))

    async def _expire_idle_sessions(self) -> None:
        period = max(0.05, min(1.0, self.core.session_timeout / 4))
        while True:
            await asyncio.sleep(period)  # housekeeping cadence, not media pacing
            for ended in self.core.expire(time.monotonic()):
                await self._end(ended)

    def _emit(self, kind: str, details: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, details)
        except Exception:  # an observer's bug must not take the server down
            log.exception("RTSP on_event callback failed for %s", kind)


def _toucher(core: RtspServerCore, session_id: str) -> Callable[[], None]:
    return lambda: core.touch(session_id, time.monotonic())
