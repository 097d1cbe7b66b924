"""The videodb 0.5.1 SDK connects an RTStream whose source URL names its host (as a compose or Kubernetes
service name would): the emulator resolves it, admits it because every address is allowed, and records."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from rtmp_server import rtmp_server  # the shared nginx-rtmp helper next to this file

from emulators.config import Config
from emulators.pytest_plugin import start_emulator

videodb = pytest.importorskip("videodb")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)"),
]


def loopback_name() -> str:
    """This machine's own host name when it resolves to loopback only (as a service name would to a pod)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        pytest.skip(f"the host name {name!r} does not resolve here")
    if name.lower() == "localhost" or not all(a.startswith("127.") for a in addresses):
        pytest.skip(f"the host name {name!r} does not resolve to loopback only ({addresses})")
    return name


@contextlib.contextmanager
def push(url: str) -> Iterator[None]:
    proc = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
         "testsrc=size=320x240:rate=10:duration=30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
         "-pix_fmt", "yuv420p", "-f", "flv", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.kill()
        proc.wait(5)


def test_a_source_named_by_host_name_is_resolved_admitted_and_recorded() -> None:
    name = loopback_name()
    with rtmp_server() as rtmp, push(rtmp.url()), start_emulator("videodb", settings={"segment_s": 1.0}) as target:
        conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
        url = rtmp.url().replace("127.0.0.1", name)
        rts = conn.get_collection().connect_rtstream(url=url, name="Named source", store=True)
        assert rts.status == "connected"

        def recorded(event: object) -> bool:
            return getattr(event, "detail", {}).get("stream") == rts.id

        asyncio.run(target.emulator.events.wait_for("rtstream.segment", recorded, timeout=20))
        refused = [e for e in target.emulator.events.query(kind="ingest.retry") if "egress" in e.detail["reason"]]
        assert refused == []


def test_a_host_name_resolving_outside_egress_allow_is_a_400_naming_the_setting_and_the_addresses() -> None:
    name = loopback_name()
    addresses = ", ".join(dict.fromkeys(i[4][0] for i in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)))
    with start_emulator("videodb", config=Config(egress_allow=["127.0.0.2/32"])) as target:
        conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
        with pytest.raises(videodb.exceptions.InvalidRequestError) as refused:
            conn.get_collection().connect_rtstream(url=f"rtmp://{name}:1935/live/key", name="Outside")
        message = str(refused.value)
        assert f"'url' host '{name}' resolves to {addresses}" in message and "egress_allow" in message
        assert target.emulator.backend.streams == {}
