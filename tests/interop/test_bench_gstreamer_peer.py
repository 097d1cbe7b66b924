"""The misty-rtsp benchmark's peer: GStreamer's RTSP server carries the robot's AAC track beside the stamped video
when asked (`--audio`), so the two servers are compared on the same content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from clients.stamp import StreamKind, read_stamp
from emulators.bench import peers
from emulators.bench.misty_rtsp import LAUNCHER, render_frames, write_tone
from emulators.bench.process import free_port

pytestmark = pytest.mark.interop

RATE = 44_100


def test_the_gstreamer_peer_serves_the_misty_tone_as_aac_beside_stamped_video(tmp_path: Path) -> None:
    gst = peers.gstreamer()
    if not gst.available:
        pytest.skip(gst.detail)
    frames, tone = tmp_path / "frames.i420", tmp_path / "tone.s16"
    render_frames(frames, 30)
    write_tone(tone, RATE)
    port = free_port()
    proc = subprocess.Popen([peers.SYSTEM_PYTHON, str(LAUNCHER), "--port", str(port), "--frames", str(frames),
                             "--width", "640", "--height", "480", "--fps", "30", "--audio", str(tone),
                             "--audio-rate", str(RATE), "--audio-bitrate", "128000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY"), proc.stderr.read() if proc.stderr and proc.poll() is not None else line
        samples: list[np.ndarray] = []
        stamps = []
        with av.open(line.split()[1], options={"rtsp_transport": "tcp"}, timeout=(10.0, 10.0)) as container:
            audio = container.streams.audio[0]
            assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("aac", RATE)
            for packet in container.demux():
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        samples.append(frame.to_ndarray().reshape(-1))
                    else:
                        stamps.append(read_stamp(frame))
                if sum(len(s) for s in samples) >= RATE:
                    break
    finally:
        proc.terminate()
        proc.wait(10)
    pcm = np.concatenate(samples)[-RATE // 2 :].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    peak_hz = float(np.fft.rfftfreq(len(pcm), 1 / RATE)[int(np.argmax(spectrum))])
    assert abs(peak_hz - 440.0) < 5.0
    assert stamps and {s.stream_kind for s in stamps} == {StreamKind.MISTY_AV}
