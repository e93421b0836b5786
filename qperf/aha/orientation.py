"""Angles and orientation of a short-axis slice: image angles, anterior, septal sense, LV centre.

See :mod:`qperf.aha` for the convention; :mod:`qperf.aha.sectors` builds sector frames and
segment maps on these.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf.aha.table import ANTERIOR_LPS, APEX_DIRECTION_LPS, MIN_ANTERIOR_PROJECTION, MIN_AXIS_COSINE
from qperf.errors import ValidationError, describe
from qperf.types import LABEL_LV, LABEL_MYO, LABEL_RV, SliceGeometry

__all__ = [
    "anterior_angle_deg",
    "image_angle_deg",
    "lv_center_yx",
    "septal_sense",
    "septum_clockwise_from_rv",
    "wrap_deg",
]


def wrap_deg(angle_deg: ArrayLike) -> NDArray[np.float64]:
    """Angles wrapped to ``[-180, 180)`` degrees."""
    a = np.asarray(angle_deg, dtype=float)
    return np.asarray((a + 180.0) % 360.0 - 180.0, dtype=float)


def as_spacing_mm(spacing_mm: Any) -> tuple[float, float]:
    """``(dy, dx)`` in mm as two positive floats, or ValidationError naming ``spacing_mm``."""
    try:
        arr = np.asarray(spacing_mm, dtype=float).reshape(-1) if np.size(spacing_mm) == 2 else None
    except (TypeError, ValueError):
        arr = None
    if arr is None or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValidationError(f"spacing_mm: expected two positive numbers (dy, dx) in mm, found {describe(spacing_mm)}")
    return (float(arr[0]), float(arr[1]))


def as_point_yx(name: str, value: Any) -> tuple[float, float]:
    """A finite ``(y, x)`` pixel point, or ValidationError naming the parameter ``name``."""
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected a (y, x) point in pixels, found {describe(value)}") from exc
    if arr.shape != (2,) or not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name}: expected a finite (y, x) point in pixels, found {describe(value)}")
    return (float(arr[0]), float(arr[1]))


def image_angle_deg(points_yx: ArrayLike, center_yx: ArrayLike, spacing_mm: ArrayLike) -> NDArray[np.float64]:
    """Image angle of points about a centre, in physical millimetres.

    Parameters
    ----------
    points_yx : array_like, shape (..., 2)
        Pixel coordinates ``(y, x)``.
    center_yx : array_like, shape (2,)
        Centre ``(y, x)`` in pixels.
    spacing_mm : (float, float)
        ``(dy, dx)`` in mm.

    Returns
    -------
    ndarray of float64, shape (...)
        ``atan2((y - cy) dy, (x - cx) dx)`` in degrees, in ``[-180, 180]``; 0 along +x,
        increasing towards +y (clockwise on screen).
    """
    dy, dx = as_spacing_mm(spacing_mm)
    cy, cx = as_point_yx("center_yx", center_yx)
    p = np.asarray(points_yx, dtype=float)
    return np.degrees(np.arctan2((p[..., 0] - cy) * dy, (p[..., 1] - cx) * dx))


def anterior_angle_deg(geometry: SliceGeometry) -> float:
    """Image angle of the patient's anterior direction projected on the slice.

    Raises
    ------
    ValidationError
        When anterior is (almost) perpendicular to the slice, so it has no usable direction.
    """
    if not isinstance(geometry, SliceGeometry):
        raise ValidationError(f"geometry: expected a SliceGeometry, found {describe(geometry)}")
    a = np.asarray(ANTERIOR_LPS)
    u = float(np.dot(a, geometry.x_direction))
    v = float(np.dot(a, geometry.y_direction))
    if math.hypot(u, v) < MIN_ANTERIOR_PROJECTION:
        raise ValidationError(
            f"geometry: expected a slice containing the anterior direction (projection >= {MIN_ANTERIOR_PROJECTION}), "
            f"found projection {math.hypot(u, v):.3f} ({geometry.describe()})"
        )
    return math.degrees(math.atan2(v, u))


def septal_sense(geometry: SliceGeometry) -> int:
    """+1 when the septum is reached from anterior by increasing image angle, else -1.

    The sign of ``normal . apex`` (see the module notes): positive rotation about the apex
    direction takes anterior to septum, and image angles increase positively about the
    slice normal ``x_direction x y_direction``.

    Raises
    ------
    ValidationError
        When the slice normal is too far from the LV long axis to tell (not a short-axis slice).
    """
    if not isinstance(geometry, SliceGeometry):
        raise ValidationError(f"geometry: expected a SliceGeometry, found {describe(geometry)}")
    c = float(np.dot(geometry.normal, APEX_DIRECTION_LPS))
    if abs(c) < MIN_AXIS_COSINE:
        raise ValidationError(
            f"geometry: expected a short-axis slice (|normal . apex direction| >= {MIN_AXIS_COSINE}), "
            f"found {abs(c):.3f} ({geometry.describe()}); pass septum_clockwise to state the sense"
        )
    return 1 if c > 0 else -1


def septum_clockwise_from_rv(
    labels: ArrayLike, insertion_yx: ArrayLike, *, spacing_mm: ArrayLike, center_yx: ArrayLike | None = None
) -> bool:
    """Septal sense from anatomy: the side of the anterior insertion point where the RV lies.

    Parameters
    ----------
    labels : array_like of int, shape (y, x)
        Label map (1 LV blood pool, 2 LV myocardium, 3 RV blood pool).
    insertion_yx : array_like, shape (2,)
        Anterior RV insertion point ``(y, x)`` in pixels.
    spacing_mm : (float, float)
    center_yx : array_like, shape (2,), optional
        LV centre; the blood-pool centroid by default.

    Returns
    -------
    bool
        True when the RV centroid lies clockwise (increasing image angle) from the insertion
        point, the value to pass as ``septum_clockwise``.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValidationError(f"labels: expected a (y, x) label map, found {describe(lab)}")
    rv = np.argwhere(lab == LABEL_RV)
    if rv.size == 0:
        raise ValidationError("labels: expected an RV blood pool (label 3) to tell the septal side, found none")
    center = lv_center_yx(lab) if center_yx is None else as_point_yx("center_yx", center_yx)
    ins = image_angle_deg(as_point_yx("insertion_yx", insertion_yx), center, spacing_mm)
    rv_angle = image_angle_deg(rv.mean(axis=0), center, spacing_mm)
    return bool(wrap_deg(rv_angle - ins) > 0)


def lv_center_yx(labels: ArrayLike) -> tuple[float, float]:
    """Centroid ``(y, x)`` in pixels of the LV blood pool (label 1).

    Falls back to the centroid of the region enclosed by the myocardium (label 2) when the
    label map has no blood pool.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValidationError(f"labels: expected a (y, x) label map, found {describe(lab)}")
    pool = lab == LABEL_LV
    if not pool.any():
        myo = lab == LABEL_MYO
        pool = ndimage.binary_fill_holes(myo) if myo.any() else myo
        if not pool.any():
            raise ValidationError("labels: expected an LV blood pool (1) or myocardium (2), found neither")
    c = np.argwhere(pool).mean(axis=0)
    return (float(c[0]), float(c[1]))
