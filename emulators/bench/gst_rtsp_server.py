"""GStreamer's RTSP server (GstRtspServer, appsrc -> x264enc -> rtph264pay, and with --audio appsrc -> avenc_aac ->
rtpmp4gpay) serving stamped frames and, optionally, the same AAC track as the emulator.

The benchmark's peer for `misty-rtsp`. It runs with the distribution's python3 (python3-gi), which may lack
numpy, so the v1 frame stamp (layout defined in clients/stamp.py) is painted here with plain bytes into the
luma plane of pre-rendered I420 frames that the benchmark writes to a file. Usage:
    /usr/bin/python3 gst_rtsp_server.py --port P --frames FILE --width W --height H --fps F [--stream-id N]
        [--audio PCM --audio-rate R --audio-bitrate B]
With --audio, PCM is one period of signed 16-bit mono samples at R Hz, looped; each video frame is followed by
the samples up to that frame's end, as the emulator's producer does, and FFmpeg's AAC encoder (avenc_aac, the
emulator's too) encodes them at B bit/s.
It prints "READY rtsp://127.0.0.1:P/live" once the server is attached, and exits on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

STAMP_SYNC = 0xA55A
STAMP_VERSION = 1
STAMP_COLUMNS = 16
STAMP_ROWS = 8
MISTY_AV_KIND = 2  # StreamKind.MISTY_AV


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, init 0 (the stamp's checksum)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bytes(kind: int, stream_id: int, frame_index: int, capture_time_ms: int) -> bytes:
    """The 16 stamp bytes: sync, version/kind, stream id, frame index, capture ms, CRC over bytes 2..14."""
    value = STAMP_SYNC
    value = (value << 4) | STAMP_VERSION
    value = (value << 4) | kind
    value = (value << 16) | (stream_id & 0xFFFF)
    value = (value << 32) | (frame_index & 0xFFFFFFFF)
    value = (value << 48) | (capture_time_ms & 0xFFFFFFFFFFFF)
    body = value.to_bytes(15, "big")
    return body + bytes([crc8(body[2:15])])


def cell_size(width: int, height: int) -> int:
    return 8 * max(1, min(width, height) // 240)


def paint_luma(frame: bytearray, width: int, height: int, stamp: bytes) -> None:
    """Paint the stamp's 16x8 grid of black/white cells into the top-left of an I420 frame's Y plane."""
    cell = cell_size(width, height)
    bits = "".join(f"{b:08b}" for b in stamp)
    for row in range(STAMP_ROWS):
        line = b"".join((b"\xff" if bits[row * STAMP_COLUMNS + col] == "1" else b"\x00") * cell
                        for col in range(STAMP_COLUMNS))
        for y in range(row * cell, (row + 1) * cell):
            frame[y * width : y * width + len(line)] = line


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", required=True, help="raw I420 frames, back to back")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate-kbps", type=int, default=2000)
    parser.add_argument("--stream-id", type=int, default=1)
    parser.add_argument("--audio", help="raw S16LE mono samples, one period, looped")
    parser.add_argument("--audio-rate", type=int, default=44100)
    parser.add_argument("--audio-bitrate", type=int, default=128000)
    args = parser.parse_args(argv)

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    frame_size = args.width * args.height * 3 // 2
    with open(args.frames, "rb") as f:
        raw = f.read()
    frames = [raw[i : i + frame_size] for i in range(0, len(raw) - frame_size + 1, frame_size)]
    if not frames:
        print(f"no {args.width}x{args.height} I420 frame in {args.frames}", file=sys.stderr)
        return 2

    pcm = b""
    if args.audio:
        with open(args.audio, "rb") as f:
            pcm = f.read()
        if len(pcm) < 2:
            print(f"no samples in {args.audio}", file=sys.stderr)
            return 2
    caps = f"video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"
    # The same encoder settings as the emulator's kit encoder: libx264 ultrafast + zerolatency, baseline, 1 s GOP.
    launch = (
        f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} "
        f"! x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate_kbps} key-int-max={args.fps} "
        f"! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
    )
    if pcm:
        audio_caps = f"audio/x-raw,format=S16LE,layout=interleaved,rate={args.audio_rate},channels=1"
        launch += (f" appsrc name=asrc is-live=true format=time do-timestamp=true caps={audio_caps} ! audioconvert "
                   f"! avenc_aac bitrate={args.audio_bitrate} ! rtpmp4gpay name=pay1 pt=97")
    launch += " )"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)  # one pipeline (one encode) for every client, like the emulator
    server.get_mount_points().add_factory("/live", factory)

    stop = threading.Event()
    sources: list[object] = []

    def pump(appsrc: object, audiosrc: object | None) -> None:
        """Push frames on absolute deadlines, stamping each with the wall time it enters the pipeline, each
        followed by the audio samples up to its end."""
        period = 1.0 / args.fps
        start = time.monotonic()
        index = 0
        samples_sent = 0
        loop_samples = len(pcm) // 2
        while not stop.is_set():
            delay = start + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = bytearray(frames[index % len(frames)])
            paint_luma(frame, args.width, args.height,
                       stamp_bytes(MISTY_AV_KIND, args.stream_id, index, int(time.time() * 1000)))
            if appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(bytes(frame))) != Gst.FlowReturn.OK:
                return  # the media was torn down (no clients left)
            if audiosrc is not None:
                end = (index + 1) * args.audio_rate // args.fps
                chunk = bytearray()
                while samples_sent < end:
                    at = samples_sent % loop_samples
                    take = min(end - samples_sent, loop_samples - at)
                    chunk += pcm[at * 2 : (at + take) * 2]
                    samples_sent += take
                if audiosrc.emit("push-buffer", Gst.Buffer.new_wrapped(bytes(chunk))) != Gst.FlowReturn.OK:
                    return
            index += 1

    def on_configure(_factory: object, media: object) -> None:
        element = media.get_element()
        worker = threading.Thread(target=pump, args=(element.get_by_name("src"), element.get_by_name("asrc")),
                                  name="pump", daemon=True)
        sources.append(worker)
        worker.start()

    factory.connect("media-configure", on_configure)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()

    def quit_loop(*_: object) -> bool:
        stop.set()
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)
    print(f"READY rtsp://127.0.0.1:{args.port}/live", flush=True)
    loop.run()
    stop.set()
    for worker in sources:
        worker.join(timeout=2)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
