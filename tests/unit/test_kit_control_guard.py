"""The control plane against web pages and other local users: cross-origin requests, non-JSON bodies, the
optional token, explicit data wipes and bodies nested to blow the recursion limit."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.json_limits import MAX_JSON_DEPTH, parse_json
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

TOKEN = "lab-machine-token-0123456789"


class Keeper(Emulator):
    """A kit test device with persistent data and a scenario control."""

    device = "keeper"
    title = "kit control-plane test device"
    settings_defaults = {"port": 0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("egress", EgressPolicy(DEFAULT_ALLOWED))
        super().__init__(*args, **kwargs)
        self.data = ["kept"]
        self.wipes = 0

    def add_routes(self, app: web.Application) -> None:
        self.scenario_controls["echo"] = self.echo

    async def echo(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    async def on_reset(self, seed: int) -> None:
        if self.wipe_on_reset:
            self.wipes += 1
            self.data.clear()


@pytest.fixture
async def keeper() -> Any:
    emu = Keeper()
    await emu.start()
    async with aiohttp.ClientSession(emu.url()) as http:
        yield emu, http
    await emu.aclose()


RULE = '{"match": {"path": "/x"}, "action": {"type": "status", "status": 503}}'


async def test_a_cross_origin_text_plain_post_adds_no_fault_and_gets_no_cors_header(keeper) -> None:
    emu, http = keeper
    headers = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    async with http.post("/_emulator/faults", data=RULE, headers=headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["field"] == "origin"
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with http.post("/_emulator/reset", headers={"Origin": "http://localhost:3000"}) as resp:
        assert resp.status == 403
    async with http.options("/_emulator/faults", headers={"Origin": "http://evil.example",
                                                          "Access-Control-Request-Method": "POST"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    assert len(emu.faults) == 0


async def test_a_fetch_metadata_cross_site_request_is_refused_even_without_origin(keeper) -> None:
    _, http = keeper
    async with http.get("/_emulator/state", headers={"Sec-Fetch-Site": "cross-site"}) as resp:
        assert resp.status == 403


async def test_a_body_that_is_not_application_json_is_415_naming_the_content_type(keeper) -> None:
    emu, http = keeper
    async with http.post("/_emulator/faults", data=RULE, headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
        body = await resp.json()
        assert body["field"] == "content-type" and "text/plain" in body["error"]
    assert len(emu.faults) == 0
    same_origin = {"Origin": emu.url(), "Content-Type": "application/json"}
    async with http.post("/_emulator/faults", data=RULE, headers=same_origin) as resp:
        assert resp.status == 201


async def test_the_served_document_lists_415_for_every_operation_with_a_body(keeper) -> None:
    _, http = keeper
    async with http.get("/_emulator/openapi.json") as resp:
        document = await resp.json()
    with_body = [op for item in document["paths"].values() for op in item.values() if "requestBody" in op]
    assert with_body and all("415" in op["responses"] for op in with_body)


async def test_with_a_token_every_route_but_health_needs_it() -> None:
    emu = Keeper(control_token=TOKEN)
    await emu.start()
    try:
        async with aiohttp.ClientSession(emu.url()) as http:
            async with http.get("/_emulator/health") as resp:
                assert resp.status == 200
            async with http.get("/_emulator/state") as resp:
                assert resp.status == 401
                assert (await resp.json())["field"] == "authorization"
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            async with http.get("/_emulator/state", headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            async with http.post("/_emulator/reset", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200
    finally:
        await emu.aclose()


async def test_a_plain_reset_keeps_persistent_data_and_wipe_data_true_deletes_it(keeper) -> None:
    emu, http = keeper
    async with http.post("/_emulator/reset", json={"seed": 3}) as resp:
        assert (await resp.json()) == {"device": "keeper", "seed": 3, "reset": True}
    assert emu.data == ["kept"] and emu.wipes == 0
    async with http.post("/_emulator/reset", json={"wipe_data": "yes"}) as resp:
        assert resp.status == 400 and (await resp.json())["field"] == "wipe_data"
    async with http.post("/_emulator/reset", json={"wipe_data": True}) as resp:
        assert resp.status == 200
    assert emu.data == [] and emu.wipes == 1
    [event] = emu.events.query(kind="reset")
    assert event.detail["wipe_data"] is True


@pytest.mark.parametrize("path", ["/_emulator/faults", "/_emulator/reset", "/_emulator/scenario/echo"])
async def test_a_body_nested_a_thousand_deep_is_400_naming_the_body(keeper, path: str) -> None:
    _, http = keeper
    body = '{"a": ' * 1000 + "1" + "}" * 1000
    async with http.post(path, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        answer = await resp.json()
        assert answer["field"] == "body" and "nested deeper than" in answer["error"]
    async with http.get("/_emulator/health") as resp:
        assert resp.status == 200


def test_parse_json_refuses_depth_past_the_limit_whether_or_not_it_overflows_the_stack() -> None:
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        with pytest.raises(FieldError, match="nested deeper than"):
            parse_json("[" * depth + "]" * depth)
    with pytest.raises(FieldError, match=r"^payload: "):
        parse_json('{"a": ' * 5000 + "1" + "}" * 5000, field="payload")


def test_the_control_token_is_a_config_key_and_a_flag_and_is_never_printed() -> None:
    from emulators.app import create_emulator
    from emulators.cli import _config_from_args, build_parser
    from emulators.config import Config, apply_overrides

    config = apply_overrides(Config(), {"control_token": TOKEN})
    assert create_emulator(Keeper, config).control_token == TOKEN
    assert config.effective()["control_token"] == "<set>"
    with pytest.raises(FieldError, match="at least 16 characters"):
        apply_overrides(Config(), {"control_token": "short"})
    args = build_parser().parse_args(["up", "--control-token", TOKEN])
    assert _config_from_args(args).control_token == TOKEN


async def test_the_control_plane_client_sends_the_token_and_names_the_refusal_without_it() -> None:
    from clients.control import ControlPlane, ControlPlaneError

    emu = Keeper(control_token=TOKEN)
    await emu.start()
    try:
        with_token = ControlPlane(emu.url(), token=TOKEN)
        assert (await asyncio.to_thread(with_token.state))["device"] == emu.device
        await asyncio.to_thread(with_token.reset)
        with pytest.raises(ControlPlaneError) as refused:
            await asyncio.to_thread(ControlPlane(emu.url()).state)
        assert refused.value.status == 401 and "control token" in str(refused.value)
    finally:
        await emu.aclose()
