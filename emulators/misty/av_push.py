"""Misty AV push: already-encoded H.264 + AAC muxed by PyAV as FLV over RTMP or RTSP ANNOUNCE/RECORD.

The muxer runs in the kit's ``MediaWorker`` (a process: PyAV holds the GIL while FFmpeg connects, so a target
that accepts TCP and then says nothing would otherwise freeze the emulator), fed encoded packets through the
worker's inbox. The parent gives the handshake a deadline and stops the worker whatever FFmpeg is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from emulators.kit.codecs import AacEncoder, EncodedPacket, H264Encoder, annexb_to_avcc

if TYPE_CHECKING:
    # Type names only: the worker process imports this module, and aiohttp would double its start-up time.
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

    from emulators.kit.emulator import Emulator
    from emulators.kit.outbound import EgressPolicy
    from emulators.kit.tasks import TaskOwner
    from emulators.kit.workers import MediaWorker

CONNECT_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
DEFAULT_PORTS = {"rtmp": 1935, "rtsp": 554}
# Encoded media sent to the muxer but not yet muxed; beyond this the link is not keeping up and packets drop.
BACKLOG_LIMIT = 4 * 1024 * 1024
# The worker reports how much it has muxed about this often (bytes), so the parent can measure the backlog.
MUXED_REPORT_BYTES = 64 * 1024
# How long the worker waits on its inbox before looking at the stop flag again.
INBOX_POLL_S = 0.1
# Characters that would change the meaning of a URL's userinfo; anything else is passed as typed.
_USERINFO_SPECIALS = set("@:/?#%[] ")
# One packet in the worker's inbox: (kind, pts, keyframe, payload); kind 0 is video, 1 audio.
_VIDEO, _AUDIO = 0, 1
# Inbox sentinels: `go` lets the worker connect; `abort` (the disconnect/close faults) drops the connection
# without a trailer.
_GO = "go"
_ABORT = "abort"


class PushConnectError(Exception):
    """The push target could not be reached, or its handshake did not finish in time; str = reason."""


@dataclass(frozen=True)
class PushTarget:
    """Where a push goes: the URL as given, split into the parts the muxer needs."""

    url: str
    scheme: str  # rtmp or rtsp
    host: str
    port: int
    path: str  # path plus ?query, as FFmpeg should see it
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str, username: str | None, password: str | None) -> PushTarget:
        parts = urlsplit(url.strip())
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

    def muxer_url(self) -> str:
        """The URL FFmpeg opens: the credentials as userinfo (FFmpeg answers RTSP 401s and RTMP auth with them)."""
        userinfo = ""
        if self.username is not None:
            userinfo = _userinfo_part(self.username)
            if self.password is not None:
                userinfo += ":" + _userinfo_part(self.password)
            userinfo += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{userinfo}{host}:{self.port}{self.path}"

    @property
    def redacted(self) -> str:
        """The target URL without any password, for logs and events."""
        parts = urlsplit(self.url.strip())
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        if self.username:
            netloc = f"{self.username}:***@{netloc}" if self.password else f"{self.username}@{netloc}"
        return parts._replace(netloc=netloc).geturl()


def _userinfo_part(value: str) -> str:
    return quote(value, safe="") if any(ch in _USERINFO_SPECIALS for ch in value) else value


class AvPush:
    """One push connection: a muxer ``MediaWorker`` fed encoded packets through its inbox.

    The worker reports ``("ready", "")`` (imports done), ``("connected", "")`` (the target accepted the
    stream), ``("muxed", bytes)`` as it goes, or ``("failed", reason)``. The 5 s connect deadline runs from
    ``ready``, so a slow interpreter start on a busy machine does not count against the target.
    """

    def __init__(
        self,
        target: PushTarget,
        video: H264Encoder,
        audio: AacEncoder | None,
        *,
        emulator: Emulator,
        tasks: TaskOwner,
        egress: EgressPolicy,
        on_failure: Callable[[str], None] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.target = target
        self._config = {
            "url": target.muxer_url(),
            "format": "flv" if target.scheme == "rtmp" else "rtsp",
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "extradata": video.extradata.hex(),
        }
        if audio is not None:  # a video-only stream (`av_audio = false`) has no audio keys
            self._config.update(sample_rate=audio.sample_rate, channels=audio.channels, audio_bitrate=audio.bitrate)
        self._emulator = emulator
        self._tasks = tasks
        self._egress = egress
        self._on_failure = on_failure
        self._start_timeout = start_timeout
        self._worker: MediaWorker | None = None
        self._messages: AsyncIterator[Any] | None = None
        self._failure: str | None = None
        self._stopping = False
        self._muxed = 0
        self.dropped = 0
        self.video_sent = 0
        self.audio_sent = 0
        self.bytes_sent = 0

    # ----- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and publish; returns once the target accepted the stream, else PushConnectError."""
        from emulators.kit.outbound import EgressRefused

        try:  # the configured allowlist, never a default of our own; checking may resolve a name: off the loop
            await asyncio.to_thread(self._egress.check, self.target.url)
        except EgressRefused as exc:
            raise PushConnectError(str(exc)) from None
        worker = self._emulator.media_worker(
            f"misty-push:{self.target.redacted}", push_muxer, self._config, stop_timeout_s=STOP_TIMEOUT_S
        )
        self._worker = worker
        worker.start()
        self._messages = worker.messages()
        try:
            status, reason = await self._next_message(self._start_timeout, "the muxer did not start")
            if status == "ready":
                worker.send(_GO)
                status, reason = await self._next_message(CONNECT_TIMEOUT_S, "handshake not completed within 5 s")
            if status != "connected":
                raise PushConnectError(reason or "the muxer exited before connecting")
        except BaseException:
            # A handshake stuck inside FFmpeg never sees the stop flag: the worker is killed after its stop
            # timeout and reported as leaked, so a silent target costs a few seconds, never a process.
            await worker.aclose()
            raise
        self._tasks.spawn(self._watch(), name="push-watcher")

    async def _next_message(self, seconds: float, timeout_reason: str) -> tuple[str, Any]:
        from emulators.kit.workers import WorkerFailed

        assert self._messages is not None
        try:
            status, detail = await asyncio.wait_for(anext(self._messages), seconds)
        except TimeoutError:
            raise PushConnectError(timeout_reason) from None
        except StopAsyncIteration:
            return "exited", ""
        except WorkerFailed as exc:  # the worker raised or died while connecting
            return "failed", str(exc).splitlines()[0]
        return status, detail

    async def _watch(self) -> None:
        """Turns a ``failed`` report or an unexpected end of the worker into this push's failure."""
        from emulators.kit.workers import WorkerFailed

        assert self._messages is not None
        try:
            async for status, detail in self._messages:
                if status == "muxed":
                    self._muxed = detail
                elif status == "failed":
                    self._fail(detail)
        except WorkerFailed as exc:  # the process died (a disconnect fault ends it this way too)
            self._fail(str(exc).splitlines()[0])
        if not self._stopping:
            self._fail("the connection to the push target was lost")

    async def aclose(self) -> None:
        """Finish the stream (RTMP deleteStream / RTSP TEARDOWN via the trailer) and stop the worker."""
        self._stopping = True
        if self._worker is not None:
            await self._worker.aclose()

    # ----- media --------------------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self._failure is not None

    @property
    def failure(self) -> str | None:
        return self._failure

    def send(self, kind: str, packet: EncodedPacket) -> None:
        """Hand one encoded packet to the muxer; when the link cannot keep up it is dropped and counted."""
        worker = self._worker
        if self._failure is not None or self._stopping or worker is None:
            return
        if self.bytes_sent - self._muxed > BACKLOG_LIMIT:
            self.dropped += 1
            return
        code = _VIDEO if kind == "video" else _AUDIO
        worker.send((code, packet.pts, packet.keyframe, packet.data))
        self.bytes_sent += len(packet.data)
        if code == _VIDEO:
            self.video_sent += 1
        else:
            self.audio_sent += 1

    def disconnect(self, reason: str) -> None:
        """Break the connection as a network failure would (the ``disconnect``/``close`` stream faults)."""
        self._fail(reason)
        if self._worker is not None:
            self._worker.send(_ABORT)

    def stats(self) -> dict[str, Any]:
        return {
            "video_packets": self.video_sent,
            "audio_packets": self.audio_sent,
            "bytes_sent": self.bytes_sent,
            "dropped": self.dropped,
        }

    def _fail(self, reason: str) -> None:
        if self._failure is not None:
            return
        self._failure = reason or "the push failed"
        if self._on_failure is not None:
            self._on_failure(self._failure)


# ----- the muxer worker (runs in the MediaWorker's process) ------------------------------------------------
def push_muxer(stop: Event, outbox: Queue[Any], inbox: Queue[Any], config: dict[str, Any]) -> None:
    """Open the muxer (connect), then mux packets from the inbox until stopped; reports on the outbox."""
    import av  # imported here so the parent hears `ready` only once the slow import is done

    outbox.put(("ready", ""))
    # The outbox is written by a feeder thread, and FFmpeg's connect holds the GIL: connecting right away
    # could keep `ready` from ever leaving. The parent answers `go` once it has read it.
    while _inbox_item(inbox) != _GO:
        if stop.is_set():
            return
    try:
        container, streams = _open_muxer(av, config)
    except Exception as exc:  # any FFmpeg error means we never got to publish
        outbox.put(("failed", _describe_av_error(av, exc)))
        return
    outbox.put(("connected", ""))
    time_bases = {_VIDEO: Fraction(1, config["fps"])}
    if "sample_rate" in config:
        time_bases[_AUDIO] = Fraction(1, config["sample_rate"])
    muxed = reported = 0
    try:
        while not stop.is_set():
            item = _inbox_item(inbox)
            if item is None:
                continue
            if item == _ABORT:
                # A network failure sends no trailer: leave without closing the container.
                os._exit(0)
            code, pts, keyframe, data = item
            packet = av.Packet(annexb_to_avcc(data) if code == _VIDEO else data)
            packet.pts = pts
            packet.dts = pts
            packet.time_base = time_bases[code]
            packet.is_keyframe = bool(keyframe)
            packet.stream = streams[code]
            container.mux(packet)
            muxed += len(data)
            if muxed - reported >= MUXED_REPORT_BYTES:
                outbox.put(("muxed", muxed))
                reported = muxed
    except Exception as exc:
        outbox.put(("failed", _describe_av_error(av, exc)))
    finally:
        with contextlib.suppress(Exception):  # the trailer fails when the link is already gone
            container.close()


def _inbox_item(inbox: Queue[Any]) -> Any:
    """The next inbox item, or None after a short wait (so the caller can look at its stop flag)."""
    try:
        return inbox.get(timeout=INBOX_POLL_S)
    except queue.Empty:
        return None


def _open_muxer(av: Any, config: dict[str, Any]) -> tuple[Any, dict[int, Any]]:
    if config["format"] == "flv":
        # RTMP cannot seek back to patch the FLV duration and size; say so instead of failing at the end.
        container = av.open(config["url"], "w", format="flv", options={"flvflags": "no_duration_filesize"})
    else:
        container = av.open(config["url"], "w", format="rtsp", options={"rtsp_transport": "tcp"})
    try:
        video = container.add_stream("libx264", rate=config["fps"])
        video.width = config["width"]
        video.height = config["height"]
        video.pix_fmt = "yuv420p"
        context = video.codec_context
        # The stream only carries packets the emulator's encoder made. This context is opened but never
        # fed, so keep it light and give it the real encoder's avcC instead of headers of its own.
        context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        context.thread_count = 1
        context.flags &= ~av.codec.context.Flags.global_header
        context.extradata = bytes.fromhex(config["extradata"])
        streams = {_VIDEO: video}
        if "sample_rate" in config:
            audio = container.add_stream("aac", rate=config["sample_rate"])
            audio.layout = "mono" if config["channels"] == 1 else "stereo"
            audio.bit_rate = config["audio_bitrate"]
            streams[_AUDIO] = audio
        container.start_encoding()  # connects: RTMP handshake + publish, or RTSP ANNOUNCE/SETUP/RECORD
    except Exception:
        with contextlib.suppress(Exception):
            container.close()
        raise
    return container, streams


def _describe_av_error(av: Any, exc: BaseException) -> str:
    """FFmpeg's reason in a few words (e.g. `Connection refused`)."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
