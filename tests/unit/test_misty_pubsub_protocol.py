"""Misty's pubsub protocol core: JSON and Python-repr subscribes, replies, conditions, debounce, return property."""

from __future__ import annotations

import json

import pytest

from emulators.misty.pubsub import (
    REGISTERED,
    PubsubRegistry,
    RegistrationRefused,
    Subscribe,
    Subscription,
    Unsubscribe,
    event_envelope,
    parse_message,
    registration_reply,
)

TOF = {"sensorId": "toffc", "distanceInMeters": 1.0, "status": 0, "inHazard": False, "type": "Range", "tags": []}


def test_a_json_subscribe_parses_with_every_field():
    msg = parse_message(
        json.dumps(
            {
                "Operation": "subscribe",
                "Type": "TimeOfFlight",
                "DebounceMs": 100,
                "EventName": "FrontTOF",
                "ReturnProperty": None,
                "EventConditions": [{"Property": "SensorId", "Inequality": "=", "Value": "toffc"}],
            }
        )
    )
    assert isinstance(msg, Subscribe)
    assert (msg.event_type, msg.event_name, msg.debounce_ms) == ("TimeOfFlight", "FrontTOF", 100)
    assert msg.return_property is None
    assert msg.conditions[0].property == "SensorId"


def test_a_python_repr_subscribe_from_the_sdk_parses():
    text = str({"Operation": "subscribe", "Type": "BatteryCharge", "DebounceMs": 1000, "EventName": "9307864784",
                "Message": "", "ReturnProperty": None, "EventConditions": None, "KeepAlive": True})
    msg = parse_message(text)
    assert isinstance(msg, Subscribe) and msg.event_name == "9307864784" and msg.debounce_ms == 1000


def test_keys_are_case_insensitive():
    msg = parse_message('{"operation":"subscribe","TYPE":"IMU","DebounceMS":5,"eventname":"imu"}')
    assert isinstance(msg, Subscribe) and msg.debounce_ms == 5 and msg.event_name == "imu"


@pytest.mark.parametrize("text", ["", "   ", "not json", "[1,2]", '{"Operation":"dance"}', b"\xff\xfe"])
def test_empty_or_unparseable_frames_are_ignored(text):
    assert parse_message(text) is None


def test_debounce_defaults_to_250_ms_and_a_missing_event_name_to_the_type():
    msg = parse_message('{"Operation":"subscribe","Type":"SelfState"}')
    assert isinstance(msg, Subscribe) and msg.debounce_ms == 250 and msg.event_name == "SelfState"


def test_an_unknown_type_is_refused_with_a_reason():
    with pytest.raises(RegistrationRefused) as exc:
        parse_message('{"Operation":"subscribe","Type":"Teleport","EventName":"t"}')
    reply = registration_reply(exc.value.event_name, exc.value.reason)
    assert reply["eventName"] == "t"
    assert reply["message"].startswith("Registration Status: Cannot register") and "Teleport" in reply["message"]


def test_a_bad_inequality_is_refused():
    with pytest.raises(RegistrationRefused, match="Inequality"):
        parse_message('{"Operation":"subscribe","Type":"IMU","EventConditions":[{"Property":"x","Inequality":"~"}]}')


def test_the_registration_reply_is_the_robots_text():
    assert registration_reply("e") == {"eventName": "e", "message": REGISTERED}
    assert REGISTERED == "Registration Status: API event registered."


def test_unsubscribe_parses():
    assert parse_message("{'Operation': 'unsubscribe', 'EventName': 'e', 'Message': ''}") == Unsubscribe("e")


def sub(conditions=(), debounce=0, return_property=None):
    raw = {"Operation": "subscribe", "Type": "TimeOfFlight", "EventName": "n", "DebounceMs": debounce,
           "EventConditions": list(conditions), "ReturnProperty": return_property}
    msg = parse_message(json.dumps(raw))
    assert isinstance(msg, Subscribe)
    return Subscription(msg)


def cond(prop, inequality, value=None):
    return {"Property": prop, "Inequality": inequality, "Value": value}


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        (cond("SensorId", "=", "toffc"), True),
        (cond("sensorid", "=", "toffl"), False),
        (cond("SensorId", "=", "TOFFC"), False),  # values are case-sensitive
        (cond("DistanceInMeters", ">=", "1.0"), True),
        (cond("DistanceInMeters", "=>", 1.0), True),
        (cond("DistanceInMeters", ">", 1.0), False),
        (cond("DistanceInMeters", "<=", 1), True),
        (cond("DistanceInMeters", "<", 1.5), True),
        (cond("Status", "!=", 104), True),
        (cond("InHazard", "=", "false"), True),
        (cond("SensorId", "exists"), True),
        (cond("Missing", "exists"), False),
        (cond("Tags", "empty"), True),
        (cond("Missing", "empty"), True),
        (cond("SensorId", "empty"), False),
    ],
)
def test_conditions(condition, matches):
    assert sub([condition]).matches(TOF) is matches


def test_all_conditions_must_hold():
    assert sub([cond("SensorId", "=", "toffc"), cond("Status", "=", 0)]).matches(TOF)
    assert not sub([cond("SensorId", "=", "toffc"), cond("Status", "=", 104)]).matches(TOF)


def test_delta_delivers_only_after_a_change_of_at_least_value():
    s = sub([cond("DistanceInMeters", "delta", 0.5)])
    assert s.offer(TOF, 0)[0]
    assert not s.offer({**TOF, "distanceInMeters": 1.4}, 10)[0]
    assert s.offer({**TOF, "distanceInMeters": 1.6}, 20)[0]


def test_debounce_spaces_deliveries_and_zero_delivers_all():
    s = sub(debounce=250)
    delivered = [t for t in range(0, 1000, 50) if s.offer(TOF, t)[0]]
    assert delivered == [0, 250, 500, 750]
    s0 = sub(debounce=0)
    assert all(s0.offer(TOF, t)[0] for t in range(0, 100, 10))


def test_debounce_equal_to_the_sensor_period_delivers_every_sample():
    # Sample times as the 20 Hz schedule computes them: start + n * 0.05 s, with float rounding.
    start = 81234.567891
    times = [(start + n * (1.0 / 20.0)) * 1000.0 for n in range(200)]
    s = sub(debounce=50)
    assert all(s.offer(TOF, t)[0] for t in times)
    half = sub(debounce=100)
    assert sum(half.offer(TOF, t)[0] for t in times) == 100


def test_return_property_delivers_that_value_or_null():
    assert sub(return_property="distanceInMeters").offer(TOF, 0) == (True, 1.0)
    assert sub(return_property="battery.voltage").offer({"battery": {"voltage": 8.3}}, 0) == (True, 8.3)
    assert sub(return_property="nothing.here").offer(TOF, 0) == (True, None)


def test_the_deprecated_format_keeps_a_messages_own_sensor_name():
    actuator = {"sensorId": "ahp", "sensorName": "Actuator_HeadPitch", "value": 0.0}
    event = event_envelope("a", actuator, version="Deprecated", event_type="ActuatorPosition", sensor_name="")
    assert event["message"]["sensorName"] == "Actuator_HeadPitch" and event["type"] == "ActuatorPosition"


def test_the_deprecated_format_adds_type_and_sensor_name():
    current = event_envelope("e", {"a": 1})
    assert current == {"eventName": "e", "message": {"a": 1}}
    old = event_envelope("e", {"a": 1}, version="Deprecated", event_type="IMU", sensor_name="/Sensors/RTC/IMU")
    assert old == {"eventName": "e", "message": {"a": 1, "sensorName": "/Sensors/RTC/IMU"}, "type": "IMU"}


# ----- the registry (robot-wide event names) -------------------------------------------------------------
def subscribe(name: str, event_type: str = "TimeOfFlight", **extra: object) -> str:
    return json.dumps({"Operation": "subscribe", "Type": event_type, "EventName": name, "DebounceMs": 0, **extra})


def test_an_event_name_is_unique_across_connections():
    registry = PubsubRegistry()
    registry.connect(1)
    registry.connect(2)
    first = registry.receive(1, subscribe("front"))
    second = registry.receive(2, subscribe("front"))
    assert first is not None and first.registered and first.reply["message"] == REGISTERED
    assert second is not None and not second.registered
    assert "same name (front)" in second.reply["message"]
    assert registry.snapshot()["subscriptions"] == ["front"]


def test_only_the_subscribing_connection_can_unsubscribe_and_there_is_no_reply():
    registry = PubsubRegistry()
    registry.connect(1)
    registry.connect(2)
    registry.receive(1, subscribe("front"))
    assert registry.receive(2, json.dumps({"Operation": "unsubscribe", "EventName": "front"})) is None
    assert "front" in registry.names
    assert registry.receive(1, json.dumps({"Operation": "unsubscribe", "EventName": "front"})) is None
    assert registry.names == {} and registry.wanted() == set()


def test_a_closed_connection_frees_its_names_unless_subscriptions_are_sticky():
    for sticky, still_taken in ((False, False), (True, True)):
        registry = PubsubRegistry(sticky=sticky)
        registry.connect(1)
        registry.receive(1, subscribe("front"))
        registry.disconnect(1)
        registry.connect(2)
        reply = registry.receive(2, subscribe("front"))
        assert reply is not None and reply.registered is not still_taken
        assert registry.wanted() == (set() if sticky else {"TimeOfFlight"})
        registry.forget_all()  # a Core reboot forgets sticky names too
        registry.connect(3)
        again = registry.receive(3, subscribe("front"))
        assert again is not None and again.registered


def test_a_refused_subscribe_gets_the_reason_and_registers_nothing():
    registry = PubsubRegistry()
    registry.connect(1)
    reply = registry.receive(1, subscribe("x", event_type="Lidar"))
    assert reply is not None and not reply.registered and "Cannot register event" in reply.reply["message"]
    assert registry.names == {}


def test_messages_from_an_unknown_connection_are_ignored():
    assert PubsubRegistry().receive(9, subscribe("front")) is None


def test_deliveries_go_to_each_matching_subscription_in_the_chosen_format():
    registry = PubsubRegistry()
    registry.connect(1)
    registry.connect(2)
    registry.receive(1, subscribe("a"))
    registry.receive(2, subscribe("b", ReturnProperty="distanceInMeters"))
    registry.receive(2, subscribe("imu", event_type="IMU"))
    out = registry.deliveries("TimeOfFlight", TOF, 0.0, version="Current", sensor_name="")
    assert out == [(1, {"eventName": "a", "message": TOF}), (2, {"eventName": "b", "message": 1.0})]
    deprecated = registry.deliveries("TimeOfFlight", TOF, 1000.0, version="Deprecated", sensor_name="tof")
    assert deprecated[0][1]["type"] == "TimeOfFlight" and deprecated[0][1]["message"]["sensorName"] == "tof"
    assert registry.events_sent == 4
