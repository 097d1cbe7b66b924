"""The depth camera's domain errors: each carries the HTTP status the Robopipe server answers it with.

The server is FastAPI behind uvicorn, so a refusal has one of three shapes, chosen by ``status``: 404 is the
JSON literal ``null``, 422 is ``{"detail": [item]}`` naming ``loc`` and ``input``, 500 is uvicorn's text.
``api.refusal`` renders them, once.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DepthCamError(Exception):
    """A rule of the device refused a request."""

    status: ClassVar[int] = 500

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = (), input_: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc  # where a 422 points (FastAPI's loc)
        self.input = input_  # the value a 422 quotes


class CameraNotFound(DepthCamError):
    status = 404

    def __init__(self, mxid: str) -> None:
        super().__init__(f"no camera with mxid {mxid!r}")
        self.mxid = mxid


class StreamNotFound(DepthCamError):
    """The stream is not on the device, or (for config/control/still/nn) not active."""

    status = 404

    def __init__(self, mxid: str, stream: str, reason: str) -> None:
        super().__init__(f"{mxid}/{stream}: {reason}")
        self.mxid = mxid
        self.stream = stream
        self.reason = reason


class ConfigRejected(DepthCamError):
    """A config the sensor cannot run; ``kind`` says whether it is the wrong variant or a bad value."""

    status = 422

    def __init__(self, loc: tuple[str | int, ...], message: str, *, kind: str, body: Any = None) -> None:
        super().__init__(message, loc=loc, input_=body)
        self.kind = kind  # "variant" (quirk Q2/Q3) or "value" (quirk Q5)


class CircuitNotFound(DepthCamError):
    status = 422

    def __init__(self, device_type: str, circuit: str, known: list[str]) -> None:
        message = f"no {device_type} circuit {circuit!r}; known circuits: {', '.join(known) or 'none'}"
        super().__init__(message, loc=("path", "circuit"), input_=circuit)
        self.device_type = device_type
        self.circuit = circuit


class CircuitValueRejected(DepthCamError):
    status = 422

    def __init__(self, field_name: str, message: str, value: Any) -> None:
        super().__init__(message, loc=("body", field_name), input_=value)
        self.field_name = field_name


class BootFailed(DepthCamError):
    """The pipeline did not come back after every retry of a restart."""


class ServerCrash(DepthCamError):
    """Where the real server raises instead of answering (a quirk of the robopipe-server profile): uvicorn's 500."""


class IllegalTransition(DepthCamError):
    """A pipeline status change the transition table does not allow (a bug in the caller, not a client error)."""
