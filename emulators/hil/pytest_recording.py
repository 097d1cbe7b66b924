"""`pytest --target DEVICE=URL --record CASSETTE`: the device fixtures talk to the target through a recording
proxy (on its own event loop in a thread), and each targeted device's cassette is written when the run ends."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from emulators.hil.cassette import Manifest, iso_time
from emulators.hil.session import RecordSession
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy


class ThreadedRecording:
    """One RecordSession in front of one target, run on a daemon thread's loop so sync tests can use it."""

    def __init__(self, device: str, target: str, out: Path) -> None:
        self.device = device
        self.out = out
        manifest = Manifest(device=device, target=target, recorded_at=iso_time(time.time()))
        self.session = RecordSession(device, target, manifest, egress=EgressPolicy(DEFAULT_ALLOWED), verify_tls=False)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"record-{device}", daemon=True)

    @property
    def url(self) -> str:
        return self.session.proxy.url

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.session.start(), self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> Path:
        try:
            asyncio.run_coroutine_threadsafe(self.session.aclose(), self.loop).result(timeout_s)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
            self.loop.close()
        return self.session.recorder.save(self.out)


def start_recordings(targets: dict[str, str], cassette: str) -> dict[str, ThreadedRecording]:
    """One recording per targeted device: at CASSETTE for one target, CASSETTE/<device> for several."""
    root = Path(cassette)
    recordings = {}
    for device, url in targets.items():
        out = root if len(targets) == 1 else root / device
        recording = ThreadedRecording(device, url, out)
        recording.start()
        recordings[device] = recording
    return recordings
