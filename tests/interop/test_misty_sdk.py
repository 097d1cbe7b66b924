"""Interop with the official Misty-SDK 0.1.1 from PyPI (``mistyPy``), a client nobody here wrote.

Its constructor first probes http://127.0.0.1:80/api/help and keeps talking to port 80 if anything answers
there, so these tests insist that nothing listens on 127.0.0.1:80.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from emulators.pytest_plugin import start_emulator

pytestmark = pytest.mark.interop

mistyPy = pytest.importorskip("mistyPy.Robot", reason="Misty-SDK==0.1.1 is not installed (pip package Misty-SDK)")
websocket = pytest.importorskip("websocket", reason="websocket-client (a Misty-SDK dependency) is not installed")
from mistyPy.EventFilters import EventFilters  # noqa: E402


def _port_80_is_free() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 80)) != 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def robot():
    if not _port_80_is_free():
        pytest.skip("something listens on 127.0.0.1:80; Misty-SDK 0.1.1 would talk to it instead of the emulator")
    with start_emulator("misty") as target:
        host_port = target.url.removeprefix("http://")
        sdk_robot = mistyPy.Robot(host_port)
        assert sdk_robot.ip == host_port  # the constructor fell back from :80 to the emulator
        yield sdk_robot, target


def test_the_sdk_toggles_services_and_starts_and_stops_av_streaming(robot):
    misty, _ = robot
    assert misty.EnableAvStreamingService().status_code == 200
    assert misty.GetAvStreamingServiceEnabled().json() == {"result": True, "status": "Success"}
    assert misty.CameraServiceEnabled().json()["result"] is False
    port = _free_port()
    started = misty.StartAvStreaming(f"rtspd:{port}", 320, 240, 10, 256000, 32000, 16000)
    assert started.status_code == 200, started.text
    second = misty.StartAvStreaming(f"rtspd:{port}", 320, 240, 10, 256000, 32000, 16000)
    assert second.status_code == 400 and "already active" in second.json()["error"]
    assert misty.StopAvStreaming().json() == {"result": True, "status": "Success"}
    assert misty.EnableCameraService().status_code == 200
    assert misty.CameraServiceEnabled().json()["result"] is True


def test_the_sdk_help_and_information_calls(robot):
    misty, _ = robot
    help_result = misty.GetHelp().json()["result"]
    assert any(c["apiCommand"]["name"] == "StartAvStreaming" for c in help_result["post"])
    assert misty.GetDeviceInformation().json()["result"]["robotVersion"]
    assert misty.GetBatteryLevel().json()["result"]["sensorId"] == "charge"
    assert misty.GetCameraDetails().json()["result"]["width"] == 640.0


def test_video_streaming_through_the_sdks_generic_post(robot):
    misty, _ = robot
    misty.EnableCameraService()
    port = _free_port()
    resp = misty.PostRequest(
        "videostreaming/start",
        json={"port": port, "rotation": 90, "width": None, "height": None, "quality": 50, "overlay": None},
    )
    assert resp.status_code == 200, resp.text
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}", timeout=5)
    try:
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and data[:2] == b"\xff\xd8"
    finally:
        ws.close()
    assert misty.PostRequest("videostreaming/stop").status_code == 200


def test_register_event_without_keep_alive_gets_one_event_then_unsubscribes(robot):
    misty, _ = robot
    received: list[dict] = []
    got = threading.Event()

    def on_event(data: dict) -> None:
        received.append(data)
        got.set()

    event = misty.RegisterEvent("battery", "BatteryCharge", keep_alive=False, callback_function=on_event)
    assert got.wait(5), "no BatteryCharge event within 5 s"
    event.thread.join(5)
    assert not event.is_active
    assert len(received) == 1 and received[0]["message"]["sensorId"] == "charge"
    assert received[0]["eventName"] == event.event_name


def test_register_event_with_keep_alive_and_a_condition_list(robot):
    misty, _ = robot
    received: list[dict] = []
    enough = threading.Event()

    def on_event(data: dict) -> None:
        received.append(data)
        if len(received) >= 3:
            enough.set()

    event = misty.RegisterEvent(
        "front", "TimeOfFlight", condition=[EventFilters.TimeOfFlightPosition.FrontCenter], debounce=0, keep_alive=True,
        callback_function=on_event,
    )
    try:
        assert enough.wait(5)
    finally:
        misty.UnregisterEvent("front")
        event.thread.join(5)
    assert {e["message"]["sensorPosition"] for e in received} == {"Center"}


def test_the_sdk_generator_parses_help_and_websockets_without_rewriting_anything(robot):
    # RobotGenerator(ip) would rewrite the installed package; its read-only half is run on a bare instance.
    from mistyPy.GenerateRobot import RobotGenerator

    _, target = robot
    generator = object.__new__(RobotGenerator)
    generator.ip = target.url.removeprefix("http://")
    commands = {c.name: c for c in _generated_commands(generator)}
    start = commands["StartVideoStreaming"]
    assert (start.verb, start.endpoint) == ("post", "videostreaming/start")
    assert [(a.name, a.value_type, a.nullable) for a in sorted(start.arguments)][:2] == [
        ("port", "int", True), ("rotation", "int", True)]
    assert next(a.value_type for a in sorted(commands["StartAvStreaming"].arguments)) == "str"
    events = generator.generate_events()
    # The firmware's 34 classes (GitHub SDK's Events.py); the two older-firmware classes are registrable only.
    assert "TimeOfFlight" in events and len(events) == 34


# ----- the generator reproduces the SDK it generated -----------------------------------------------------------
SDK_COMMANDS = Path(__file__).with_name("test_misty_sdk_commands.txt")


def _sdk_method_name(name: str) -> str:
    """The GitHub SDK's snake_case name of a firmware command (TransitionLED -> transition_led)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _generated_commands(generator):
    """The 0.1.1 generator's commands; its type table predates ``Object`` (the GitHub SDK added it), so the
    one command with an Object argument is read with that argument's type left as the help names it."""
    from mistyPy.GenerateRobot import Argument, Command

    try:
        return generator.generate_commands()
    except KeyError as exc:
        assert exc.args == ("Object",)
    help_result = generator.get_request("help").json()["result"]
    out = []
    for verb, commands in help_result.items():
        for command in commands:
            api = command["apiCommand"]
            plain = {k: v for k, v in api["arguments"].items() if ".Object," not in v["getValueType"]}
            parsed = Command(api["name"], verb, command["endpoint"], plain, api["apiCommandGroup"])
            for name, arg in api["arguments"].items():
                if name not in plain:
                    parsed.arguments.append(Argument(name, "object", False, arg["ordinalNumber"]))
            out.append(parsed)
    return out


def test_the_sdk_generator_reproduces_the_sdks_own_command_list(robot):
    from mistyPy.GenerateRobot import RobotGenerator

    _, target = robot
    generator = object.__new__(RobotGenerator)
    generator.ip = target.url.removeprefix("http://")
    generated = [
        " ".join(
            [_sdk_method_name(c.name), c.verb, c.endpoint]
            + [f"{a.name}:{a.value_type}" for a in sorted(c.arguments)]
        )
        for c in _generated_commands(generator)
    ]
    expected = [line for line in SDK_COMMANDS.read_text().splitlines() if line and not line.startswith("#")]
    assert len(generated) == len(expected) == 190
    assert generated == expected
    # Positional calls bind as in the SDK: capture_speech(overwriteExisting, silenceTimeout, maxSpeechLength, ...).
    capture = next(line for line in generated if line.startswith("capture_speech "))
    assert capture.split()[3:6] == ["overwriteExisting:bool", "silenceTimeout:int", "maxSpeechLength:int"]


def test_the_0_1_1_generator_stops_at_the_object_argument_as_it_would_on_the_robot(robot):
    from mistyPy.GenerateRobot import RobotGenerator

    _, target = robot
    generator = object.__new__(RobotGenerator)
    generator.ip = target.url.removeprefix("http://")
    with pytest.raises(KeyError, match="Object"):
        generator.generate_commands()
