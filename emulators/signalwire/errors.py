"""SignalWire's domain errors: one base, each error carrying its HTTP status, SignalWire code, headers and body.

The API maps them in one place (``api.py`` ``_guard``); the backend and its pure helpers raise them.
"""

from __future__ import annotations

from typing import Any, ClassVar

MORE_INFO = "https://signalwire.com/docs/compatibility-api/reference/errors"


class SignalWireError(Exception):
    """Base of the domain errors: ``body(path)`` is the wire body, ``status`` and ``headers`` the answer's."""

    status: int = 400
    code: int = 400
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self, path: str) -> dict[str, Any]:
        """The object shape ``{code, message, more_info, status}`` (most errors)."""
        return {"code": self.code, "message": self.message, "more_info": MORE_INFO, "status": self.status}


class AuthenticationFailed(SignalWireError):
    status = 401
    code = 20003
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Basic realm="SignalWire"'}

    def __init__(self) -> None:
        super().__init__("Authentication failed")


class NotFound(SignalWireError):
    status = 404
    code = 20404

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} was not found")
        self.what = what

    def body(self, path: str) -> dict[str, Any]:
        # SignalWire names the request path, not the missing object.
        return {"code": self.code, "message": f"The requested resource {path} was not found",
                "more_info": MORE_INFO, "status": self.status}


class MethodNotAllowed(SignalWireError):
    """A verb the path does not serve: 405 with ``Allow`` (Twilio's code 20004; unverified for SignalWire)."""

    status = 405
    code = 20004

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"Method {method} is not allowed here; allowed: {', '.join(allowed)}")
        self.headers = {"Allow": ", ".join(allowed)}


class InvalidRequest(SignalWireError):
    """A 4xx in the object shape, its code the status; ``field`` names the offending field when there is one."""

    def __init__(self, message: str, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.status = self.code = status
        self.field = field


class RateLimited(SignalWireError):
    """Quirk 17: more requests per second than the account may make (Twilio's code 20429)."""

    status = 429
    code = 20429
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}

    def __init__(self) -> None:
        super().__init__("Too Many Requests")


class ValidationFailed(SignalWireError):
    """A 422 in the string-array shape ``{"errors": [...]}``; ``stream_error`` is the StreamError value."""

    status = 422
    code = 422

    def __init__(self, errors: list[str], stream_error: str = "general_error") -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.stream_error = stream_error

    def body(self, path: str) -> dict[str, Any]:
        return {"errors": self.errors}


class IllegalTransition(SignalWireError):
    """A status change the transition table forbids (a rule was bypassed): 409 in the object shape."""

    status = 409
    code = 409

    def __init__(self, kind: str, sid: str, current: str, target: str) -> None:
        super().__init__(f"{kind} {sid} cannot go from {current} to {target}")
