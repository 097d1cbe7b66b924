"""Fleets: members named after their device, consecutive ports (from the configured port, or a block of the
device's own), distinct identities and seeds; the counts checked with errors that say what is allowed."""

from __future__ import annotations

import pytest

from emulators.app import create_emulator
from emulators.config import Config, apply_overrides
from emulators.depthcam.device import DepthCamEmulator
from emulators.fleet import Member, member_settings, members, parse_fleet
from emulators.kit.errors import FieldError
from emulators.misty.device import MistyEmulator
from emulators.up import process_count, split


def test_a_fleet_is_parsed_from_the_flag_and_names_its_members() -> None:
    assert parse_fleet("misty=50, depthcam=8") == {"misty": 50, "depthcam": 8}
    group = members(["misty", "depthcam", "recall"], {"misty": 3})
    assert [m.name for m in group] == ["misty-1", "misty-2", "misty-3", "depthcam", "recall"]


@pytest.mark.parametrize(("text", "says"), [
    ("misty", "is not DEVICE=COUNT"), ("misty=lots", "is not DEVICE=COUNT"), ("misty=٣", "is not DEVICE=COUNT"),
    ("toaster=2", "is not a device"), ("misty=0", "from 1 to 1000"), ("misty=1001", "from 1 to 1000"),
])
def test_a_bad_fleet_says_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(FieldError, match=says):
        parse_fleet(text)


def test_the_config_file_takes_a_fleet_and_a_process_count() -> None:
    config = apply_overrides(Config(), {"fleet": {"misty": 4}, "processes": 2})
    assert (config.fleet, config.processes) == ({"misty": 4}, 2)
    with pytest.raises(FieldError, match=r"processes.*from 1 to 64"):
        apply_overrides(Config(), {"processes": 0})
    with pytest.raises(FieldError, match=r"fleet.misty.*from 1 to 1000"):
        apply_overrides(Config(), {"fleet": {"misty": True}})


def test_members_take_consecutive_ports_from_the_configured_one_or_their_devices_block() -> None:
    ports = ("port", "tls_port")
    configured = [member_settings(Member("signalwire", k, 3), {"port": 20000, "tls_port": 30000}, ports, {})
                  for k in range(3)]
    assert [(s["port"], s["tls_port"]) for s in configured] == [(20000, 30000), (20001, 30001), (20002, 30002)]
    block = [member_settings(Member("signalwire", k, 3), {}, ports, {}) for k in range(3)]
    assert [(s["port"], s["tls_port"]) for s in block] == [(16000, 17000), (16001, 17001), (16002, 17002)]
    assert member_settings(Member("misty", 1, 2), {"port": 0}, ("port",), {})["port"] == 0  # free ports stay free
    assert member_settings(Member("misty"), {"port": 9080}, ("port",), {"serial_number": "x"}) == {"port": 9080}


def test_each_member_is_a_distinct_device_with_its_own_seed() -> None:
    config = Config()
    robots = [create_emulator("misty", config, member=Member("misty", k, 3), free_ports=True) for k in range(3)]
    assert [r.name for r in robots] == ["misty-1", "misty-2", "misty-3"]
    assert [r.settings.serial_number for r in robots] == [f"EMULATED-MISTY-II-00{k}" for k in (1, 2, 3)]
    assert [r.seed for r in robots] == [0, 1, 2]
    assert MistyEmulator.fleet_identity({"serial_number": "LAB"}, 4) == {"serial_number": "LAB-005"}
    rig = DepthCamEmulator.fleet_identity({}, 2)["rig"]
    assert [d["mxid"] for d in rig] == ["14442C10D13EABCE02"]
    lab = DepthCamEmulator.fleet_identity({"rig": [{"model": "OAK-1", "mxid": "ZZZZ"}]}, 1)["rig"]
    assert lab[0]["mxid"] == "ZZZZ0001"  # not hex at the end: the index is appended


def test_emulators_are_dealt_over_the_processes_round_robin() -> None:
    group = members(["misty", "recall"], {"misty": 3})
    assert [[m.name for m in g] for g in split(group, 2)] == [["misty-1", "misty-3"], ["misty-2", "recall"]]
    assert process_count(Config(processes=8), group) == 4  # never more processes than emulators
    assert process_count(Config(processes=1), group) == 1
