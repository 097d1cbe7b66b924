"""The synthetic stereo scene every camera of the rig sees: floor, wall and four boxes, one moving.

World axes are OpenCV's (X right, Y down, Z forward), in metres, origin at the colour camera. Each camera
is a pinhole at (position_x, 0, 0) looking down +Z, so two views of the same scene differ by exactly the
stereo disparity f*B/Z. Static parts are ray-cast once per view; per frame only the moving box is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FLOOR_Y = 0.50  # the rig stands 0.5 m above the floor
WALL_Z = 6.00
CHECKER_M = 0.50
WALL_TILE_M = 0.25
MONO_FOCAL_400P = 441.25  # OV9282 focal length in pixels at 640x400
COLOR_HFOV_DEG = 69.0
MAX_DISPARITY = 95


@dataclass(frozen=True)
class SceneObject:
    label: int
    z_front: float  # metres; the moving box's value is the mean of its path
    x_centre: float
    width: float
    height: float
    colour: tuple[int, int, int]
    moving: bool = False

    def z_at(self, t: float) -> float:
        """Front-face distance at capture time ``t`` (seconds since the epoch)."""
        if not self.moving:
            return self.z_front
        return 2.10 - 0.90 * math.cos(2.0 * math.pi * t / 8.0)


OBJECTS: tuple[SceneObject, ...] = (
    SceneObject(0, 1.50, -0.55, 0.40, 0.40, (200, 40, 40)),
    SceneObject(1, 2.50, +0.60, 0.30, 0.60, (40, 180, 60)),
    SceneObject(2, 4.00, -0.20, 0.80, 1.00, (50, 70, 210)),
    SceneObject(3, 2.10, +0.05, 0.30, 0.30, (230, 210, 40), moving=True),
)
STATIC_OBJECTS = tuple(o for o in OBJECTS if not o.moving)
MOVING_OBJECT = next(o for o in OBJECTS if o.moving)


def mono_focal(width: int) -> float:
    """OV9282 focal length in pixels for a frame ``width`` pixels wide (scaled from 441.25 px at 400P)."""
    return MONO_FOCAL_400P * width / 640.0


def color_focal(width: int) -> float:
    return (width / 2.0) / math.tan(math.radians(COLOR_HFOV_DEG / 2.0))


@dataclass(frozen=True)
class View:
    """One camera's image geometry: where it sits on the baseline, its size and focal length."""

    position_x: float
    width: int
    height: int
    focal: float
    colour: bool

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def cy(self) -> float:
        return self.height / 2.0

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Pixel coordinates (u, v) of a world point."""
        return self.cx + self.focal * (x - self.position_x) / z, self.cy + self.focal * y / z


@dataclass
class Rendered:
    albedo: np.ndarray  # uint8, HxWx3 (colour) or HxW (mono): what the scene reflects, before the sensor
    depth_m: np.ndarray  # float32 HxW, Z of the nearest surface


class ViewRenderer:
    """Ray-casts a view once (floor, wall, static boxes) and draws the moving box per frame."""

    def __init__(self, view: View) -> None:
        self.view = view
        u = (np.arange(view.width, dtype=np.float32) + 0.5 - view.cx) / view.focal  # ray dx per column
        v = (np.arange(view.height, dtype=np.float32) + 0.5 - view.cy) / view.focal  # ray dy per row
        self._dx, self._dy = u, v
        depth = np.full((view.height, view.width), WALL_Z, dtype=np.float32)
        floor_rows = v > FLOOR_Y / WALL_Z
        depth[floor_rows] = (FLOOR_Y / v[floor_rows])[:, None]
        world_x = view.position_x + depth * u[None, :]
        world_y = depth * v[:, None]
        on_floor = np.zeros_like(depth, dtype=bool)
        on_floor[floor_rows] = True
        checker = ((np.floor(world_x / CHECKER_M) + np.floor(depth / CHECKER_M)) % 2).astype(np.float32)
        floor_albedo = 0.30 + 0.35 * checker
        tile = np.floor(world_x / WALL_TILE_M) * 7919.0 + np.floor(world_y / WALL_TILE_M) * 104729.0
        wall_albedo = 0.30 + 0.45 * ((np.sin(tile) * 43758.5453) % 1.0)
        grey = np.where(on_floor, floor_albedo, wall_albedo)
        tint = np.where(on_floor[..., None], np.float32([1.0, 0.95, 0.85]), np.float32([0.85, 0.92, 1.0]))
        albedo = np.clip(grey[..., None] * tint * 255.0, 0, 255).astype(np.uint8)
        for obj in sorted(STATIC_OBJECTS, key=lambda o: -o.z_front):
            self._draw_box(albedo, depth, obj, obj.z_front)
        self.static_albedo = albedo if view.colour else _luma_u8(albedo)
        self.static_depth = depth
        # The mean scene albedo, which auto-exposure normalises against.
        self.mean_albedo = float(self.static_albedo.mean()) / 255.0

    def box_rect(self, obj: SceneObject, z: float) -> tuple[int, int, int, int] | None:
        """Pixel rectangle (col0, col1, row0, row1), end-exclusive, covered by a box's front face at ``z``."""
        xs = self.view.position_x + z * self._dx
        ys = z * self._dy
        cols = np.nonzero((xs >= obj.x_centre - obj.width / 2) & (xs <= obj.x_centre + obj.width / 2))[0]
        rows = np.nonzero((ys >= FLOOR_Y - obj.height) & (ys <= FLOOR_Y))[0]
        if cols.size == 0 or rows.size == 0:
            return None
        return int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1

    def _draw_box(self, albedo: np.ndarray, depth: np.ndarray, obj: SceneObject, z: float) -> None:
        rect = self.box_rect(obj, z)
        if rect is None:
            return
        c0, c1, r0, r1 = rect
        region = depth[r0:r1, c0:c1]
        nearer = region > z
        region[nearer] = z
        colour = np.array(obj.colour, dtype=np.uint8)
        if albedo.ndim == 2:
            colour = _luma_u8(colour[None, None, :])[0, 0]
        target = albedo[r0:r1, c0:c1]
        target[nearer] = colour
        # A darker frame around the face gives every box edges to focus and match on.
        border = max(1, (c1 - c0) // 12)
        edge = np.zeros_like(nearer)
        edge[:border, :] = edge[-border:, :] = True
        edge[:, :border] = edge[:, -border:] = True
        target[nearer & edge] = (target[nearer & edge] // 2).astype(np.uint8)

    def render(self, t: float) -> Rendered:
        albedo = self.static_albedo.copy()
        depth = self.static_depth.copy()
        self._draw_box(albedo, depth, MOVING_OBJECT, MOVING_OBJECT.z_at(t))
        return Rendered(albedo, depth)

    def moving_patch(self, t: float) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """The moving box alone: its pixel rectangle, albedo there, and where it is in front of the scene."""
        z = MOVING_OBJECT.z_at(t)
        rect = self.box_rect(MOVING_OBJECT, z)
        if rect is None:
            return None
        c0, c1, r0, r1 = rect
        albedo = self.static_albedo[r0:r1, c0:c1].copy()
        depth = self.static_depth[r0:r1, c0:c1].copy()
        shifted = ViewRenderer.__new__(ViewRenderer)
        shifted.view = self.view
        shifted._dx, shifted._dy = self._dx[c0:c1], self._dy[r0:r1]
        shifted._draw_box(albedo, depth, MOVING_OBJECT, z)
        return rect, albedo, depth < self.static_depth[r0:r1, c0:c1]

    def render_depth(self, t: float) -> np.ndarray:
        depth = self.static_depth.copy()
        scratch = np.empty(depth.shape, dtype=np.uint8)
        self._draw_box(scratch, depth, MOVING_OBJECT, MOVING_OBJECT.z_at(t))
        return depth


def _luma_u8(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(rgb.astype(np.float32) @ weights, 0, 255).astype(np.uint8)


@lru_cache(maxsize=32)
def renderer(view: View) -> ViewRenderer:
    """One renderer per view geometry, shared by every stream and viewer that needs it."""
    return ViewRenderer(view)


def depth_mm(depth_m: np.ndarray, focal: float, baseline_m: float) -> np.ndarray:
    """uint16 millimetres; 0 where stereo cannot measure (disparity above 95)."""
    disparity = focal * baseline_m / depth_m
    out = np.round(depth_m * 1000.0).astype(np.uint16)
    out[disparity > MAX_DISPARITY + 0.5] = 0
    return out


def disparity_u8(depth_m: np.ndarray, focal: float, baseline_m: float) -> np.ndarray:
    """8-bit disparity round(f*B/Z) in 0..95; 0 (invalid) where the surface is too close."""
    disparity = np.round(focal * baseline_m / depth_m)
    disparity[disparity > MAX_DISPARITY] = 0
    return disparity.astype(np.uint8)


@dataclass(frozen=True)
class Detection:
    label: int
    coords: tuple[float, float, float, float]  # normalised xmin, ymin, xmax, ymax
    spatial_mm: tuple[float, float, float]  # front-face centre relative to the camera


def detections(view: View, t: float) -> list[Detection]:
    """Every box whose front face projects into the view, with its ground-truth position."""
    out = []
    for obj in OBJECTS:
        z = obj.z_at(t)
        u0, v0 = view.project(obj.x_centre - obj.width / 2, FLOOR_Y - obj.height, z)
        u1, v1 = view.project(obj.x_centre + obj.width / 2, FLOOR_Y, z)
        box = (u0 / view.width, v0 / view.height, u1 / view.width, v1 / view.height)
        clipped = tuple(min(1.0, max(0.0, c)) for c in box)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            continue
        centre_y = FLOOR_Y - obj.height / 2
        spatial = ((obj.x_centre - view.position_x) * 1000.0, centre_y * 1000.0, z * 1000.0)
        out.append(Detection(obj.label, clipped, spatial))  # type: ignore[arg-type]
    return out
