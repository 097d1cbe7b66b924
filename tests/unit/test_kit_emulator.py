"""The emulator base: control plane over real sockets, HTTP faults, owned tasks, reset, clean shutdown."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

EGRESS = EgressPolicy(DEFAULT_ALLOWED)


class Counter(Emulator):
    """A tiny device for exercising the kit: one route and one background task."""

    device = "counter"
    title = "kit test device"
    settings_defaults = {"port": 0, "greeting": "hello"}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/count/{name}", self.count)
        self.scenario_controls["bump"] = self.bump
        self.value = 0

    async def count(self, request: web.Request) -> web.Response:
        self.value += 1
        return web.json_response({"name": request.match_info["name"], "value": self.value})

    async def bump(self, body: dict[str, Any]) -> dict[str, Any]:
        by = body.get("by", 1)
        if isinstance(by, bool) or not isinstance(by, int):
            raise FieldError("by", f"must be an integer, got {by!r}")
        self.value += by
        return {"value": self.value}

    async def on_start(self) -> None:
        self.tasks.spawn(asyncio.sleep(3600), name="idle")

    async def on_reset(self, seed: int) -> None:
        self.value = 0

    def state(self) -> dict[str, Any]:
        return {"value": self.value}


@pytest.fixture
async def counter(emulator_factory: Any) -> Any:
    emu = await emulator_factory(Counter)
    async with aiohttp.ClientSession(emu.url()) as http:
        yield emu, http


async def test_health_names_the_device(counter: Any) -> None:
    _, http = counter
    async with http.get("/_emulator/health") as resp:
        assert await resp.json() == {"device": "counter", "ready": True}


async def test_state_reports_device_state_tasks_and_endpoints(counter: Any) -> None:
    emu, http = counter
    async with http.get("/api/count/a"):
        pass
    async with http.get("/_emulator/state") as resp:
        state = await resp.json()
    assert state["device_state"] == {"value": 1}
    assert state["tasks"] == 1
    assert state["endpoints"]["rest"] == emu.url()


async def test_a_status_fault_answers_instead_of_the_device_for_its_count(counter: Any) -> None:
    emu, http = counter
    rule = {"match": {"method": "GET", "path": "/api/count/{name}"},
            "action": {"type": "status", "status": 503, "body": {"detail": "busy"}}, "count": 1}
    async with http.post("/_emulator/faults", json=rule) as resp:
        assert resp.status == 201
    async with http.get("/api/count/a") as resp:
        assert resp.status == 503
        assert await resp.json() == {"detail": "busy"}
    async with http.get("/api/count/a") as resp:
        assert resp.status == 200
    assert emu.value == 1
    kinds = [e.kind for e in emu.events.query("fault")]
    assert "fault.applied" in kinds


async def test_a_delay_fault_delays_the_answer(counter: Any) -> None:
    _, http = counter
    await (await http.post("/_emulator/faults", json={"match": {"path": "/api/*"},
                                                      "action": {"type": "delay", "ms": 200}})).release()
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with http.get("/api/count/x") as resp:
        assert resp.status == 200
    assert loop.time() - start >= 0.19


@pytest.mark.parametrize("kind", ["empty", "reset"])
async def test_empty_and_reset_faults_drop_the_connection_without_an_answer(counter: Any, kind: str) -> None:
    emu, http = counter
    await (await http.post("/_emulator/faults", json={"match": {"path": "/api/count/{n}"},
                                                      "action": {"type": kind}})).release()
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{emu.url()}/api/count/a") as resp:
            await resp.read()
    # The emulator keeps serving.
    async with http.get("/_emulator/health") as resp:
        assert resp.status == 200


async def test_bad_fault_rules_get_400_naming_the_field(counter: Any) -> None:
    _, http = counter
    async with http.post("/_emulator/faults", json={"match": {"stream": "x"}, "action": {"type": "teleport"}}) as r:
        assert r.status == 400
        body = await r.json()
    assert body["field"] == "action.type"
    assert "drop" in body["error"]
    # Labelled JSON: a body of any other type is refused (415) before it is parsed.
    async with http.post("/_emulator/faults", data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["field"] == "body"


async def test_scenario_controls_run_and_unknown_ones_are_listed(counter: Any) -> None:
    _, http = counter
    async with http.post("/_emulator/scenario/bump", json={"by": 5}) as r:
        assert await r.json() == {"value": 5}
    async with http.post("/_emulator/scenario/bump", json={"by": "lots"}) as r:
        assert r.status == 400
        assert (await r.json())["field"] == "by"
    async with http.post("/_emulator/scenario/explode", json={}) as r:
        assert r.status == 404
        assert "bump" in (await r.json())["error"]


async def test_reset_restores_boot_state_reseeds_and_replaces_tasks(counter: Any) -> None:
    emu, http = counter
    await (await http.get("/api/count/a")).release()
    await (await http.post("/_emulator/faults", json={"match": {"stream": "s"}, "action": {"type": "drop"}})).release()
    async with http.post("/_emulator/reset", json={"seed": 42}) as r:
        assert await r.json() == {"device": "counter", "seed": 42, "reset": True}
    assert emu.value == 0
    assert len(emu.faults) == 0
    assert emu.tasks.live == 1  # the old task was cancelled and awaited, the boot task started again


async def test_events_are_filtered_by_kind_prefix_and_since(counter: Any) -> None:
    emu, http = counter
    emu.events.record("stream.started", stream="a")
    emu.events.record("stream.stopped", stream="a")
    emu.events.record("ws.sent", n=1)
    async with http.get("/_emulator/events", params={"kind": "stream"}) as r:
        events = (await r.json())["events"]
    assert [e["kind"] for e in events] == ["stream.started", "stream.stopped"]
    async with http.get("/_emulator/events", params={"since": events[0]["id"]}) as r:
        kinds = [e["kind"] for e in (await r.json())["events"]]
    assert kinds[:2] == ["stream.stopped", "ws.sent"]
    async with http.get("/_emulator/events", params={"limit": "lots"}) as r:
        assert r.status == 400
        assert (await r.json())["field"] == "limit"


async def test_closing_cancels_every_task_and_frees_the_port() -> None:
    emu = Counter(egress=EGRESS)
    await emu.start()
    port = emu.ports["rest"]
    await emu.aclose()
    assert emu.tasks.live == 0
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_unknown_settings_are_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(FieldError, match="greeting"):
        Counter({"greting": "hi"}, egress=EGRESS)
    with pytest.raises(FieldError, match="must be"):
        Counter({"port": "eighty"}, egress=EGRESS)


async def test_first_completed_cancels_and_awaits_the_others() -> None:
    from emulators.kit.tasks import first_completed

    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    await first_completed(asyncio.sleep(0), forever())
    assert cancelled.is_set()
    with pytest.raises(ValueError):
        await first_completed(asyncio.sleep(3600), _raise(ValueError("boom")))
    await first_completed(asyncio.sleep(3600), _raise(ConnectionResetError()), ignore=(ConnectionResetError,))


async def _raise(exc: BaseException) -> None:
    raise exc


async def test_the_served_control_plane_document_has_one_operation_per_scenario_control(counter: Any) -> None:
    _, http = counter
    async with http.get("/_emulator/openapi.json") as resp:
        document = await resp.json()
    assert "/_emulator/scenario/{control}" not in document["paths"]
    bump = document["paths"]["/_emulator/scenario/bump"]["post"]
    # No contract document describes the test device's control: it is served generic, and marked so.
    assert bump["x-undescribed-scenario-control"] is True
    assert set(bump["responses"]) >= {"200", "400", "409"}


def test_a_device_scenario_document_is_inlined_into_the_control_plane() -> None:
    from emulators.kit.control_openapi import control_plane_document

    document = control_plane_document("recall", ["remove_participant"])
    body = document["paths"]["/_emulator/scenario/remove_participant"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["participant_id"]
    assert schema["properties"]["bot_id"]["oneOf"] == [{"type": "string"}, {"type": "null"}]
    assert "$ref" not in str(body)
