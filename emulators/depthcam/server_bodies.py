"""Request bodies as the server's main branch declares them, validated by pydantic as FastAPI does there.

Config bodies are stdlib dataclasses (a non-object body is ``dataclass_type``), control fields are not
nullable besides ``focus``, and the NN form's ``nn_config`` is checked field by field against its ``type``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from emulators.depthcam import request_errors, schemas
from emulators.depthcam.request_errors import BodyUnparsable, JsonInvalid


# ----- body parsing, before any dependency runs -----------------------------------------------------------
def is_json_content(content_type: str | None) -> bool:
    """FastAPI reads a body as JSON without a Content-Type, or with ``application/json`` / ``application/*+json``."""
    if not content_type:
        return True
    main, _, subtype = content_type.split(";")[0].strip().lower().partition("/")
    return main == "application" and (subtype == "json" or subtype.endswith("+json"))


def parse_json_body(raw: bytes, content_type: str | None) -> Any:
    """The body as main's handler sees it: MISSING, the JSON value, or the raw text for another content type.

    A JSON syntax error raises the 422 items (they answer alone, before the camera is looked up); anything
    else that stops the parse (bytes that are not UTF-8) raises BodyUnparsable.
    """
    if not raw:
        return request_errors.MISSING
    if not is_json_content(content_type):
        return raw.decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        item = request_errors.error_item("json_invalid", ["body", exc.pos], "JSON decode error", {}, {"error": exc.msg})
        raise JsonInvalid([item]) from exc
    except (ValueError, RecursionError) as exc:  # not text, or nested past the parser's recursion limit
        raise BodyUnparsable(str(exc)) from exc


def form_fields(raw: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """The form's parts; a multipart body without its boundary parameter or not starting with it is unreadable."""
    if raw and content_type.lower().startswith("multipart/"):
        boundary = request_errors.multipart_boundary(content_type)
        if boundary is None or not raw.startswith(b"--" + boundary):
            raise BodyUnparsable("the multipart body does not start with its boundary")
    return request_errors.multipart_fields(raw, content_type)


def validate(adapter: TypeAdapter[Any], data: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A required body validated as FastAPI does (with ``from_attributes``), errors located under ``body``."""
    if data is request_errors.MISSING:
        return None, [request_errors.error_item("missing", ["body"], "Field required", None)]
    try:
        return adapter.validate_python(data, from_attributes=True), []
    except ValidationError as exc:
        return None, schemas.pydantic_errors(exc, ["body"])


# ----- config: stdlib dataclasses -------------------------------------------------------------------------
ColorCameraResolution = schemas.ColorCameraResolution
MonoCameraResolution = schemas.MonoCameraResolution


@dataclasses.dataclass
class CameraConfigProperties:
    resolution: tuple[int, int]
    still_size: tuple[int, int]
    preview_size: tuple[int, int]
    video_size: tuple[int, int]
    fps: float


@dataclasses.dataclass
class ColorCameraConfigProperties:
    resolution: ColorCameraResolution  # type: ignore[valid-type]
    still_size: tuple[int, int]
    preview_size: tuple[int, int]
    video_size: tuple[int, int]
    sensor_crop: tuple[float, float]
    fps: float


@dataclasses.dataclass
class MonoCameraConfigProperties:
    resolution: MonoCameraResolution  # type: ignore[valid-type]
    fps: float


ConfigBody: TypeAdapter[Any] = TypeAdapter(
    CameraConfigProperties | ColorCameraConfigProperties | MonoCameraConfigProperties
)


def config_fields(value: Any) -> tuple[str, dict[str, Any]]:
    """The variant (``color``, ``mono`` or ``generic``) and the fields as the config's JSON shows them."""
    fields = {
        key: (item.value if isinstance(item, enum.Enum) else list(item) if isinstance(item, tuple) else item)
        for key, item in dataclasses.asdict(value).items()
    }
    fields["fps"] = float(fields["fps"])
    if isinstance(value, ColorCameraConfigProperties):
        return "color", fields
    if isinstance(value, MonoCameraConfigProperties):
        return "mono", fields
    return "generic", fields


# ----- control: every field but focus refuses null --------------------------------------------------------
class SensorControlUpdate(BaseModel):
    exposure_time: Annotated[int, Field(ge=1, le=33000, default=None)]
    sensitivity_iso: Annotated[int, Field(ge=100, le=5000, default=None)]
    auto_exposure_enable: Annotated[bool, Field(default=None)]
    auto_exposure_compensation: Annotated[int, Field(ge=-9, le=9, default=None)]
    auto_exposure_limit: Annotated[int, Field(default=None)]
    auto_exposure_lock: Annotated[bool, Field(default=None)]
    contrast: Annotated[int, Field(ge=-10, le=10, default=None)]
    brightness: Annotated[int, Field(ge=-10, le=10, default=None)]
    saturation: Annotated[int, Field(ge=-10, le=10, default=None)]
    chroma_denoise: Annotated[int, Field(ge=0, le=4, default=None)]
    luma_denoise: Annotated[int, Field(ge=0, le=4, default=None)]
    auto_whitebalance_lock: Annotated[bool, Field(default=None)]
    auto_whitebalance_mode: Annotated[schemas.AutoWhiteBalanceMode, Field(default=None)]
    manual_whitebalance: Annotated[int, Field(ge=1000, le=12000, default=None)]
    focus: Annotated[schemas.SensorFocus | None, Field(default=None)]


ControlBody: TypeAdapter[Any] = TypeAdapter(SensorControlUpdate)


IRBody: TypeAdapter[Any] = TypeAdapter(schemas.IRConfig)
CONTROLLER_BODIES: dict[str, TypeAdapter[Any]] = {
    device_type: TypeAdapter(model) for device_type, model in schemas.CONTROLLER_UPDATES.items()
}


# ----- NN form ----------------------------------------------------------------------------------------------
class NNType(enum.Enum):
    Generic = "Generic"
    YOLO = "YOLO"
    MobileNet = "MobileNet"


class NNYoloConfig(BaseModel):
    anchor_masks: dict[str, list[int]] | None = None
    anchors: list[float] | None = None
    coordinate_size: int | None = None
    confidence_threshold: float | None = None
    iou_threshold: float | None = None
    num_classes: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _for_yolo_only(cls, data: Any, info: ValidationInfo) -> Any:
        if info.data.get("type") != NNType.YOLO:
            raise ValueError("nn type and nn config mismatch")
        return data


class NNMobileNetConfig(BaseModel):
    confidence_threshold: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _for_mobilenet_only(cls, data: Any, info: ValidationInfo) -> Any:
        if info.data.get("type") != NNType.MobileNet:
            raise ValueError("nn type and nn config mismatch")
        return data


class NNConfig(BaseModel):
    type: NNType
    num_inference_threads: int = 2
    nn_config: NNYoloConfig | NNMobileNetConfig | None = None


class NNConfigRefused(Exception):
    """The form's ``nn_config`` failed validation: main answers pydantic's own items, unprefixed, at once."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("nn_config failed validation")
        self.errors = errors


def check_nn_config(text: str) -> NNConfig:
    """Validate ``nn_config`` as main's form dependency does.

    Raises NNConfigRefused (a 422), or ValueError where main's own consistency check raises one past its
    ``except ValidationError`` (YOLO or MobileNet without ``nn_config``: a 500).
    """
    try:
        config = NNConfig.model_validate_json(text)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():  # with each error's url, as main passes them through unchanged
            item = {key: request_errors.jsonable(value) for key, value in err.items()}
            item["loc"] = list(err["loc"])
            errors.append(item)
        raise NNConfigRefused(errors) from exc
    if config.type is NNType.YOLO and not isinstance(config.nn_config, NNYoloConfig):
        raise ValueError("nn_config must be of type NNYoloConfig when NNType is YOLO")
    if config.type is NNType.MobileNet and not isinstance(config.nn_config, NNMobileNetConfig):
        raise ValueError("nn_config must be of type NNMobileNetConfig when NNType is MobileNet")
    return config
