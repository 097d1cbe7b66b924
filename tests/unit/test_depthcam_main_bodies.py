"""Main's request bodies, pure: JSON parsed before any lookup, the 400 parse error, the NN form's config check."""

from __future__ import annotations

import pytest

from emulators.depthcam import request_errors, server_bodies


def test_a_body_is_json_without_a_content_type_or_with_a_json_subtype() -> None:
    assert server_bodies.parse_json_body(b'{"a": 1}', None) == {"a": 1}
    assert server_bodies.parse_json_body(b'{"a": 1}', "application/merge-patch+json") == {"a": 1}
    assert server_bodies.parse_json_body(b'{"a": 1}', "text/plain") == '{"a": 1}'
    assert server_bodies.parse_json_body(b"", "application/json") is request_errors.MISSING


def test_a_json_syntax_error_names_its_position_and_bytes_that_are_not_text_are_unparsable() -> None:
    with pytest.raises(server_bodies.JsonInvalid) as invalid:
        server_bodies.parse_json_body(b'{"fps": ', "application/json")
    assert [(e["type"], e["loc"]) for e in invalid.value.errors] == [("json_invalid", ["body", 8])]
    with pytest.raises(server_bodies.BodyUnparsable):
        server_bodies.parse_json_body(b"\xff\xfe{", "application/json")


def test_a_multipart_body_not_starting_with_its_boundary_is_unparsable() -> None:
    with pytest.raises(server_bodies.BodyUnparsable):
        server_bodies.form_fields(b"junk", "multipart/form-data; boundary=xyz")
    body = b'--xyz\r\nContent-Disposition: form-data; name="nn_config"\r\n\r\n{}\r\n--xyz--\r\n'
    assert server_bodies.form_fields(body, "multipart/form-data; boundary=xyz") == [("nn_config", b"{}")]


def test_the_nn_config_check_answers_like_mains_form_dependency() -> None:
    assert server_bodies.check_nn_config('{"type": "Generic"}').type is server_bodies.NNType.Generic
    with pytest.raises(ValueError, match="NNYoloConfig"):
        server_bodies.check_nn_config('{"type": "YOLO"}')
    with pytest.raises(server_bodies.NNConfigRefused) as refused:
        server_bodies.check_nn_config('{"type": "SSD", "nn_config": {}}')
    errors = refused.value.errors
    assert [e["loc"] for e in errors] == [["type"], ["nn_config", "NNYoloConfig"], ["nn_config", "NNMobileNetConfig"]]
    assert all(e["url"].startswith("https://errors.pydantic.dev/") for e in errors)


def test_a_config_body_keeps_its_variant_and_shows_enums_as_names() -> None:
    value, errors = server_bodies.validate(server_bodies.ConfigBody, {"resolution": "THE_800_P", "fps": 30})
    assert errors == []
    assert server_bodies.config_fields(value) == ("mono", {"resolution": "THE_800_P", "fps": 30.0})
