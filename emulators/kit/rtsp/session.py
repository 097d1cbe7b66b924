"""The sans-I/O RTSP pull-server core: requests in, responses and effects out (RFC 2326 §10).

It owns the session table and every protocol rule (which method is valid when, which transport
is acceptable); the asyncio transport only moves bytes and carries out the effects it returns.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from emulators.kit.rtsp.message import RtspRequest, RtspResponse, respond
from emulators.kit.rtsp.rtp import RtpSender
from emulators.kit.rtsp.transport import TransportError, TransportSpec, parse_transport

PUBLIC_METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER")
KNOWN_METHODS = (*PUBLIC_METHODS, "ANNOUNCE", "RECORD", "PAUSE", "SET_PARAMETER", "REDIRECT")
# Matched on the whole URI: a Content-Base built from a URL with a query puts the control after it.
_TRACK_RE = re.compile(r"/trackID=(\d+)/?$")
_LIVE_RANGES = {"npt=0-", "npt=0.000-", "npt=now-", "npt=0.0-"}


@dataclass(frozen=True)
class PresentationTrack:
    track_id: int
    payload_type: int
    clock_rate: int


class UdpPortAllocator(Protocol):
    def allocate(self, session_id: str, track_id: int) -> tuple[int, int]:
        """Reserve an (RTP, RTCP) server port pair for one track of a session."""
        ...

    def release(self, session_id: str) -> None:
        """Free every port pair of the session."""
        ...


class SessionState(enum.Enum):
    READY = "ready"
    PLAYING = "playing"


@dataclass
class TrackSetup:
    track_id: int
    url: str
    transport: TransportSpec  # as answered to the client
    sender: RtpSender

    @property
    def interleaved(self) -> tuple[int, int] | None:
        return self.transport.interleaved

    @property
    def client_port(self) -> tuple[int, int] | None:
        return self.transport.client_port


@dataclass
class RtspSession:
    id: str
    connection_id: int
    peer_host: str
    last_activity: float
    state: SessionState = SessionState.READY
    tracks: dict[int, TrackSetup] = field(default_factory=dict)

    @property
    def lower_transport(self) -> str:
        return next(iter(self.tracks.values())).transport.lower_transport if self.tracks else "UDP"


@dataclass(frozen=True)
class ConnectionInfo:
    id: int
    peer_host: str


@dataclass(frozen=True)
class StartPlaying:
    session: RtspSession


@dataclass(frozen=True)
class EndSession:
    session: RtspSession
    reason: str


@dataclass(frozen=True)
class CloseConnection:
    pass


Effect = StartPlaying | EndSession | CloseConnection


@dataclass
class Reply:
    response: RtspResponse
    effects: list[Effect] = field(default_factory=list)


class RtspServerCore:
    """Session table and method rules of the live pull server."""

    def __init__(
        self,
        *,
        tracks: list[PresentationTrack],
        describe: Callable[[str], str],
        udp_ports: UdpPortAllocator,
        rng: random.Random | None = None,
        session_timeout: float = 60.0,
        max_sessions: int = 256,
        max_sessions_per_connection: int = 16,
    ) -> None:
        self._tracks = {t.track_id: t for t in tracks}
        self._describe = describe  # request URL -> SDP text
        self._udp_ports = udp_ports
        self._rng = rng or random.Random()
        self.session_timeout = session_timeout
        # Each UDP session holds two sockets per track: without caps one client can exhaust descriptors.
        self.max_sessions = max_sessions
        self.max_sessions_per_connection = max_sessions_per_connection
        self.sessions: dict[str, RtspSession] = {}

    @property
    def advertised_timeout(self) -> int:
        """The Session header's timeout: whole seconds (RFC 2326 §12.37), never 0."""
        return max(1, round(self.session_timeout))

    # -- entry points -------------------------------------------------------------------------

    def handle(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        cseq = request.cseq
        if cseq is None:
            return Reply(respond(400, None, "CSeq header is required on every request"))
        if request.version != "RTSP/1.0":
            return Reply(respond(505, cseq, f"version must be RTSP/1.0, got {request.version}"))
        required = request.headers.get("Require")
        if required:
            # RFC 2326 §12.32: no option extensions are implemented, so every one is unsupported.
            response = respond(551, cseq, f"option {required!r} is not supported")
            response.headers.set("Unsupported", required)
            return Reply(response)
        session_id = request.session_id
        if session_id is not None and session_id in self.sessions:
            self.sessions[session_id].last_activity = now
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe_presentation,
            "SETUP": self._setup,
            "PLAY": self._play,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._get_parameter,
        }.get(request.method)
        if handler is not None:
            return handler(request, connection, now)
        if request.method in KNOWN_METHODS:
            response = respond(405, cseq, f"{request.method} is not supported by this live server")
            response.headers.set("Allow", ", ".join(PUBLIC_METHODS))
            return Reply(response)
        return Reply(
            respond(501, cseq, f"method {request.method} is not implemented; allowed: {', '.join(PUBLIC_METHODS)}")
        )

    def touch(self, session_id: str, now: float) -> None:
        """Any sign of life from the client (an RTCP receiver report, a punch-through packet)."""
        if session_id in self.sessions:
            self.sessions[session_id].last_activity = now

    def connection_closed(self, connection_id: int) -> list[EndSession]:
        """Sessions die with their connection, except UDP ones already PLAYING: those live on while the client's
        RTCP keeps them alive (RFC 2326 lets a UDP client drop the control connection) and time out otherwise."""
        ended = [
            s
            for s in self.sessions.values()
            if s.connection_id == connection_id
            and (s.lower_transport == "TCP" or s.state is not SessionState.PLAYING)
        ]
        return [self.end(s.id, "connection closed") for s in ended]

    def expire(self, now: float) -> list[EndSession]:
        idle = [
            s
            for s in self.sessions.values()
            if s.lower_transport == "UDP" and now - s.last_activity > self.session_timeout
        ]
        return [self.end(s.id, "timeout") for s in idle]

    def end(self, session_id: str, reason: str) -> EndSession:
        session = self.sessions.pop(session_id)
        if session.lower_transport == "UDP":
            self._udp_ports.release(session_id)
        return EndSession(session, reason)

    # -- methods ------------------------------------------------------------------------------

    def _options(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        response = respond(200, request.cseq)
        response.headers.set("Public", ", ".join(PUBLIC_METHODS))
        self._echo_session(request, response)
        return Reply(response)

    def _describe_presentation(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        accept = request.headers.get("Accept")
        if accept and not any(kind in accept for kind in ("application/sdp", "*/*", "application/*")):
            return Reply(respond(406, request.cseq, f"DESCRIBE can only answer application/sdp, Accept was {accept!r}"))
        body = self._describe(request.uri).encode("utf-8")
        response = respond(200, request.cseq)
        response.headers.set("Content-Type", "application/sdp")
        response.headers.set("Content-Base", request.uri.rstrip("/") + "/")
        response.body = body
        return Reply(response)

    def _setup(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        cseq = request.cseq
        track_id, error = self._track_for(request.uri)
        if error is not None:
            return Reply(error.with_cseq(cseq))
        header = request.headers.get("Transport")
        if not header:
            return Reply(respond(461, cseq, "SETUP needs a Transport header, e.g. RTP/AVP/TCP;unicast;interleaved=0-1"))
        try:
            alternatives = parse_transport(header)
        except TransportError as exc:
            return Reply(respond(461, cseq, str(exc)))
        session: RtspSession | None = None
        if request.session_id is not None:
            session = self.sessions.get(request.session_id)
            if session is None:
                return Reply(respond(454, cseq, f"session {request.session_id!r} does not exist"))
            if session.state is SessionState.PLAYING:
                return Reply(respond(455, cseq, "SETUP is not allowed while the session is playing"))
        chosen, reason = self._choose_transport(alternatives, session, connection)
        if chosen is None:
            return Reply(respond(461, cseq, reason))
        if session is None:
            refusal = self._session_limit_reached(connection)
            if refusal is not None:
                return Reply(respond(503, cseq, refusal))
            session = RtspSession(self._new_session_id(), connection.id, connection.peer_host, now)
            self.sessions[session.id] = session
        track = self._tracks[track_id]
        sender = RtpSender(
            payload_type=track.payload_type,
            ssrc=self._rng.getrandbits(32),
            clock_rate=track.clock_rate,
            first_sequence=self._rng.getrandbits(16),
            timestamp_base=self._rng.getrandbits(32),
        )
        answer = TransportSpec(profile="RTP/AVP", lower_transport=chosen.lower_transport, ssrc=sender.ssrc)
        if chosen.lower_transport == "TCP":
            answer.interleaved = chosen.interleaved or self._free_channels(session, track_id)
        else:
            answer.client_port = chosen.client_port
            answer.server_port = self._udp_ports.allocate(session.id, track_id)
        session.tracks[track_id] = TrackSetup(track_id, request.uri, answer, sender)
        response = respond(200, request.cseq)
        response.headers.set("Transport", answer.format())
        response.headers.set("Session", f"{session.id};timeout={self.advertised_timeout}")
        return Reply(response)

    def _play(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        session, error = self._session_for(request)
        if session is None:
            return Reply(error)  # type: ignore[arg-type]
        if _TRACK_RE.search(request.uri):
            return Reply(respond(460, request.cseq, "PLAY applies to the whole presentation URL, not to one track"))
        requested_range = (request.headers.get("Range") or "npt=0-").replace(" ", "")
        if requested_range not in _LIVE_RANGES:
            return Reply(
                respond(457, request.cseq, f"Range {requested_range!r} is not playable live; use npt=0- or npt=now-")
            )
        response = respond(200, request.cseq)
        response.headers.set("Range", "npt=0.000-")
        response.headers.set(
            "RTP-Info",
            ",".join(
                f"url={t.url};seq={t.sender.first_sequence & 0xFFFF};rtptime={t.sender.timestamp_base}"
                for t in sorted(session.tracks.values(), key=lambda t: t.track_id)
            ),
        )
        response.headers.set("Session", f"{session.id};timeout={self.advertised_timeout}")
        if session.state is SessionState.PLAYING:
            return Reply(response)  # a repeated PLAY changes nothing on a live stream
        session.state = SessionState.PLAYING
        return Reply(response, [StartPlaying(session)])

    def _teardown(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        session, error = self._session_for(request)
        if session is None:
            return Reply(error)  # type: ignore[arg-type]
        response = respond(200, request.cseq)
        response.headers.set("Session", session.id)
        effects: list[Effect] = [self.end(session.id, "teardown")]
        if not any(s.connection_id == connection.id for s in self.sessions.values()):
            effects.append(CloseConnection())
        return Reply(response, effects)

    def _get_parameter(self, request: RtspRequest, connection: ConnectionInfo, now: float) -> Reply:
        if request.session_id is not None and request.session_id not in self.sessions:
            return Reply(respond(454, request.cseq, f"session {request.session_id!r} does not exist"))
        names = [n.strip() for n in request.body.decode("utf-8", "replace").splitlines() if n.strip()]
        if names:
            return Reply(
                respond(
                    451, request.cseq, f"parameter {names[0]!r} is not understood; send an empty body as keep-alive"
                )
            )
        response = respond(200, request.cseq)
        self._echo_session(request, response)
        return Reply(response)

    # -- helpers ------------------------------------------------------------------------------

    def _track_for(self, uri: str) -> tuple[int, RtspResponse | None]:
        match = _TRACK_RE.search(uri)
        if match is None:
            if len(self._tracks) == 1:
                return next(iter(self._tracks)), None
            controls = ", ".join(f"trackID={t}" for t in sorted(self._tracks))
            return -1, respond(459, None, f"SETUP needs a track URL ending in one of: {controls}")
        track_id = int(match.group(1))
        if track_id not in self._tracks:
            controls = ", ".join(f"trackID={t}" for t in sorted(self._tracks))
            return -1, respond(404, None, f"track {track_id} does not exist; tracks are {controls}")
        return track_id, None

    def _choose_transport(
        self, alternatives: list[TransportSpec], session: RtspSession | None, connection: ConnectionInfo
    ) -> tuple[TransportSpec | None, str]:
        reasons: list[str] = []
        for spec in alternatives:
            if spec.profile != "RTP/AVP":
                reasons.append(f"profile must be RTP/AVP, got {spec.profile}")
            elif not spec.unicast:
                reasons.append("multicast is not offered; use unicast")
            elif spec.mode != "PLAY":
                reasons.append(f"mode must be play on this server, got {spec.mode.lower()}")
            elif session is not None and session.tracks and spec.lower_transport != session.lower_transport:
                reasons.append(f"every track of a session must use {session.lower_transport}")
            elif spec.lower_transport == "UDP" and spec.client_port is None:
                reasons.append("UDP transport needs client_port=<rtp>-<rtcp>")
            elif (
                spec.lower_transport == "TCP"
                and spec.interleaved is not None
                and session is not None
                and any(
                    t.interleaved is not None and set(t.interleaved) & set(spec.interleaved)
                    for t in session.tracks.values()
                )
            ):
                reasons.append(f"interleaved channels {spec.interleaved[0]}-{spec.interleaved[1]} are already in use")
            elif spec.lower_transport == "TCP" and session is not None and session.connection_id != connection.id:
                reasons.append("interleaved tracks must be set up on the session's own connection")
            else:
                return spec, ""
        return None, "; ".join(reasons) or "no usable transport"

    def _session_limit_reached(self, connection: ConnectionInfo) -> str | None:
        """Why a new session is refused (503, as GStreamer's rtsp-server answers at its max-sessions), or None."""
        if len(self.sessions) >= self.max_sessions:
            return f"the server already has {self.max_sessions} sessions (its limit); TEARDOWN one first"
        own = sum(1 for s in self.sessions.values() if s.connection_id == connection.id)
        if own >= self.max_sessions_per_connection:
            return (
                f"this connection already has {self.max_sessions_per_connection} sessions (the per-connection "
                "limit); TEARDOWN one first"
            )
        return None

    def _free_channels(self, session: RtspSession, track_id: int) -> tuple[int, int]:
        used = {c for t in session.tracks.values() if t.interleaved for c in t.interleaved}
        channel = 2 * track_id
        while channel in used or channel + 1 in used:
            channel += 2
        return channel, channel + 1

    def _session_for(self, request: RtspRequest) -> tuple[RtspSession | None, RtspResponse | None]:
        session_id = request.session_id
        if session_id is None:
            return None, respond(454, request.cseq, f"{request.method} needs the Session header from SETUP")
        session = self.sessions.get(session_id)
        if session is None:
            return None, respond(454, request.cseq, f"session {session_id!r} does not exist")
        return session, None

    def _echo_session(self, request: RtspRequest, response: RtspResponse) -> None:
        if request.session_id is not None and request.session_id in self.sessions:
            response.headers.set("Session", f"{request.session_id};timeout={self.advertised_timeout}")

    def _new_session_id(self) -> str:
        while True:
            session_id = f"{self._rng.getrandbits(64):016X}"
            if session_id not in self.sessions:
                return session_id
