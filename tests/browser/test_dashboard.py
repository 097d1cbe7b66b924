"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): every emulator on one page, previews
that move and carry the decoded frame stamp, a fault added from the form reaching the control plane and the event
tail, a scenario control pressed from its generated form, and the keyboard reaching the forms. Screenshots of each
run go to .ci/artifacts/."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from emulators.registry import available

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".ci" / "artifacts"
TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.xdist_group("browser"),
    pytest.mark.timeout(150),
]


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def running_up(folder: Path, lines: list[str], *args: str) -> Iterator[dict[str, Any]]:
    """`benchtwin up` with these config lines (every port free) and flags, until the block ends; its endpoints
    document."""
    config, endpoints = folder / "ports.toml", folder / "endpoints.json"
    lines = ["dashboard_port = 0", *lines]
    for name, cls in available().items():
        lines += [f"[{name}]", *(f"{setting} = 0" for setting in cls.port_settings)]
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "emulators", "up", "--config", str(config),
                             "--endpoints-file", str(endpoints), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not endpoints.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "benchtwin up wrote no endpoints file within 60 s"
            time.sleep(0.05)  # polling for a file another process writes
        yield json.loads(endpoints.read_text())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def launch(playwright: Any) -> Any:
    # Playwright gives every launch a fresh, empty profile of its own.
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`benchtwin up` with all five emulators and the dashboard, every port free; its endpoints document."""
    with running_up(tmp_path_factory.mktemp("dashboard"), []) as document:
        yield document


@pytest.fixture(scope="module")
def page(bench: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 800})
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(bench["dashboard"]["url"])
            yield tab
        finally:
            browser.close()


class Viewer(threading.Thread):
    """A Misty video WebSocket viewer (the robot renders only while somebody watches)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.frames = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from websockets.sync.client import connect

        with connect(self.url, max_size=None) as ws:
            while not self.stop.is_set():
                ws.recv(timeout=10)
                self.frames += 1


class Receiver(threading.Thread):
    """A WebSocket receiver for a Recall bot's video (any server would do; this one counts messages)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        from websockets.sync.server import serve

        self.messages = 0
        self.server = serve(self._handle, "127.0.0.1", 0, max_size=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/video"

    def _handle(self, connection: Any) -> None:
        for _ in connection:
            self.messages += 1

    def run(self) -> None:
        self.server.serve_forever()


def shot(page: Any, selector: str, name: str) -> np.ndarray:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = page.locator(selector).screenshot(path=str(ARTIFACTS / name))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_every_emulator_has_its_section_with_endpoints_and_credentials(page: Any, bench: dict[str, Any]) -> None:
    for name in available():
        section = page.locator(f"#emulator-{name}")
        section.locator(".summary").filter(has_text="tasks").wait_for()
        assert section.locator("dl.endpoints dd", has_text=bench[name]["rest"]).count() >= 1
    recall = page.locator("#emulator-recall dl.endpoints")
    assert recall.locator("dd", has_text=bench["recall"]["credentials"]["api_key"]).count() >= 1
    assert recall.get_by_role("button", name="Copy recall api_key").count() == 1


def test_misty_and_recall_previews_move_and_show_their_decoded_stamps(page: Any, bench: dict[str, Any]) -> None:
    misty, recall = bench["misty"]["rest"], bench["recall"]["rest"]
    port = free_port()
    assert post(f"{misty}/api/videostreaming/start", {"Port": port})["status"] == "Success"
    viewer = Viewer(f"ws://127.0.0.1:{port}")
    viewer.start()
    receiver = Receiver()
    receiver.start()
    meeting = "https://meet.google.com/das-hboa-rdx"
    post(f"{recall}/_emulator/scenario/load_scenario", {"scenario": {
        "name": "dashboard", "meeting_urls": [meeting], "duration_s": 600,
        "participants": [{"id": 100, "is_host": True}, {"id": 200}]}})
    auth = {"Authorization": bench["recall"]["credentials"]["authorization"]}
    post(f"{recall}/api/v1/bot/", {"meeting_url": meeting, "recording_mode": "gallery_view",
                                   "real_time_media": {"websocket_video_destination_url": receiver.url}}, auth)
    try:
        figure = page.locator("#emulator-misty figure").filter(has_text="frame").first
        figure.wait_for()
        page.wait_for_function(
            "() => { const i = document.querySelector('#emulator-misty figure img');"
            " return i && i.complete && i.naturalWidth > 0; }")
        first = shot(page, "#emulator-misty figure img", "misty-preview-1.png")
        deadline = time.monotonic() + 15
        while True:  # the next preview frames, until one differs in pixels (the scene moves, the stamp counts)
            caption = figure.locator("figcaption").inner_text()
            page.wait_for_function(
                "caption => document.querySelector('#emulator-misty figcaption').textContent !== caption",
                arg=caption)
            second = shot(page, "#emulator-misty figure img", "misty-preview-2.png")
            if (first.shape == second.shape and np.abs(first - second).mean() > 0.05) or time.monotonic() > deadline:
                break
        assert first.shape == second.shape and np.abs(first - second).mean() > 0.05
        assert "lateness" in page.locator("#emulator-misty figcaption").first.inner_text()
        tile = page.locator("#emulator-recall figure").filter(has_text="participant/")
        tile.first.wait_for()
        assert "frame" in tile.first.locator("figcaption").inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=False)
    finally:
        viewer.stop.set()
        receiver.server.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_drop_fault_added_from_the_form_reaches_the_control_plane_and_the_event_tail(
    page: Any, bench: dict[str, Any]
) -> None:
    depthcam = bench["depthcam"]["rest"]
    form = page.locator("#emulator-depthcam .fault-form")
    form.locator("select[name=type]").select_option("drop")
    form.locator("select[name=stream]").select_option("*")
    form.locator("input[name=count]").fill("3")
    form.get_by_role("button", name="Add rule").click()
    form.locator("output.ok").wait_for()
    rules = get(f"{depthcam}/_emulator/faults")["faults"]
    assert [(r["match"], r["action"]["type"], r.get("count")) for r in rules] == [({"stream": "*"}, "drop", 3)]
    page.locator("#events li", has_text="fault.added").filter(has_text="depthcam").first.wait_for()
    page.locator("#emulator-depthcam .faults tbody tr").first.wait_for()
    page.locator("#emulator-depthcam .faults").get_by_role("button", name=f"Remove fault {rules[0]['id']}").click()
    page.wait_for_function("() => !document.querySelector('#emulator-depthcam .faults tbody tr')")
    assert get(f"{depthcam}/_emulator/faults")["faults"] == []


def test_a_scenario_control_pressed_on_the_page_has_its_effect(page: Any, bench: dict[str, Any]) -> None:
    form = page.locator("#emulator-misty form.scenario-form[data-control=reboot]")
    form.get_by_role("button", name="Run reboot").click()
    form.locator("output.ok").wait_for()
    page.locator("#events li", has_text="robot.reboot").first.wait_for()
    kinds = [e["kind"] for e in get(f"{bench['misty']['rest']}/_emulator/events?kind=robot")["events"]]
    assert "robot.reboot" in kinds


def test_the_keyboard_reaches_the_fault_form_and_the_page_refuses_other_origins(
    page: Any, bench: dict[str, Any]
) -> None:
    page.locator("#emulator-misty .reset").focus()
    for _ in range(60):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.name") == "type":
            break
    assert page.evaluate("document.activeElement.closest('form').className") == "fault-form"
    request = urllib.request.Request(f"{bench['dashboard']['url']}api/misty/_emulator/reset", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Origin": "http://attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_a_guarded_dashboard_asks_for_the_control_token_once_and_lists_every_fleet_member(
    tmp_path: Path, page: Any
) -> None:
    token = "browser-test-control-token-0123"
    with running_up(tmp_path, [], "--only", "misty", "--fleet", "misty=3", "--processes", "2",
                    "--control-token", token) as document:
        context = page.context.browser.new_context(viewport={"width": 1280, "height": 800})  # its own cookies
        try:
            tab = context.new_page()
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(document["dashboard"]["url"])
            tab.fill("#token", "not the token")
            tab.press("#token", "Enter")
            tab.wait_for_function("document.querySelector('#token-form label').textContent.includes('does not match')")
            tab.fill("#token", token)
            tab.press("#token", "Enter")
            tab.wait_for_selector("#emulator-misty-3")
            names = tab.eval_on_selector_all("#nav a", "links => links.map(a => a.textContent)")
            assert names == ["misty-1", "misty-2", "misty-3"]
            assert tab.text_content("#emulator-misty-2 h2") == "misty-2 (misty)"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "dashboard-guarded-fleet.png"))
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["benchtwin_dashboard"]["httpOnly"] and cookies["benchtwin_dashboard"]["value"] != token
        finally:
            context.close()
        with pytest.raises(urllib.error.HTTPError) as refused:  # without the token, nothing of the API
            urllib.request.urlopen(f"{document['dashboard']['url']}api/endpoints", timeout=10)
        assert refused.value.code == 401
