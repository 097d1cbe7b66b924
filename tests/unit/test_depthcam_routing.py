"""Starlette's routing rules as the Robopipe server applies them: match, 405 with Allow, 307 slash toggle, 404."""

from __future__ import annotations

from emulators.depthcam.routing import (
    ROUTE_MEMORY,
    Matched,
    MethodNotAllowed,
    NotFound,
    Redirect,
    Route,
    Router,
    WebSocketRefused,
)


def router() -> Router[str]:
    return Router(
        [
            Route("/cameras/", {"GET": "list"}),
            Route("/cameras/{mxid}/", {"GET": "get", "POST": "create", "DELETE": "delete"}),
            Route("/cameras/{mxid}/streams/{stream_name}/video", {}, websocket="video"),
            Route("/controller/ai", {"GET": "list_ai"}),
            Route("/controller/{device_type}", {"GET": "list_type"}),
        ]
    )


def test_a_path_and_method_match_runs_the_handler_with_the_path_parameters() -> None:
    assert router().resolve("DELETE", "/cameras/ABC/") == Matched("delete", {"mxid": "ABC"})


def test_the_first_matching_route_wins() -> None:
    assert router().resolve("GET", "/controller/ai") == Matched("list_ai", {})
    assert router().resolve("GET", "/controller/di") == Matched("list_type", {"device_type": "di"})


def test_a_path_with_another_method_is_405_listing_the_allowed_ones() -> None:
    assert router().resolve("PUT", "/cameras/ABC/") == MethodNotAllowed("GET, POST, DELETE")


def test_the_path_with_its_trailing_slash_toggled_redirects() -> None:
    assert router().resolve("GET", "/cameras") == Redirect("/cameras/")
    assert router().resolve("POST", "/cameras/ABC") == Redirect("/cameras/ABC/")
    assert router().resolve("GET", "/controller/ai/") == Redirect("/controller/ai")


def test_anything_else_is_not_found() -> None:
    assert router().resolve("GET", "/nothing") == NotFound()
    # A WebSocket-only path answers HTTP requests as unknown: it has no methods to allow or redirect to.
    assert router().resolve("GET", "/cameras/A/streams/CAM_A/video") == NotFound()


def test_a_websocket_handshake_reaches_only_websocket_routes() -> None:
    assert router().resolve("GET", "/cameras/A/streams/CAM_A/video", websocket=True) == Matched(
        "video", {"mxid": "A", "stream_name": "CAM_A"}
    )
    assert router().resolve("GET", "/cameras/", websocket=True) == WebSocketRefused()


def test_a_path_parameter_is_one_segment_and_may_hold_any_other_character() -> None:
    assert router().resolve("GET", "/cameras/a/b/") == NotFound()
    assert router().resolve("GET", "/cameras/a\nb/") == Matched("get", {"mxid": "a\nb"})


def test_remembered_matches_start_over_past_the_limit_and_give_the_same_answers() -> None:
    r = router()
    for i in range(ROUTE_MEMORY + 5):
        assert r.resolve("GET", f"/cameras/M{i}/") == Matched("get", {"mxid": f"M{i}"})
    first = r.resolve("GET", "/cameras/M0/")
    assert isinstance(first, Matched)
    first.params["mxid"] = "changed"  # a caller's copy: the remembered match stays as it was
    assert r.resolve("GET", "/cameras/M0/") == Matched("get", {"mxid": "M0"})


# ----- the server's main ------------------------------------------------------------------------------------
def test_on_main_a_405_allows_only_the_first_registered_method() -> None:
    routes = [Route("/cameras/{mxid}/", {"GET": "get", "POST": "create", "DELETE": "delete"})]
    main = Router(routes, allow_first_method_only=True)
    assert main.resolve("PUT", "/cameras/ABC/") == MethodNotAllowed("GET")


def test_an_int_parameter_takes_digits_only() -> None:
    main = Router([Route("/controller/{device_type:int}", {"GET": "list_type"})])
    assert main.resolve("GET", "/controller/12") == Matched("list_type", {"device_type": "12"})
    assert main.resolve("GET", "/controller/ro") == NotFound()
