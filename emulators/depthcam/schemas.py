"""Request bodies of the Robopipe API (the release branch) as pydantic models, validated into FastAPI's 422 items.

The real server is FastAPI + pydantic 2, so validating with pydantic gives the same coercions, error
``type``s, ``loc``s and messages a client sees from a real controller.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from emulators.depthcam.hardware import COLOR_RESOLUTIONS, MONO_RESOLUTIONS
from emulators.depthcam.request_errors import MISSING, BodyUnparsable, error_item, jsonable

Pair = tuple[int, int]

ColorCameraResolution = enum.Enum(  # type: ignore[misc]
    "ColorCameraResolution", {name: name for name in COLOR_RESOLUTIONS}, type=str
)
MonoCameraResolution = enum.Enum(  # type: ignore[misc]
    "MonoCameraResolution", {name: name for name in MONO_RESOLUTIONS}, type=str
)


class AutoWhiteBalanceMode(enum.StrEnum):
    AUTO = "AUTO"
    CLOUDY_DAYLIGHT = "CLOUDY_DAYLIGHT"
    DAYLIGHT = "DAYLIGHT"
    FLUORESCENT = "FLUORESCENT"
    INCANDESCENT = "INCANDESCENT"
    OFF = "OFF"
    SHADE = "SHADE"
    TWILIGHT = "TWILIGHT"
    WARM_FLUORESCENT = "WARM_FLUORESCENT"


class AutoFocusMode(enum.StrEnum):
    OFF = "OFF"
    AUTO = "AUTO"
    MACRO = "MACRO"
    CONTINUOUS_VIDEO = "CONTINUOUS_VIDEO"
    CONTINUOUS_PICTURE = "CONTINUOUS_PICTURE"
    EDOF = "EDOF"


# ----- camera bodies --------------------------------------------------------------------------------------
class IRConfig(BaseModel):
    flood_light: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    dot_projector: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class CameraConfigProperties(BaseModel):
    resolution: Pair
    still_size: Pair
    preview_size: Pair
    video_size: Pair
    fps: float


class ColorCameraConfigProperties(BaseModel):
    resolution: ColorCameraResolution
    still_size: Pair
    preview_size: Pair
    video_size: Pair
    sensor_crop: tuple[float, float]
    fps: float


class MonoCameraConfigProperties(BaseModel):
    resolution: MonoCameraResolution
    fps: float


ConfigBody = TypeAdapter(CameraConfigProperties | ColorCameraConfigProperties | MonoCameraConfigProperties)


def config_variant(value: BaseModel) -> str:
    if isinstance(value, ColorCameraConfigProperties):
        return "color"
    if isinstance(value, MonoCameraConfigProperties):
        return "mono"
    return "generic"


class SensorFocus(BaseModel):
    auto_focus_mode: AutoFocusMode = AutoFocusMode.CONTINUOUS_VIDEO
    auto_focus_trigger: bool = False
    lens_position: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class SensorControlUpdate(BaseModel):
    exposure_time: Annotated[int, Field(ge=1, le=33000)] | None = None
    sensitivity_iso: Annotated[int, Field(ge=100, le=5000)] | None = None
    auto_exposure_enable: bool | None = None
    auto_exposure_compensation: Annotated[int, Field(ge=-9, le=9)] | None = None
    auto_exposure_limit: int | None = None
    auto_exposure_lock: bool | None = None
    contrast: Annotated[int, Field(ge=-10, le=10)] | None = None
    brightness: Annotated[int, Field(ge=-10, le=10)] | None = None
    saturation: Annotated[int, Field(ge=-10, le=10)] | None = None
    chroma_denoise: Annotated[int, Field(ge=0, le=4)] | None = None
    luma_denoise: Annotated[int, Field(ge=0, le=4)] | None = None
    auto_whitebalance_lock: bool | None = None
    auto_whitebalance_mode: AutoWhiteBalanceMode | None = None
    manual_whitebalance: Annotated[int, Field(ge=1000, le=12000)] | None = None
    focus: SensorFocus | None = None


# ----- controller (PLC) bodies ----------------------------------------------------------------------------
class AnalogInputModeType(enum.StrEnum):
    Disabled = "Disabled"
    Voltage = "Voltage"
    Voltage2V5 = "Voltage2V5"
    Current = "Current"
    Resistance3W = "Resistance3W"
    Resistance2W = "Resistance2W"


class AnalogOutputModeType(enum.StrEnum):
    Voltage = "Voltage"
    Current = "Current"
    Resistance = "Resistance"


class DigitalInputCounterMode(enum.StrEnum):
    Enabled = "Enabled"
    Disabled = "Disabled"


class DigitalInputMode(enum.StrEnum):
    Simple = "Simple"
    DirectSwitch = "DirectSwitch"


class AnalogInputUpdate(BaseModel):
    mode: AnalogInputModeType = AnalogInputModeType.Voltage


class AnalogOutputUpdate(BaseModel):
    value: float
    mode: AnalogOutputModeType = AnalogOutputModeType.Voltage


class DigitalInputUpdate(BaseModel):
    counter: int
    counter_mode: DigitalInputCounterMode = DigitalInputCounterMode.Enabled
    mode: DigitalInputMode = DigitalInputMode.Simple
    debounce: int = 50


class DigitalOutputUpdate(BaseModel):
    pwm_freq: float
    pwm_duty: Annotated[int, Field(ge=0, le=100)]
    value: int


class LedUpdate(BaseModel):
    value: Annotated[int, Field(ge=0, le=1)]


class OWPowerUpdate(BaseModel):
    value: enum.IntEnum("OWPowerValue", {"OFF": 0, "ON": 1})  # type: ignore[valid-type]


class OWBusUpdate(BaseModel):
    interval: int = 10
    do_scan: bool = False
    do_reset: bool = False
    scan_interval: int = 60


class ModbusUpdate(BaseModel):
    value: float


CONTROLLER_UPDATES: dict[str, type[BaseModel]] = {
    "ai": AnalogInputUpdate,
    "ao": AnalogOutputUpdate,
    "di": DigitalInputUpdate,
    "do": DigitalOutputUpdate,
    "led": LedUpdate,
    "owpower": OWPowerUpdate,
    "owbus": OWBusUpdate,
    "register": ModbusUpdate,
}


def pydantic_errors(exc: ValidationError, prefix: list[str | int]) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        item = error_item(err["type"], [*prefix, *err["loc"]], err["msg"], jsonable(err.get("input")))
        if "ctx" in err:
            item["ctx"] = jsonable(err["ctx"])
        out.append(item)
    return out


# Bodies validated from their JSON first: flat models (no unions besides None) whose accepted values do not
# depend on JSON versus Python input. Union bodies (ConfigBody) stay out: their member choice could differ.
JSON_FAST_PATH: frozenset[Any] = frozenset({SensorControlUpdate})


def parse_json_body(raw: bytes, content_type: str | None) -> tuple[Any, list[dict[str, Any]]]:
    """The request body as FastAPI sees it: MISSING when empty, a decode error item when not JSON."""
    if not raw:
        return MISSING, []
    if content_type and "json" not in content_type.split(";")[0].lower():
        # FastAPI hands a non-JSON body to the model as bytes, which no model accepts.
        return raw.decode("utf-8", "replace"), []
    try:
        return json.loads(raw), []
    except json.JSONDecodeError as exc:
        return MISSING, [error_item("json_invalid", ["body", exc.pos], "JSON decode error", {}, {"error": exc.msg})]
    except UnicodeDecodeError as exc:
        return MISSING, [error_item("json_invalid", ["body", 0], "JSON decode error", {}, {"error": str(exc)})]
    except RecursionError as exc:
        raise BodyUnparsable(str(exc)) from None


def validate_body(
    adapter: TypeAdapter[Any] | type[BaseModel], raw: bytes, content_type: str | None
) -> tuple[Any, list[dict[str, Any]]]:
    """Validate a required JSON body; returns (value, errors) with errors in FastAPI's shape."""
    if adapter in JSON_FAST_PATH and raw and (not content_type or "json" in content_type.split(";")[0].lower()):
        # A body that validates straight from its JSON needs no Python detour; anything it refuses
        # (bad JSON, NaN, non-UTF-8, invalid fields) takes the path below, which words the errors.
        try:
            return adapter.model_validate_json(raw), []  # type: ignore[union-attr]
        except ValidationError:
            pass
    data, errors = parse_json_body(raw, content_type)
    if errors:
        return None, errors
    if data is MISSING:
        return None, [error_item("missing", ["body"], "Field required", None)]
    # FastAPI validates bodies with from_attributes, hence model_attributes_type for non-objects.
    try:
        if isinstance(adapter, TypeAdapter):
            return adapter.validate_python(data, from_attributes=True), []
        return adapter.model_validate(data, from_attributes=True), []
    except ValidationError as exc:
        return None, pydantic_errors(exc, ["body"])
