"""`benchtwin up` imports what the emulators it starts need, and heavy libraries only at their first use.

Each check runs in a fresh interpreter and reads ``sys.modules``; nothing here is timed.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from emulators.kit.tls import _der_not_after, ensure_dev_certs

# Libraries no emulator needs until a stream, a scrape, a preview or a request body asks for them.
LAZY = ("av", "PIL", "prometheus_client", "cryptography", "jsonschema", "schemathesis")


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_importing_the_cli_loads_no_device_and_no_heavy_library() -> None:
    loaded = modules_after("import emulators.cli")
    assert not top_level(loaded) & {*LAZY, "numpy", "faker", "pydantic"}
    assert not {m for m in loaded if m.startswith("emulators.") and m.endswith((".api", ".service", ".model"))}
    assert not {m for m in loaded if m.startswith(("emulators.soak.", "emulators.dashboard.", "emulators.bench."))}


def test_starting_only_misty_loads_no_other_device_and_no_media_library(tmp_path: Path) -> None:
    ensure_dev_certs(tmp_path)  # made here: creating certificates is the one start-up use of cryptography
    code = f"""
import asyncio
from emulators.app import start_all
from emulators.config import Config, apply_overrides

async def main():
    config = apply_overrides(Config(), {{"certs_dir": {str(tmp_path)!r}, "misty": {{"port": 0}}}})
    emulators = await start_all(["misty"], config)
    for emulator in emulators:
        await emulator.aclose()

asyncio.run(main())
"""
    loaded = modules_after(code)
    assert "emulators.misty.api" in loaded
    assert not top_level(loaded) & {*LAZY, "faker", "pydantic"}
    # The AV stream's RTSP server and push muxer come with the first AV stream.
    assert not loaded & {"emulators.misty.av", "emulators.kit.rtsp"}
    # Their device and settings modules are read for the config; their API, service and media are not loaded.
    others = [f"emulators.{d}.{part}" for d in ("recall", "videodb", "depthcam", "signalwire")
              for part in ("api", "service", "media")]
    assert not loaded & set(others)


def test_the_certificate_expiry_read_from_der_is_what_cryptography_reads(tmp_path: Path) -> None:
    certs = ensure_dev_certs(tmp_path)
    for path in (certs.ca, certs.cert):
        pem = path.read_text()
        expected = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
        assert _der_not_after(ssl.PEM_cert_to_DER_cert(pem)) == expected
        assert expected.tzinfo is not None and expected > dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("device", ["videodb", "recall"])
def test_starting_videodb_or_recall_loads_no_faker(device: str) -> None:
    code = f"""
import asyncio
from emulators.app import start_all
from emulators.config import Config, apply_overrides

async def main():
    emulators = await start_all([{device!r}], apply_overrides(Config(), {{{device!r}: {{"port": 0}}}}))
    for emulator in emulators:
        await emulator.aclose()

asyncio.run(main())
"""
    loaded = modules_after(code)
    assert f"emulators.{device}.api" in loaded
    # Faker comes with the first invented words: VideoDB's first speech, Recall's first use of a scenario.
    assert not top_level(loaded) & {*LAZY, "faker"}


def test_the_depth_camera_loads_pydantic_with_its_first_request_body_not_at_start() -> None:
    code = """
import asyncio, json, sys
import aiohttp
from emulators.app import start_all
from emulators.config import Config, apply_overrides

async def main():
    [camera] = await start_all(["depthcam"], apply_overrides(Config(), {"depthcam": {"port": 0}}))
    base = f"http://{camera.host}:{camera.ports['rest']}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/cameras/") as resp:
                mxid = (await resp.json())[0]["mxid"]
            async with session.get(f"{base}/cameras/{mxid}/streams/CAM_A/control") as resp:
                assert resp.status == 200, resp.status
            before = "pydantic" in sys.modules
            async with session.post(f"{base}/cameras/{mxid}/streams/CAM_A/control", json={"brightness": 99}) as resp:
                refused = await resp.json()
        print(json.dumps({"before": before, "after": "pydantic" in sys.modules, "status": resp.status,
                          "loc": refused["detail"][0]["loc"]}))
    finally:
        await camera.aclose()

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    # GETs (and their path checks) answer without the request models; the first body brings them, and is
    # validated by them as FastAPI would: brightness is -10..10.
    assert seen == {"before": False, "after": True, "status": 422, "loc": ["body", "brightness"]}
