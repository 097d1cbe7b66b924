"""Misty AV push: already-encoded H.264 + AAC muxed by PyAV as FLV over RTMP or RTSP ANNOUNCE/RECORD.

FFmpeg's blocking network I/O runs in a thread owned by the push. It talks to the target through a
one-connection loopback relay the emulator owns, so connecting has a deadline and a stop cuts the
connection at once (FFmpeg's output has no timeout of its own and would otherwise block forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import quote, urlsplit

import av

from emulators.kit.codecs import AacEncoder, EncodedPacket, H264Encoder, annexb_to_avcc
from emulators.kit.outbound import EgressPolicy, EgressRefused

CONNECT_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
DEFAULT_PORTS = {"rtmp": 1935, "rtsp": 554}
# Two seconds of 30 fps video plus its audio: enough to ride out a hiccup, small enough to notice a dead link.
QUEUE_LIMIT = 160
_PUMP_CHUNK = 64 * 1024
# Characters that would change the meaning of a URL's userinfo; anything else is passed as typed.
_USERINFO_SPECIALS = set("@:/?#%[] ")


class PushConnectError(Exception):
    """The push target could not be reached, or its handshake did not finish in time; str = reason."""


@dataclass(frozen=True)
class PushTarget:
    """Where a push goes: the URL as given, split into the parts the relay and the muxer need."""

    url: str
    scheme: str  # rtmp or rtsp
    host: str
    port: int
    path: str  # path plus ?query, as FFmpeg should see it
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str, username: str | None, password: str | None) -> PushTarget:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise PushConnectError(f"unsupported scheme {parts.scheme!r}; AV push takes rtmp:// or rtsp://")
        if not parts.hostname:
            raise PushConnectError("the URL has no host")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise PushConnectError("the URL's port is not a number between 1 and 65535") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        # Explicit UserName/Password win over credentials already written into the URL.
        return cls(
            url=url,
            scheme=scheme,
            host=parts.hostname,
            port=port,
            path=path,
            username=username if username is not None else parts.username,
            password=password if password is not None else parts.password,
        )

    def muxer_url(self, relay_port: int) -> str:
        """The URL FFmpeg opens: the relay's address, the target's path, the credentials as userinfo."""
        userinfo = ""
        if self.username is not None:
            userinfo = _userinfo_part(self.username)
            if self.password is not None:
                userinfo += ":" + _userinfo_part(self.password)
            userinfo += "@"
        return f"{self.scheme}://{userinfo}127.0.0.1:{relay_port}{self.path}"

    @property
    def redacted(self) -> str:
        """The target URL without any password, for logs and events."""
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        if self.username:
            netloc = f"{self.username}:***@{netloc}" if self.password else f"{self.username}@{netloc}"
        return parts._replace(netloc=netloc).geturl()


def _userinfo_part(value: str) -> str:
    return quote(value, safe="") if any(ch in _USERINFO_SPECIALS for ch in value) else value


class PushRelay:
    """Accepts FFmpeg's single connection on a loopback port and pipes it to the target.

    The relay makes the emulator the owner of the connection: the upstream connect has a deadline and a
    reason we can report, and `aclose` (or a failed connect) closes both sides, which unblocks FFmpeg.
    """

    def __init__(self, target: PushTarget) -> None:
        self.target = target
        self.upstream_error: str | None = None
        self.bytes_out = 0
        self.bytes_in = 0
        self.upstream_closed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handler: asyncio.Task[None] | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_muxer, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _on_muxer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._handler is not None:  # only our own muxer may use this relay, and only once
            writer.close()
            return
        self._handler = asyncio.current_task()
        self._writers.append(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target.host, self.target.port), CONNECT_TIMEOUT_S
                )
            except TimeoutError:
                self.upstream_error = f"no TCP connection to {self.target.host}:{self.target.port} within 5 s"
                return
            except OSError as exc:
                self.upstream_error = f"{exc.strerror or exc} ({self.target.host}:{self.target.port})"
                return
            self._writers.append(up_writer)
            outbound = asyncio.ensure_future(self._pump(reader, up_writer, outbound=True))
            inbound = asyncio.ensure_future(self._pump(up_reader, writer, outbound=False))
            try:
                done, _ = await asyncio.wait({outbound, inbound}, return_when=asyncio.FIRST_COMPLETED)
                if inbound in done:
                    self.upstream_closed.set()
            finally:
                for task in (outbound, inbound):
                    task.cancel()
                await asyncio.gather(outbound, inbound, return_exceptions=True)
        finally:
            for w in self._writers:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, outbound: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(_PUMP_CHUNK):
                if outbound:
                    self.bytes_out += len(chunk)
                else:
                    self.bytes_in += len(chunk)
                writer.write(chunk)
                await writer.drain()

    def cut(self) -> None:
        """Close both sides now; FFmpeg's blocked read or write fails and its thread can finish."""
        for w in self._writers:
            w.close()

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        if self._handler is not None and not self._handler.done():
            self._handler.cancel()
            await asyncio.gather(self._handler, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


@dataclass(frozen=True)
class _Media:
    kind: str  # "video" or "audio"
    packet: EncodedPacket


class AvPush:
    """One push connection: a relay, a muxing thread and a bounded queue of encoded packets between them."""

    def __init__(
        self,
        target: PushTarget,
        video: H264Encoder,
        audio: AacEncoder,
        *,
        on_failure: Callable[[str], None] | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.target = target
        self._video = video
        self._audio = audio
        self._on_failure = on_failure
        self._egress = egress or EgressPolicy()
        self._relay = PushRelay(target)
        self._queue: queue.Queue[_Media | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[str | None] | None = None
        self._failure: str | None = None
        self.dropped = 0
        self.video_sent = 0
        self.audio_sent = 0

    # ----- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and publish; returns once the target accepted the stream, else PushConnectError."""
        try:
            await asyncio.to_thread(self._egress.check, self.target.url)
        except EgressRefused as exc:
            raise PushConnectError(str(exc)) from None
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        relay_port = await self._relay.start()
        self._thread = threading.Thread(
            target=self._run, args=(self.target.muxer_url(relay_port),), name=f"av-push-{self.target.scheme}"
        )
        self._thread.start()
        try:
            error = await asyncio.wait_for(asyncio.shield(self._connected), CONNECT_TIMEOUT_S)
        except TimeoutError:
            error = "handshake not completed within 5 s"
        if error is not None:
            await self._teardown()
            raise PushConnectError(self._relay.upstream_error or error)

    async def aclose(self) -> None:
        """Finish the stream (RTMP deleteStream / RTSP TEARDOWN), then free the relay and join the thread."""
        if self._thread is None:
            await self._relay.aclose()
            return
        while True:  # make room for the end marker: pending media is worthless once we stop
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        await self._teardown()

    async def _teardown(self) -> None:
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)
            if thread.is_alive():  # the target stopped reading: cut the line so FFmpeg gives up
                self._relay.cut()
                await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)
        await self._relay.aclose()
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join)
        self._thread = None

    # ----- media --------------------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self._failure is not None

    @property
    def failure(self) -> str | None:
        return self._failure

    def send(self, kind: str, packet: EncodedPacket) -> None:
        """Queue one encoded packet for the muxer; when the link cannot keep up it is dropped and counted."""
        if self._failure is not None:
            return
        try:
            self._queue.put_nowait(_Media(kind, packet))
        except queue.Full:
            self.dropped += 1

    def disconnect(self, reason: str) -> None:
        """Break the connection as a network failure would (the `disconnect`/`close` stream faults)."""
        self._fail(reason)
        self._relay.cut()

    def stats(self) -> dict[str, Any]:
        return {
            "video_packets": self.video_sent,
            "audio_packets": self.audio_sent,
            "dropped": self.dropped,
            "bytes_out": self._relay.bytes_out,
            "bytes_in": self._relay.bytes_in,
        }

    # ----- the muxing thread --------------------------------------------------------------------------
    def _run(self, url: str) -> None:
        try:
            container, video_stream, audio_stream = self._open(url)
        except Exception as exc:  # any FFmpeg error means we never got to publish
            self._signal_connected(_describe_av_error(exc))
            return
        self._signal_connected(None)
        try:
            while (item := self._queue.get()) is not None:
                if item.kind == "video":
                    self._mux(container, video_stream, annexb_to_avcc(item.packet.data), item.packet,
                              Fraction(1, self._video.fps))
                    self.video_sent += 1
                else:
                    self._mux(container, audio_stream, item.packet.data, item.packet,
                              Fraction(1, self._audio.sample_rate))
                    self.audio_sent += 1
        except Exception as exc:
            self._fail(_describe_av_error(exc))
        finally:
            with contextlib.suppress(Exception):  # the trailer fails when the link is already gone
                container.close()

    def _open(self, url: str) -> tuple[Any, Any, Any]:
        if self.target.scheme == "rtmp":
            # FLV over RTMP cannot seek back to patch duration/size; say so instead of failing at the end.
            container = av.open(url, "w", format="flv", options={"flvflags": "no_duration_filesize"})
        else:
            container = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"})
        try:
            video_stream = container.add_stream("libx264", rate=self._video.fps)
            video_stream.width = self._video.width
            video_stream.height = self._video.height
            video_stream.pix_fmt = "yuv420p"
            context = video_stream.codec_context
            # The stream only carries packets the shared encoder made; this context is never fed, so keep
            # it as light as possible and give it the real encoder's avcC instead of its own headers.
            context.options = {"preset": "ultrafast", "tune": "zerolatency"}
            context.thread_count = 1
            context.flags &= ~av.codec.context.Flags.global_header
            context.extradata = self._video.extradata
            audio_stream = container.add_stream("aac", rate=self._audio.sample_rate)
            audio_stream.layout = "mono" if self._audio.channels == 1 else "stereo"
            audio_stream.bit_rate = self._audio.bitrate
            container.start_encoding()  # opens the connection: RTMP handshake+publish, RTSP ANNOUNCE..RECORD
        except Exception:
            with contextlib.suppress(Exception):
                container.close()
            raise
        return container, video_stream, audio_stream

    @staticmethod
    def _mux(container: Any, stream: Any, data: bytes, packet: EncodedPacket, time_base: Fraction) -> None:
        out = av.Packet(data)
        out.pts = packet.pts
        out.dts = packet.pts
        out.time_base = time_base
        out.is_keyframe = packet.keyframe
        out.stream = stream
        container.mux(out)

    def _signal_connected(self, error: str | None) -> None:
        loop, future = self._loop, self._connected
        if loop is not None and future is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, future, error)

    def _fail(self, reason: str) -> None:
        if self._failure is not None:
            return
        self._failure = reason
        loop = self._loop
        if self._on_failure is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_failure, reason)


def _resolve(future: asyncio.Future[str | None], error: str | None) -> None:
    if not future.done():
        future.set_result(error)


def _describe_av_error(exc: BaseException) -> str:
    """FFmpeg's reason without the relay's loopback URL, which would only confuse a user."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
