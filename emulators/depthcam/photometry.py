"""What a sensor's control values do to the picture: exposure, ISO, tone, colour, noise and focus.

Tone controls are folded into one 256-entry lookup table per channel, so a frame costs one gather
plus noise; blur is a separable box filter, applied only when manual focus is off the sharp position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

REFERENCE_EXPOSURE = 10_000 * 400  # 10 ms at ISO 400 ...
REFERENCE_MEAN = 110.0  # ... gives a mean level of about 110
AE_TARGET = 118.0
AE_ISO = 400
SHARP_LENS_POSITION = 0.55


@dataclass
class ExposureState:
    """Auto-exposure memory of one stream: the gain held while ``auto_exposure_lock`` is set."""

    locked_gain: float | None = None


@dataclass
class Sensor:
    colour: bool
    autofocus: bool
    seed: int  # device, stream: noise differs per stream and frame but is reproducible
    exposure: ExposureState = field(default_factory=ExposureState)


def exposure_gain(control: dict[str, Any], mean_albedo: float, exposure: ExposureState) -> tuple[float, int]:
    """Multiplier from albedo (0..1) to 8-bit level, and the effective ISO (for noise)."""
    mean_albedo = max(mean_albedo, 1e-3)
    if not control["auto_exposure_enable"]:
        exposure.locked_gain = None
        product = control["exposure_time"] * control["sensitivity_iso"]
        return REFERENCE_MEAN / mean_albedo * product / REFERENCE_EXPOSURE, int(control["sensitivity_iso"])
    if control["auto_exposure_lock"] and exposure.locked_gain is not None:
        return exposure.locked_gain, AE_ISO
    target = AE_TARGET * 2.0 ** (control["auto_exposure_compensation"] / 6.0)
    gain = target / mean_albedo
    limit = control["auto_exposure_limit"]
    needed_us = target / REFERENCE_MEAN * REFERENCE_EXPOSURE / AE_ISO
    if limit > 0 and needed_us > limit:
        gain *= limit / needed_us
    exposure.locked_gain = gain if control["auto_exposure_lock"] else None
    return gain, AE_ISO


def white_balance(control: dict[str, Any]) -> tuple[float, float, float]:
    """Per-channel gains: manual white balance below 6500 K looks bluish, above it warm."""
    if control["auto_whitebalance_mode"] != "OFF":
        return 1.0, 1.0, 1.0
    shift = float(np.clip((control["manual_whitebalance"] - 6500) / 5500, -1.0, 1.0))
    return 1.0 + 0.25 * shift, 1.0, 1.0 - 0.25 * shift


def tone_luts(control: dict[str, Any], gain: float, channels: int, flood: float = 0.0) -> np.ndarray:
    """channels x 256 uint8: albedo level -> output level with exposure, WB, brightness and contrast."""
    levels = np.arange(256, dtype=np.float32) / 255.0
    wb = white_balance(control) if channels == 3 else (1.0,)
    out = np.empty((channels, 256), dtype=np.uint8)
    contrast = 1.0 + 0.05 * control["contrast"]
    for c in range(channels):
        value = levels * gain * wb[c] * (1.0 + flood) + 8.0 * control["brightness"]
        value = (value - 128.0) * contrast + 128.0
        out[c] = np.clip(np.round(value), 0, 255).astype(np.uint8)
    return out


@lru_cache(maxsize=8)
def _noise_field(height: int, width: int, seed: int) -> np.ndarray:
    """A unit-sigma noise field a little larger than the frame; frames take shifted windows of it."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((height + 64, width + 64), dtype=np.float32)


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable box blur of ``radius`` pixels (edges clamped), via cumulative sums."""
    out = image.astype(np.float32)
    size = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        padded = np.pad(out, pad, mode="edge")
        summed = np.cumsum(padded, axis=axis, dtype=np.float32)
        hi = np.take(summed, np.arange(size, summed.shape[axis]), axis=axis)
        lo = np.take(summed, np.arange(0, summed.shape[axis] - size), axis=axis)
        out = (hi - lo) / size
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def blur_radius(control: dict[str, Any], width: int, autofocus: bool) -> float:
    """Defocus in pixels: only an AF sensor in manual focus (mode OFF) away from the sharp lens position."""
    focus = control.get("focus")
    if not autofocus or not focus or focus["auto_focus_mode"] != "OFF":
        return 0.0
    return 12.0 * abs(float(focus["lens_position"]) - SHARP_LENS_POSITION) * width / 1920.0


def develop(
    albedo: np.ndarray,
    control: dict[str, Any],
    sensor: Sensor,
    *,
    mean_albedo: float,
    frame_index: int,
    ir: dict[str, float] | None = None,
    noise: bool = True,
) -> np.ndarray:
    """Turn rendered albedo into the sensor's 8-bit picture under the given control values."""
    channels = 3 if albedo.ndim == 3 else 1
    flood = float(ir["flood_light"]) if ir and channels == 1 else 0.0
    gain, iso = exposure_gain(control, mean_albedo, sensor.exposure)
    if channels == 3 and control["saturation"]:
        grey = albedo.astype(np.float32).mean(axis=2, keepdims=True)
        scale = 1.0 + 0.1 * control["saturation"]
        albedo = np.clip(grey + (albedo - grey) * scale, 0, 255).astype(np.uint8)
    luts = tone_luts(control, gain, channels, flood)
    if channels == 3:
        image = np.empty_like(albedo)
        for c in range(3):
            image[..., c] = luts[c][albedo[..., c]]
    else:
        image = luts[0][albedo]
    sigma = 0.5 * iso / 100.0 / (1 + control["luma_denoise"])
    height, width = image.shape[:2]
    if noise and sigma >= 0.5:
        noise_field = _noise_field(height, width, sensor.seed)
        oy, ox = (frame_index * 37) % 64, (frame_index * 61) % 64
        window = noise_field[oy : oy + height, ox : ox + width] * sigma
        if channels == 3:
            window = window[..., None]
        image = np.clip(image + window, 0, 255).astype(np.uint8)
    if noise and ir and channels == 1 and ir.get("dot_projector", 0.0) > 0:
        image = np.maximum(image, (_dot_pattern(height, width) * (80 * ir["dot_projector"])).astype(np.uint8))
    radius = round(blur_radius(control, width, sensor.autofocus))
    if radius >= 1:
        image = _box_blur(image, radius)
    return image


NOISE_VARIANTS = 4


class StreamDeveloper:
    """Develops one stream's frames cheaply: the static scene is developed once per control state (in a few
    noise variants) and each frame only pastes the moving box; manual defocus takes the full path."""

    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self._key: str | None = None
        self._variants: dict[int, np.ndarray] = {}

    def develop(
        self, renderer: Any, t: float, control: dict[str, Any], frame_index: int, ir: dict[str, float] | None
    ) -> np.ndarray:
        width = renderer.view.width
        if blur_radius(control, width, self.sensor.autofocus) >= 0.5:
            rendered = renderer.render(t)
            return develop(
                rendered.albedo, control, self.sensor, mean_albedo=renderer.mean_albedo, frame_index=frame_index, ir=ir
            )
        key = json.dumps([control, ir], sort_keys=True)
        if key != self._key:
            self._key, self._variants = key, {}
        variant = frame_index % NOISE_VARIANTS
        if variant not in self._variants:
            self._variants[variant] = develop(
                renderer.static_albedo,
                control,
                self.sensor,
                mean_albedo=renderer.mean_albedo,
                frame_index=variant,
                ir=ir,
            )
        image = self._variants[variant].copy()
        patch = renderer.moving_patch(t)
        if patch is not None:
            (c0, c1, r0, r1), albedo, mask = patch
            developed = develop(
                albedo,
                control,
                self.sensor,
                mean_albedo=renderer.mean_albedo,
                frame_index=frame_index,
                ir=ir,
                noise=False,
            )
            image[r0:r1, c0:c1][mask] = developed[mask]
        return image


@lru_cache(maxsize=4)
def _dot_pattern(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(9282)
    dots = np.zeros((height, width), dtype=np.float32)
    count = height * width // 200
    dots[rng.integers(0, height, count), rng.integers(0, width, count)] = 1.0
    return dots
