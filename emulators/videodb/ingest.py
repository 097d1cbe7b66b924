"""The RTStream pull worker: in a kit media worker process, PyAV opens the rtsp:// or rtmp:// source, reconnects
with backoff while the source is down, samples frames and audio levels for indexing and, with store=true, remuxes
packets (no re-encode) into MPEG-TS segments cut at keyframes.

The process never touches the backend: it sends ``IngestSignal`` messages, and it learns what to decode and the
fault verdict of each packet (while a stream fault rule is armed) from its inbox.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from emulators.kit.clock import Clock
from emulators.kit.faults import Abort, Close, Send, Skip, StreamVerdict, corrupt_payload
from emulators.videodb.indexing import FrameSample, analyse_frame, rms_frames, spectral_flux
from emulators.videodb.records import Segment
from emulators.videodb.rtsp_guard import RedirectGuard

if TYPE_CHECKING:
    import av
    import numpy as np


if TYPE_CHECKING:  # the worker process never needs the HTTP client the outbound module imports
    from emulators.kit.outbound import EgressPolicy

log = logging.getLogger("benchtwin.videodb.ingest")

# Codecs MPEG-TS carries as they are; anything else is analysed but not recorded.
RECORDABLE_VIDEO = {"h264", "hevc", "mpeg2video", "mpeg1video"}
RECORDABLE_AUDIO = {"aac", "mp3", "mp2", "ac3", "eac3", "opus"}
AUDIO_RATE = 16_000
ANALYSIS_MAX_WIDTH = 640


# ----- signals the worker posts to the loop -------------------------------------------------------------
@dataclass(frozen=True)
class SourceUp:
    codecs: dict[str, str]


@dataclass(frozen=True)
class SourceDown:
    reason: str
    attempt: int
    retry_in_s: float


@dataclass(frozen=True)
class SegmentDone:
    segment: Segment


@dataclass(frozen=True)
class FrameSampled:
    sample: FrameSample
    # The decoded picture itself (at most ANALYSIS_MAX_WIDTH wide), for the dashboard's preview; not kept.
    picture: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class AudioLevels:
    start: float
    rms: list[float]
    flux: list[float] = field(default_factory=list)  # spectral flux per 30 ms frame (speech or a tone)


@dataclass(frozen=True)
class PullCounters:
    """Sent a few times a second: what the pull has done so far."""

    packets: int
    connections: int
    decode_errors: int


@dataclass(frozen=True)
class VerdictWanted:
    """A packet waits for its fault verdict (only while a rule for this stream is armed)."""


IngestSignal = SourceUp | SourceDown | SegmentDone | FrameSampled | AudioLevels | PullCounters | VerdictWanted


# ----- what the parent sends into the worker's inbox -----------------------------------------------------
@dataclass(frozen=True)
class Wants:
    """Which decoded media the running indexes and the transcript need."""

    frames: bool
    audio: bool


@dataclass(frozen=True)
class Armed:
    """Whether a stream fault rule may match this stream: then every packet asks for its verdict."""

    on: bool


COUNTERS_EVERY_S = 0.25


@dataclass
class IngestConfig:
    rtstream_id: str
    url: str
    media_types: list[str]
    sample_rate: int
    store: bool
    directory: Path  # the stream's recording directory
    recording: int | None  # recording number segments belong to (None: not storing)
    first_sequence: int
    segment_s: float = 2.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 3.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 2.0
    egress_networks: list[str] = field(default_factory=list)  # the egress allowlist, checked before every open
    egress_hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceCheck:
    """The egress verdict on a source URL: why it is refused, or the URL to open (a resolved name pinned to the
    address that was checked, so a later lookup cannot send the pull elsewhere)."""

    refusal: str | None
    url: str


def resolve_host(host: str) -> list[str]:
    """Every address of a host name (blocking: call it off the event loop)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_source(
    url: str, networks: list[str], hosts: list[str], resolve: Callable[[str], list[str]] | None = resolve_host
) -> SourceCheck:
    """Admit ``url`` when its host is an allowed name (localhost), an address inside ``networks``, or a name
    every address of which is inside them (the configuration's ``egress_allow``). ``resolve=None`` leaves
    names to the check before each connection (it only judges what needs no lookup)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        return SourceCheck(f"'url' has no host: {url!r}", url)
    allowed = [ipaddress.ip_network(n, strict=False) for n in networks]
    listed = ", ".join(str(n) for n in allowed)
    if host.lower() in {h.lower() for h in hosts}:
        return SourceCheck(None, url)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        address = None
    if address is not None:
        if any(address in network for network in allowed):
            return SourceCheck(None, url)
        refusal = f"'url' host {host} is outside the egress allowlist {listed} (configuration egress_allow)"
        return SourceCheck(refusal, url)
    if resolve is None:
        return SourceCheck(None, url)
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError) as exc:
        return SourceCheck(f"'url' host {host!r} does not resolve ({getattr(exc, 'strerror', None) or exc})", url)
    outside = [a for a in addresses if not any(ipaddress.ip_address(a.split("%", 1)[0]) in n for n in allowed)]
    if not addresses or outside:
        return SourceCheck(
            f"'url' host {host!r} resolves to {', '.join(addresses) or 'no address'}, not all inside the egress "
            f"allowlist {listed} (configuration egress_allow)",
            url,
        )
    pinned = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    netloc = pinned if parts.port is None else f"{pinned}:{parts.port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return SourceCheck(None, urlunsplit(parts._replace(netloc=netloc)))


def egress_lists(egress: EgressPolicy) -> tuple[list[str], list[str]]:
    """The policy as plain lists, for the worker process (which never imports the outbound module)."""
    return [str(n) for n in egress.networks], sorted(egress.hosts)


def source_refusal(
    egress: EgressPolicy, url: str, resolve: Callable[[str], list[str]] | None = resolve_host
) -> str | None:
    """Why the egress policy refuses to pull ``url`` (a name is resolved: blocking), or None."""
    return check_source(url, *egress_lists(egress), resolve).refusal


PROBE_S = 1.0  # the demuxer's analyzeduration: how much media it may read before the first packet is returned
SENDER_CLOCK_TOLERANCE_S = 2.0  # the probe burst (1 s) and transport latency fit inside it


@dataclass
class CaptureTiming:
    """Maps media time to wall (capture) time from the packets' own arrival.

    Opening a live source reads up to ``PROBE_S`` of media before the first packet is returned, so the first
    packets arrive together and late. ``arrival - media`` is smallest for packets that came on time; its
    minimum over the packets seen is the offset of the media clock. A packet is mapped only once the packets
    ``PROBE_S`` of media after it have arrived, so the probe burst is behind it and the offset is settled.
    """

    offset: float | None = None
    newest: float | None = None
    sender: bool = False  # the sender said when media time 0 was captured (RTCP sender reports)

    def arrived(self, media_s: float, wall: float) -> None:
        gap = wall - media_s
        if not self.sender:
            self.offset = gap if self.offset is None else min(self.offset, gap)
        self.newest = media_s if self.newest is None else max(self.newest, media_s)

    def sender_clock(self, origin_s: float) -> bool:
        """The sender's own wall time of media time 0 (an RTSP source's RTCP sender report) replaces the
        estimate, since it has no transport latency in it; a sender whose clock is further than
        ``SENDER_CLOCK_TOLERANCE_S`` from ours (a camera that never synchronised) is not believed."""
        if self.offset is not None and abs(origin_s - self.offset) > SENDER_CLOCK_TOLERANCE_S:
            return False
        self.offset, self.sender = origin_s, True
        return True

    def settled(self, media_s: float) -> bool:
        return self.newest is not None and self.newest - media_s >= PROBE_S

    def wall(self, media_s: float) -> float:
        assert self.offset is not None, "a packet is mapped only after one has arrived"
        return media_s + self.offset


@dataclass(frozen=True)
class _Media:
    """What one connection's packets are checked against while they are handled."""

    video: Any
    audio: Any
    resampler: Any
    templates: dict[int, Any]
    cut_index: int
    transcode: bool


class SourceDisconnected(Exception):
    """A fault rule cut the source connection."""


@dataclass
class SegmentWriter:
    """Remuxes packets into ``rec-<n>/<seq>.ts`` files, cutting at a key packet of the cut stream."""

    directory: Path
    recording: int
    sequence: int
    segment_s: float
    emit: Callable[[Segment], None]
    discontinuity: bool = False
    _out: Any = None
    _map: dict[int, Any] = field(default_factory=dict)
    _start: float = 0.0
    _last: float = 0.0
    _last_duration: float = 0.0
    _path: Path | None = None
    # Audio MPEG-TS cannot carry (G.711 from IP cameras, PCM) is re-encoded to AAC at this rate.
    transcode_rate: int | None = None
    audio_cuts: bool = False  # no recordable video: transcoded audio decides where segments start
    _aac: Any = None
    _templates: dict[int, Any] = field(default_factory=dict)

    def write(self, packet: av.Packet, t: float, templates: dict[int, Any], cut_index: int) -> None:
        import av

        index = packet.stream.index
        is_cut_stream = index == cut_index
        if self._out is None:
            if not (is_cut_stream and packet.is_keyframe):
                return  # every segment starts with a keyframe so it plays on its own
            self._open(templates, t)
        elif is_cut_stream and packet.is_keyframe and t - self._start >= self.segment_s:
            self._finish(t)
            self._open(templates, t)
        out_stream = self._map.get(index)
        if out_stream is None:
            return
        if is_cut_stream:
            self._last = t
            if packet.duration and packet.time_base:
                self._last_duration = float(packet.duration * packet.time_base)
        packet.stream = out_stream
        try:
            self._out.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            # A corrupt or out-of-order packet is dropped from the recording, not fatal to it.
            log.debug("mux skipped a packet: %s", exc)

    def write_audio_frame(self, frame: Any, t: float, media_s: float) -> None:
        """Encode one decoded audio frame to AAC into the current segment (transcoding sources only)."""
        import av

        if self.transcode_rate is None:
            return
        if self.audio_cuts:
            if self._out is None:
                self._open(self._templates, t)
            elif t - self._start >= self.segment_s:
                self._finish(t)
                self._open(self._templates, t)
            self._last = t
            self._last_duration = frame.samples / max(1, frame.sample_rate)
        if self._out is None or self._aac is None:
            return  # before the first video keyframe: nothing to attach the audio to yet
        frame.pts = round(media_s * self.transcode_rate)
        frame.time_base = Fraction(1, self.transcode_rate)
        try:
            for packet in self._aac.encode(frame):
                self._out.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            log.debug("audio transcode skipped a frame: %s", exc)

    def _open(self, templates: dict[int, Any], t: float) -> None:
        import av

        folder = self.directory / f"rec-{self.recording}"
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / f"{self.sequence}.ts"
        self._out = av.open(str(self._path), "w", format="mpegts")
        self._templates = templates
        self._map = {index: self._out.add_stream_from_template(s) for index, s in templates.items()}
        self._aac = None
        if self.transcode_rate is not None:
            self._aac = self._out.add_stream("aac", rate=self.transcode_rate, layout="mono", bit_rate=64_000)
        self._start = t
        self._last = t

    def _finish(self, end: float | None) -> None:
        import av

        if self._out is None or self._path is None:
            return
        try:
            if self._aac is not None:
                for packet in self._aac.encode(None):  # drain the encoder into this segment
                    self._out.mux(packet)
            self._out.close()
        except av.FFmpegError as exc:
            log.warning("closing segment %s failed: %s", self._path, exc)
        self._out = None
        stop = end if end is not None else self._last + (self._last_duration or 0.1)
        duration = round(max(0.001, stop - self._start), 3)
        self.emit(
            Segment(
                recording=self.recording,
                sequence=self.sequence,
                start=round(self._start, 6),
                duration=duration,
                file=f"rec-{self.recording}/{self.sequence}.ts",
                discontinuity=self.discontinuity,
            )
        )
        self.discontinuity = False
        self.sequence += 1

    def close(self) -> None:
        self._finish(None)


class Inbox:
    """The worker's side of its inbox: what to decode, whether faults are armed, and the verdicts it asked for."""

    def __init__(self, inbox: Any, stop: Any) -> None:
        self._inbox = inbox
        self._stop = stop
        self.wants = Wants(frames=False, audio=False)
        self.armed = False

    def poll(self) -> None:
        """Take every pending control message (never blocks)."""
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._take(message)

    def verdict(self, outbox: Any) -> StreamVerdict:
        """Ask the parent for this packet's verdict and wait for it (a stall is the parent answering late)."""
        outbox.put(VerdictWanted())
        while not self._stop.is_set():
            try:
                message = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(message, Send | Skip | Close | Abort):
                return message
            self._take(message)
        return Skip()  # stopping: the packet does not matter any more

    def _take(self, message: Any) -> None:
        if isinstance(message, Wants):
            self.wants = message
        elif isinstance(message, Armed):
            self.armed = message.on


def pull_rtstream(stop: Any, outbox: Any, inbox: Any, config: IngestConfig, clock: Clock) -> None:
    """The media worker's entry point: pull one RTStream until ``stop`` is set (its URL is checked against the
    egress allowlist before every connection)."""
    SourcePull(config, outbox, Inbox(inbox, stop), stop, clock).run()


class SourcePull:
    """One pull session of one RTStream, inside its worker process."""

    def __init__(self, config: IngestConfig, outbox: Any, inbox: Inbox, stop: Any, clock: Clock) -> None:
        import numpy as np

        self.config = config
        self._outbox = outbox
        self._inbox = inbox
        self._stopping = stop
        self._clock = clock
        self.packets = 0
        self.decode_errors = 0
        self.connections = 0
        self._counted_at = 0.0
        self._writer: SegmentWriter | None = None
        # Per connection: audio waiting to be cut into 30 ms levels, and when the next frame is sampled.
        self._audio_buffer = np.zeros(0, dtype=np.float32)
        self._audio_start: float | None = None
        self._next_sample = 0.0
        if config.store and config.recording is not None:
            self._writer = SegmentWriter(
                config.directory, config.recording, config.first_sequence, config.segment_s, self._emit_segment
            )

    def _post(self, signal: IngestSignal) -> None:
        self._outbox.put(signal)

    def _emit_segment(self, segment: Segment) -> None:
        self._count(now=True)  # a segment's event comes with the packet count up to its end
        self._post(SegmentDone(segment))

    def _count(self, *, now: bool = False) -> None:
        t = self._clock.monotonic()
        if now or t - self._counted_at >= COUNTERS_EVERY_S:
            self._counted_at = t
            self._post(PullCounters(self.packets, self.connections, self.decode_errors))

    def run(self) -> None:
        import av

        cfg = self.config
        backoff = cfg.reconnect_initial_s
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            self._inbox.poll()
            # Names are resolved and checked again before every connection (no DNS rebinding).
            check = check_source(cfg.url, cfg.egress_networks, cfg.egress_hosts)
            if check.refusal is not None:
                self._post(SourceDown(check.refusal, attempt, backoff))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            guard = self._redirect_guard(check.url)
            try:
                container = av.open(
                    guard.url if guard is not None else check.url,
                    options={
                        "rtsp_transport": "tcp",
                        "analyzeduration": str(round(PROBE_S * 1_000_000)),
                        "probesize": "500000",
                    },
                    timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
                )
            except Exception as exc:  # every open failure means "source down": refused, garbage, timeout
                refused = guard.refusal if guard is not None else None
                if guard is not None:
                    guard.close()
                self._post(SourceDown(refused or _reason(exc), attempt, backoff))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            self.connections += 1
            self._count(now=True)
            reason = "source ended the stream"
            try:
                self._pump(container)
            except Exception as exc:
                reason = _reason(exc)
            finally:
                if self._writer is not None:
                    self._writer.close()
                    self._writer.discontinuity = True
                try:
                    container.close()
                except Exception as exc:
                    log.debug("closing the source failed: %s", exc)
                if guard is not None:
                    reason = guard.refusal or reason
                    guard.close()
            self._count(now=True)
            if self._stopping.is_set():
                break
            attempt = 0
            backoff = cfg.reconnect_initial_s
            self._post(SourceDown(reason, 1, backoff))
            self._stopping.wait(backoff)
        if self._writer is not None:
            self._writer.close()

    def _redirect_guard(self, url: str) -> RedirectGuard | None:
        """For rtsp://, the relay that refuses a redirect outside the allowlist (FFmpeg would follow it)."""
        if urlsplit(url).scheme.lower() != "rtsp":
            return None
        cfg = self.config
        return RedirectGuard(
            url, lambda location: check_source(location, cfg.egress_networks, cfg.egress_hosts).refusal
        )

    def _pump(self, container: Any) -> None:
        import av
        import numpy as np

        cfg = self.config
        video = next((s for s in container.streams if s.type == "video"), None)
        audio = next((s for s in container.streams if s.type == "audio"), None)
        if video is None and audio is None:
            raise ValueError("the source has neither video nor audio")
        codecs = {s.type: s.codec_context.name for s in (video, audio) if s is not None}
        self._post(SourceUp(codecs))
        templates: dict[int, Any] = {}
        if video is not None and "video" in cfg.media_types and video.codec_context.name in RECORDABLE_VIDEO:
            templates[video.index] = video
        if audio is not None and "audio" in cfg.media_types and audio.codec_context.name in RECORDABLE_AUDIO:
            templates[audio.index] = audio
        cut_index = video.index if video is not None and video.index in templates else next(iter(templates), -1)
        transcode = (
            self._writer is not None
            and audio is not None
            and "audio" in cfg.media_types
            and audio.index not in templates
            and audio.codec_context.name not in RECORDABLE_AUDIO
        )
        if self._writer is not None:
            rate = audio.codec_context.sample_rate if transcode and audio is not None else None
            self._writer.transcode_rate = (rate or 8000) if transcode else None
            self._writer.audio_cuts = transcode and cut_index == -1
            self._writer._templates = templates
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE) if audio is not None else None
        self._audio_buffer = np.zeros(0, dtype=np.float32)
        self._audio_start = None
        self._next_sample = 0.0
        timing = CaptureTiming()
        sender_doubted = False
        pending: deque[tuple[Any, float]] = deque()
        media = _Media(video, audio, resampler, templates, cut_index, transcode)
        wanted = [s for s in (video, audio) if s is not None]
        try:
            for packet in container.demux(wanted):
                if self._stopping.is_set():
                    return
                if packet.dts is None or packet.time_base is None:
                    continue
                self._inbox.poll()
                if self._inbox.armed:
                    # The parent decides (and records fault.applied); a stall is the parent answering late.
                    match self._inbox.verdict(self._outbox):
                        case Send(corrupt=True):
                            packet = self._corrupted(packet)
                        case Send():
                            pass
                        case Skip():
                            continue
                        case Close() | Abort():
                            # A pulled rtsp/rtmp source has no close code: a close rule cuts it like a disconnect.
                            raise SourceDisconnected("a fault rule disconnected the source")
                self.packets += 1
                self._count()
                media_s = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
                timing.arrived(media_s, self._clock.now())
                realtime = None if timing.sender or sender_doubted else container.start_time_realtime
                if realtime:  # microseconds; set once an RTCP sender report has come
                    sender_doubted = not timing.sender_clock(realtime / 1_000_000)
                pending.append((packet, media_s))
                # A packet is handled once the demuxer's probe burst behind it has been seen (see CaptureTiming).
                while pending and timing.settled(pending[0][1]):
                    self._handle(*pending.popleft(), timing, media)
        finally:
            while pending:  # the last packets before an outage or a stop are recorded too
                self._handle(*pending.popleft(), timing, media)

    def _handle(self, packet: Any, media_s: float, timing: CaptureTiming, m: _Media) -> None:
        """Sample, decode and record one packet at its capture time."""
        import numpy as np

        cfg = self.config
        t = timing.wall(media_s)
        index = packet.stream.index
        if m.video is not None and index == m.video.index:
            if self._inbox.wants.frames and "video" in cfg.media_types:
                for frame in self._decode(packet):
                    frame_t = t if frame.pts is None else timing.wall(float(frame.pts * frame.time_base))
                    if frame_t >= self._next_sample:
                        self._next_sample = frame_t + 1.0 / max(1, cfg.sample_rate)
                        stamp_source = None
                        if frame.width > ANALYSIS_MAX_WIDTH:
                            # Large camera frames are analysed at a reduced size (swscale is cheap);
                            # the frame stamp has fixed-size cells, so it is read from full-size luma.
                            if frame.format.name in ("yuv420p", "yuvj420p", "gray"):
                                stamp_source = frame.to_ndarray()
                            height = round(frame.height * ANALYSIS_MAX_WIDTH / frame.width / 2) * 2
                            frame = frame.reformat(width=ANALYSIS_MAX_WIDTH, height=height)
                        rgb = frame.to_ndarray(format="rgb24")
                        self._post(FrameSampled(analyse_frame(rgb, frame_t, stamp_source=stamp_source), rgb))
        elif m.audio is not None and m.resampler is not None and index == m.audio.index:
            vad = self._inbox.wants.audio and "audio" in cfg.media_types
            frames: list[Any] = []
            if vad or m.transcode:
                frames = self._decode(packet)
                if m.transcode and self._writer is not None:
                    for frame in frames:
                        frame_s = media_s if frame.pts is None else float(frame.pts * frame.time_base)
                        self._writer.write_audio_frame(frame, timing.wall(frame_s), frame_s)
            if vad:
                for frame in frames:
                    for mono in m.resampler.resample(frame):
                        if self._audio_start is None:
                            self._audio_start = t
                        self._audio_buffer = np.concatenate([self._audio_buffer, mono.to_ndarray().reshape(-1)])
                # Hand over whole 30 ms frames, about twice a second.
                if self._audio_start is not None and len(self._audio_buffer) >= AUDIO_RATE // 2:
                    n = len(self._audio_buffer) // 480 * 480
                    chunk = self._audio_buffer[:n]
                    self._post(
                        AudioLevels(self._audio_start, rms_frames(chunk, AUDIO_RATE), spectral_flux(chunk, AUDIO_RATE))
                    )
                    self._audio_start += n / AUDIO_RATE
                    self._audio_buffer = self._audio_buffer[n:]
        # Muxing rebinds the packet to the output stream, so it comes after decoding.
        if self._writer is not None and index in m.templates:
            self._writer.write(packet, t, m.templates, m.cut_index)

    def _decode(self, packet: Any) -> list[Any]:
        import av

        try:
            return list(packet.decode())
        except (av.FFmpegError, ValueError):
            self.decode_errors += 1
            return []

    def _corrupted(self, packet: Any) -> Any:
        import av

        damaged = av.Packet(corrupt_payload(bytes(packet)))
        damaged.pts = packet.pts
        damaged.dts = packet.dts
        damaged.time_base = packet.time_base or Fraction(1, 1000)
        damaged.stream = packet.stream
        return damaged


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
