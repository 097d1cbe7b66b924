"""Misty AV push: already-encoded H.264 + AAC muxed by PyAV as FLV over RTMP or RTSP ANNOUNCE/RECORD.

The muxer runs in a worker process owned by the push, fed encoded packets over a pipe. A thread would
not do: PyAV holds the GIL while FFmpeg connects (RTMP handshake, RTSP ANNOUNCE/SETUP/RECORD), so a
target that accepts TCP and then says nothing would freeze the whole emulator. A process can be given
a connect deadline and be stopped whatever FFmpeg is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urlsplit

from emulators.kit.codecs import AacEncoder, EncodedPacket, H264Encoder, annexb_to_avcc

if TYPE_CHECKING:
    # Imported where used: it pulls in aiohttp, which would double the muxer worker's start-up time.
    from emulators.kit.outbound import EgressPolicy

CONNECT_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
DEFAULT_PORTS = {"rtmp": 1935, "rtsp": 554}
# Encoded media waiting in the pipe to the muxer; beyond this the link is not keeping up and packets drop.
PIPE_BACKLOG_LIMIT = 4 * 1024 * 1024
# Characters that would change the meaning of a URL's userinfo; anything else is passed as typed.
_USERINFO_SPECIALS = set("@:/?#%[] ")
# One packet on the pipe: kind (0 video, 1 audio), pts, keyframe flag, payload length; then the payload.
_PACKET_HEADER = struct.Struct(">BqBI")
_VIDEO, _AUDIO = 0, 1
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
    """One push connection: a muxer worker process fed encoded packets through its stdin.

    The worker reports on stdout, one line each: `ready` (imports done), `connected` (the target accepted
    the stream) or `failed <reason>`. The 5 s connect deadline runs from `ready`, so a slow interpreter
    start on a busy machine does not count against the target.
    """

    def __init__(
        self,
        target: PushTarget,
        video: H264Encoder,
        audio: AacEncoder,
        *,
        on_failure: Callable[[str], None] | None = None,
        egress: EgressPolicy,
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
            "sample_rate": audio.sample_rate,
            "channels": audio.channels,
            "audio_bitrate": audio.bitrate,
        }
        self._on_failure = on_failure
        self._egress = egress
        self._start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._stopping = False
        self.dropped = 0
        self.video_sent = 0
        self.audio_sent = 0
        self.bytes_sent = 0

    # ----- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and publish; returns once the target accepted the stream, else PushConnectError."""
        from emulators.kit.outbound import EgressRefused

        try:
            await asyncio.to_thread(self._egress.check, self.target.url)
        except EgressRefused as exc:
            raise PushConnectError(str(exc)) from None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from emulators.misty.av_push import worker_main; worker_main()",
            json.dumps(self._config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        try:
            status, reason = await self._status_line(self._start_timeout, "the muxer did not start")
            if status == "ready":
                status, reason = await self._status_line(CONNECT_TIMEOUT_S, "handshake not completed within 5 s")
            if status != "connected":
                raise PushConnectError(reason or "the muxer exited before connecting")
        except BaseException:
            await self._stop_process(kill=True)
            raise
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="av-push-watcher")

    async def _status_line(self, seconds: float, timeout_reason: str) -> tuple[str, str]:
        assert self._process is not None and self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), seconds)
        except TimeoutError:
            raise PushConnectError(timeout_reason) from None
        status, _, reason = line.decode(errors="replace").strip().partition(" ")
        return status, reason

    async def _watch(self) -> None:
        """Turns a `failed` line or an unexpected exit of the worker into this push's failure."""
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            status, _, reason = line.decode(errors="replace").strip().partition(" ")
            if status == "failed":
                self._fail(reason)
        if not self._stopping:
            self._fail("the connection to the push target was lost")

    async def aclose(self) -> None:
        """Finish the stream (RTMP deleteStream / RTSP TEARDOWN via the trailer), reap the worker."""
        self._stopping = True
        await self._stop_process(kill=False)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    async def _stop_process(self, *, kill: bool) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            if kill:
                process.kill()
            elif process.stdin is not None:
                process.stdin.close()  # end of media: the worker writes the trailer and exits
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:  # the target stopped reading, so the trailer never goes out
                process.kill()
                await process.wait()
        with contextlib.suppress(Exception):
            if process.stdin is not None:
                process.stdin.close()

    # ----- media --------------------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self._failure is not None

    @property
    def failure(self) -> str | None:
        return self._failure

    def send(self, kind: str, packet: EncodedPacket) -> None:
        """Hand one encoded packet to the muxer; when the link cannot keep up it is dropped and counted."""
        process = self._process
        if self._failure is not None or self._stopping or process is None or process.stdin is None:
            return
        stdin = process.stdin
        if stdin.is_closing():
            return
        if stdin.transport.get_write_buffer_size() > PIPE_BACKLOG_LIMIT:
            self.dropped += 1
            return
        code = _VIDEO if kind == "video" else _AUDIO
        stdin.write(_PACKET_HEADER.pack(code, packet.pts, int(packet.keyframe), len(packet.data)) + packet.data)
        self.bytes_sent += len(packet.data)
        if code == _VIDEO:
            self.video_sent += 1
        else:
            self.audio_sent += 1

    def disconnect(self, reason: str) -> None:
        """Break the connection as a network failure would (the `disconnect`/`close` stream faults)."""
        self._fail(reason)
        if self._process is not None and self._process.returncode is None:
            self._process.kill()  # reaped in aclose

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


# ----- the muxer worker process ---------------------------------------------------------------------------
def worker_main() -> None:
    """Entry point of the worker: open the muxer (connect), then mux packets from stdin until EOF."""
    import av  # imported here so the parent reports `ready` only once the slow import is done

    config = json.loads(sys.argv[1])
    _say("ready")
    try:
        container, streams = _open_muxer(av, config)
    except Exception as exc:  # any FFmpeg error means we never got to publish
        _say(f"failed {_describe_av_error(av, exc)}")
        return
    _say("connected")
    time_bases = {_VIDEO: Fraction(1, config["fps"]), _AUDIO: Fraction(1, config["sample_rate"])}
    try:
        for code, pts, keyframe, data in _read_packets(sys.stdin.buffer):
            packet = av.Packet(annexb_to_avcc(data) if code == _VIDEO else data)
            packet.pts = pts
            packet.dts = pts
            packet.time_base = time_bases[code]
            packet.is_keyframe = bool(keyframe)
            packet.stream = streams[code]
            container.mux(packet)
    except Exception as exc:
        _say(f"failed {_describe_av_error(av, exc)}")
    finally:
        with contextlib.suppress(Exception):  # the trailer fails when the link is already gone
            container.close()


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
        audio = container.add_stream("aac", rate=config["sample_rate"])
        audio.layout = "mono" if config["channels"] == 1 else "stereo"
        audio.bit_rate = config["audio_bitrate"]
        container.start_encoding()  # connects: RTMP handshake + publish, or RTSP ANNOUNCE/SETUP/RECORD
    except Exception:
        with contextlib.suppress(Exception):
            container.close()
        raise
    return container, {_VIDEO: video, _AUDIO: audio}


def _read_packets(stream: BinaryIO) -> Any:
    while header := stream.read(_PACKET_HEADER.size):
        if len(header) < _PACKET_HEADER.size:
            return
        code, pts, keyframe, length = _PACKET_HEADER.unpack(header)
        data = stream.read(length)
        if len(data) < length:
            return
        yield code, pts, keyframe, data


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def _describe_av_error(av: Any, exc: BaseException) -> str:
    """FFmpeg's reason in a few words (e.g. `Connection refused`)."""
    if isinstance(exc, av.FFmpegError):
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
