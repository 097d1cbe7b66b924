"""SignalWire client versions other than the test extra's signalwire-sdk 3.0.2, each as the device page shows it.

- ``signalwire`` 2.x, the most-installed SignalWire package (a Twilio 6 client underneath): lists, fetches and
  pages conferences and participants over HTTPS, and its RequestValidator checks our signed callbacks.
- the newest ``signalwire-sdk``: no Compatibility API any more, and plain HTTP to a loopback host.

Both install the import package ``signalwire``, like the test extra's signalwire-sdk 3.0.2, so each runs in a
throwaway venv built on first use and cached in the temp directory (skipped, saying why, only when the package
index cannot be reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest

from clients.signalwire import MediaStreamReceiver, SignalWireClient
from emulators.kit.tls import ensure_dev_certs

pytestmark = pytest.mark.interop

SIGNALWIRE_2 = "signalwire==2.1.1"
NEWEST_SDK = "signalwire-sdk==3.7.5"  # the newest release when this was written
_DEV_CERTS = ensure_dev_certs()
RECEIVER_TLS = {"certfile": _DEV_CERTS.cert, "keyfile": _DEV_CERTS.key}
CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"
PARTICIPANTS = {"3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e", "5d2f8b0a-3e5c-4b7d-9e1f-2a4b6c8d0e3f",
                "7e3a9c1b-4f6d-4c8e-8f2a-3b5c7d9e1f4a"}
UNREACHABLE = ("NewConnectionError", "Failed to establish", "Temporary failure in name resolution",
               "No matching distribution", "Could not find a version", "Network is unreachable")

# Runs inside the 2.x venv: the inputs as a JSON argument, the dev CA in REQUESTS_CA_BUNDLE.
SIGNALWIRE_2_SCRIPT = r"""
import json, os, sys
from signalwire.rest import Client
from signalwire.request_validator import RequestValidator

args = json.loads(sys.argv[1])
client = Client(args["project"], args["token"], signalwire_space_url=args["space_url"])
# Twilio 6's HTTP client sends through its own requests Session without the environment's CA settings,
# so a private CA goes on that session.
client.http_client.session.verify = os.environ["REQUESTS_CA_BUNDLE"]
pages, paged = 0, []
page = client.conferences.page(page_size=1)
while page is not None:
    pages += 1
    paged += [c.sid for c in page]
    page = page.next_page()
conference = client.conferences(args["conference"])
out = {
    "pages": pages,
    "paged": paged,
    "listed": [c.sid for c in client.conferences.list(page_size=1)],
    "fetched": conference.fetch().friendly_name,
    "participants": [p.call_sid for p in conference.participants.list(page_size=1)],
    "participant": conference.participants(args["call"]).fetch().call_sid,
}
validator = RequestValidator(args["token"])
signed = args["signed"]
out["valid"] = validator.validate(signed["url"], signed["params"], signed["signature"])
tampered = dict(signed["params"], StreamEvent="stream-stopped")
out["tampered_valid"] = validator.validate(signed["url"], tampered, signed["signature"])
print(json.dumps(out))
"""


# Runs inside the newest SDK's venv: project, token and the emulator's plain HTTP host as arguments.
NEWEST_SDK_SCRIPT = r"""
import json, sys
from signalwire.rest import RestClient, SignalWireRestError

client = RestClient(sys.argv[1], sys.argv[2], host=sys.argv[3])
out = {"has_compat": hasattr(client, "compat")}
try:
    client.addresses.list()
except SignalWireRestError as exc:
    out.update(status=exc.status_code, body=exc.body, url=exc.url)
print(json.dumps(out))
"""


def _venv(package: str) -> Path:
    """The cached venv with ``package``; built once, under a lock so parallel workers share it."""
    root = Path(tempfile.gettempdir()) / f"benchtwin-venv-{package.replace('==', '-')}"
    python = root / "bin" / "python"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = root / "installed.txt"
        if marker.exists() and marker.read_text() == package and python.exists():
            return python
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", package],
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            if any(sign in output for sign in UNREACHABLE):
                reason = f"cannot install {package} into a throwaway venv (package index unreachable)"
                print(reason, output[-500:], file=sys.stderr)
                pytest.skip(reason)
            pytest.fail(f"pip install {package} failed:\n{output[-3000:]}")
        marker.write_text(package)
        return python


@pytest.fixture(scope="module")
def signalwire2() -> Path:
    return _venv(SIGNALWIRE_2)


@pytest.fixture(scope="module")
def newest_sdk() -> Path:
    return _venv(NEWEST_SDK)


async def _run(python: Path, script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    process = await asyncio.create_subprocess_exec(
        str(python), "-c", script, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", **(env or {})})
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return json.loads(stdout)


async def _signed_callback(emulator) -> dict:
    """One real stream-started callback, as a customer's endpoint receives it."""
    from aiohttp import web

    arrived: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def handle(request: web.Request) -> web.Response:
        if not arrived.done():
            arrived.set_result({"url": str(request.url), "params": dict(await request.post()),
                                "signature": request.headers["X-SignalWire-Signature"]})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/status", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    creds = emulator.credentials()
    try:
        async with MediaStreamReceiver(**RECEIVER_TLS) as receiver, SignalWireClient(
            creds["project"], creds["token"], creds["space_url"], ca_bundle=creds["ca_bundle"]
        ) as client:
            created = await client.start_stream(
                CONFERENCE, Url=receiver.url, StatusCallback=f"http://127.0.0.1:{runner.addresses[0][1]}/status")
            async with asyncio.timeout(10):
                signed = await arrived
            with contextlib.suppress(Exception):
                await client.stop_stream(CONFERENCE, created["sid"])
        return signed
    finally:
        await runner.cleanup()


async def test_signalwire_2_lists_fetches_and_pages_over_https_and_validates_our_callbacks(signalwire2,
                                                                                           emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    args = {"project": creds["project"], "token": creds["token"], "conference": CONFERENCE,
            "call": sorted(PARTICIPANTS)[0], "signed": await _signed_callback(emulator),
            # An IP host: the package's own URL parsing reads "localhost:port" as a scheme and a path.
            "space_url": creds["space_url"]}
    out = await _run(signalwire2, SIGNALWIRE_2_SCRIPT, json.dumps(args), env={"REQUESTS_CA_BUNDLE": creds["ca_bundle"]})
    assert out["pages"] == 2 and len(set(out["paged"])) == 2 and out["listed"] == out["paged"]
    assert CONFERENCE in out["paged"]
    assert out["fetched"] == "Weekly product sync"
    assert sorted(out["participants"]) == sorted(PARTICIPANTS)
    assert out["participant"] == sorted(PARTICIPANTS)[0]
    assert out["valid"] is True and out["tampered_valid"] is False


async def test_the_newest_sdk_has_no_compat_api_and_reaches_the_plain_http_listener(newest_sdk, emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    host = f"127.0.0.1:{emulator.ports['rest']}"  # a loopback host: the SDK speaks plain HTTP to it
    out = await _run(newest_sdk, NEWEST_SDK_SCRIPT, creds["project"], creds["token"], host)
    assert out["has_compat"] is False
    # Its APIs beyond the Compatibility API are not emulated: the vendor's JSON 404, over plain HTTP.
    assert out["url"].startswith(f"http://{host}/") and out["status"] == 404
    assert out["body"]["code"] == 20404 and out["body"]["status"] == 404
