"""Misty argument binding: case-insensitive names, query + body merge, JSON whatever the type, lenient coercion."""

from __future__ import annotations

import json

import pytest

from emulators.misty.args import ArgumentError, bind_arguments, validate_arguments


def test_names_are_case_insensitive():
    args = bind_arguments([], b'{"port": 5679, "ROTATION": 90}')
    assert args.integer("Port", 5678) == 5679
    assert args.integer("Rotation", 0) == 90


def test_query_and_body_merge_with_the_body_winning_a_conflict():
    args = bind_arguments([("Port", "6000"), ("Quality", "20")], b'{"port": 7000}')
    assert args.integer("Port", 5678) == 7000
    assert args.integer("Quality", 100) == 20


def test_an_empty_body_means_no_arguments():
    assert bind_arguments([], b"").values == {}
    assert bind_arguments([], b"   ").values == {}


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"{not json", b"null"])
def test_a_body_that_is_not_a_json_object_is_refused(body):
    with pytest.raises(ArgumentError) as exc:
        bind_arguments([], body)
    assert "JSON object" in exc.value.message


@pytest.mark.parametrize("unset", [None, "null", "NULL", ""])
def test_null_spellings_mean_the_default(unset):
    args = bind_arguments([], b"{}")
    args.values["port"] = unset
    assert args.integer("Port", 5678) == 5678
    assert args.boolean("Overlay", False) is False
    assert args.string("URL") is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("false", False), ("TRUE", True), ("True", True), (0, False), (1, True), ("1", True)]
)
def test_bools_accept_strings_in_any_case_and_zero_or_one(raw, expected):
    args = bind_arguments([], b"{}")
    args.values["overlay"] = raw
    assert args.boolean("Overlay", not expected) is expected


@pytest.mark.parametrize("raw", ["yes", 2, [True], {"a": 1}])
def test_other_bool_values_name_the_parameter(raw):
    args = bind_arguments([], b"{}")
    args.values["overlay"] = raw
    with pytest.raises(ArgumentError, match="'Overlay'"):
        args.boolean("Overlay", False)


@pytest.mark.parametrize(("raw", "expected"), [("5678", 5678), (5678.0, 5678), ("+42", 42), ("5678.0", 5678)])
def test_integers_accept_numeric_strings_and_integral_floats(raw, expected):
    args = bind_arguments([], b"{}")
    args.values["port"] = raw
    assert args.integer("Port", 0) == expected


@pytest.mark.parametrize("raw", [5678.5, "56x", True, [1], float("inf"), "5_678", "1e3", " 42", "٣"])
def test_non_integral_values_are_refused_naming_the_parameter(raw):
    args = bind_arguments([], b"{}")
    args.values["port"] = raw
    with pytest.raises(ArgumentError, match="'Port'"):
        args.integer("Port", 0)


def test_a_missing_required_string_names_it():
    with pytest.raises(ArgumentError) as exc:
        bind_arguments([], b"{}").required_string("URL", "start AV streaming")
    assert exc.value.message == "Cannot start AV streaming - Missing required string parameter 'URL'."


def test_strings_must_be_strings():
    args = bind_arguments([], b'{"URL": 5, "UserName": "misty"}')
    assert args.string("UserName") == "misty"
    with pytest.raises(ArgumentError, match="'URL'"):
        args.string("URL")


def test_unknown_arguments_are_ignored():
    args = bind_arguments([("whatever", "x")], b'{"$id": "1", "Message": ""}')
    assert args.integer("Port", 5678) == 5678


# ----- table-driven validation ---------------------------------------------------------------------------------
DRIVE_TIME = (("linearVelocity", "Double"), ("angularVelocity", "Double"), ("timeMs", "Int32"), ("degree", "Double"))


def test_declared_arguments_are_typed_and_unset_ones_are_none():
    args = bind_arguments([("TimeMs", "500")], b'{"linearVelocity": "12.5", "AngularVelocity": -3, "other": 1}')
    assert validate_arguments(DRIVE_TIME, args) == {
        "linearVelocity": 12.5, "angularVelocity": -3.0, "timeMs": 500, "degree": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("Double", "1_000", "Invalid value for parameter 'Value': '1_000'. Must be a number."),
        ("Double", "inf", "Invalid value for parameter 'Value': 'inf'. Must be a number."),
        ("Int32", 2**31, f"Invalid value for parameter 'Value': {2**31}. Must be a 32-bit integer."),
        ("Byte", 256, "Invalid value for parameter 'Value': 256. Must be between 0 and 255."),
        ("Boolean", "yes", "Invalid value for parameter 'Value': 'yes'. Must be true or false."),
        ("String", 5, "Invalid value for parameter 'Value': 5. Must be a string."),
        ("DateTime", "soon", "Invalid value for parameter 'Value': 'soon'. Must be an ISO 8601 date."),
        ("Byte[]", [1, 300], "Invalid value for parameter 'Value': [1, 300]. Must be base64 text or an array of bytes."),  # noqa: E501
    ],
)
def test_a_value_of_the_wrong_type_names_the_parameter_in_the_docs_casing(kind, value, message):
    args = bind_arguments([], json.dumps({"value": value}).encode())
    with pytest.raises(ArgumentError) as exc:
        validate_arguments((("value", kind),), args)
    assert exc.value.message == message and exc.value.param == "Value"


def test_object_arguments_take_any_json_and_dates_are_normalised():
    args = bind_arguments([], b'{"intents": [{"name": "x"}], "date": "2024-05-01T10:00:00Z"}')
    values = validate_arguments((("intents", "Object"), ("date", "DateTime")), args)
    assert values == {"intents": [{"name": "x"}], "date": "2024-05-01T10:00:00+00:00"}
