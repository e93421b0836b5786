"""Sector frames and segment maps of single slices, transmural depth and layers.

See :mod:`qperf.aha` for the convention (angles, septal sense, sector boundaries); the angle and
orientation functions live in :mod:`qperf.aha.orientation` and are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf.aha.orientation import (
    anterior_angle_deg,
    as_point_yx,
    as_spacing_mm,
    image_angle_deg,
    lv_center_yx,
    septal_sense,
    septum_clockwise_from_rv,
    wrap_deg,
)
from qperf.aha.table import LAYER_ENDO, LAYER_EPI, LEVELS
from qperf.errors import ValidationError, describe
from qperf.types import LABEL_LV, LABEL_MYO, SliceGeometry

__all__ = [
    "SectorFrame",
    "SliceSectors",
    "analyse_slice",
    "anterior_angle_deg",
    "image_angle_deg",
    "insertion_angle_deg",
    "lv_center_yx",
    "myocardial_layers",
    "sector_frame",
    "segment_map",
    "septal_sense",
    "septum_clockwise_from_rv",
    "transmural_depth",
    "wrap_deg",
]


def _mask2d(name: str, value: Any) -> NDArray[np.bool_]:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValidationError(f"{name}: expected a (y, x) mask, found {describe(arr)}")
    return arr.astype(bool)


@dataclass(frozen=True)
class SectorFrame:
    """Where the AHA sectors of one slice start and which way they run.

    Attributes
    ----------
    center_yx : (float, float)
        LV centre in pixels.
    insertion_angle_deg : float
        Image angle of the anterior RV insertion point.
    sense : int
        +1 when the septum lies at increasing image angle from the insertion point
        (clockwise on screen), -1 otherwise.
    sense_source : str
        ``"geometry"`` or ``"override"``.
    anterior_angle_deg : float or None
        Image angle of the projected patient anterior (None without geometry).
    spacing_mm : (float, float)
    """

    center_yx: tuple[float, float]
    insertion_angle_deg: float
    sense: int
    sense_source: str
    anterior_angle_deg: float | None
    spacing_mm: tuple[float, float]

    @property
    def septum_clockwise(self) -> bool:
        return self.sense > 0

    @property
    def insertion_from_anterior_deg(self) -> float | None:
        """Angle from anterior to the insertion point, positive towards the septum.

        About +30 degrees in a standard heart (the insertion point bounds the anterior segment);
        far outside 0 to 90 suggests a wrong insertion point or orientation.
        """
        if self.anterior_angle_deg is None:
            return None
        return float(wrap_deg(self.sense * (self.insertion_angle_deg - self.anterior_angle_deg)))

    def relative_angle_deg(self, y: ArrayLike, x: ArrayLike) -> NDArray[np.float64]:
        """Angle in ``[0, 360)`` from the insertion point towards the septum, for pixels ``(y, x)``."""
        a = image_angle_deg(
            np.stack(np.broadcast_arrays(np.asarray(y, float), np.asarray(x, float)), axis=-1),
            self.center_yx,
            self.spacing_mm,
        )
        return np.asarray((self.sense * (a - self.insertion_angle_deg)) % 360.0, dtype=float)


def sector_frame(
    lv_center_yx: ArrayLike,
    insertion_yx: ArrayLike,
    *,
    spacing_mm: ArrayLike,
    geometry: SliceGeometry | None,
    septum_clockwise: bool | None = None,
) -> SectorFrame:
    """The sector frame of a slice from its LV centre, insertion point and geometry.

    Parameters
    ----------
    lv_center_yx, insertion_yx : array_like, shape (2,)
        LV centre and anterior RV insertion point, ``(y, x)`` in pixels.
    spacing_mm : (float, float)
        ``(dy, dx)`` in mm.
    geometry : SliceGeometry or None
        Slice orientation in LPS; gives the septal sense (:func:`septal_sense`).
    septum_clockwise : bool, optional
        States the sense explicitly (True: the septum lies clockwise from the insertion point
        on the image displayed with row 0 at the top); overrides the geometry. Required when
        ``geometry`` is None.

    Raises
    ------
    ValidationError
        Without geometry and without ``septum_clockwise``; when the insertion point coincides
        with the centre; for a slice whose geometry cannot tell the sense.
    """
    spacing = as_spacing_mm(spacing_mm)
    center = as_point_yx("lv_center_yx", lv_center_yx)
    ins = as_point_yx("insertion_yx", insertion_yx)
    if math.hypot((ins[0] - center[0]) * spacing[0], (ins[1] - center[1]) * spacing[1]) < 1e-6:
        raise ValidationError(f"insertion_yx: expected a point away from the LV centre {center}, found {ins}")
    anterior = None
    if geometry is not None:
        if not isinstance(geometry, SliceGeometry):
            raise ValidationError(f"geometry: expected a SliceGeometry or None, found {describe(geometry)}")
        try:
            anterior = anterior_angle_deg(geometry)
        except ValidationError:
            if septum_clockwise is None:
                raise
    if septum_clockwise is not None:
        sense, source = (1 if bool(septum_clockwise) else -1), "override"
    elif geometry is None:
        raise ValidationError(
            "geometry: expected a SliceGeometry to tell which way the septum lies, found None; "
            "pass septum_clockwise (for example from septum_clockwise_from_rv) to state it"
        )
    else:
        sense, source = septal_sense(geometry), "geometry"
    return SectorFrame(
        center_yx=center,
        insertion_angle_deg=float(image_angle_deg(ins, center, spacing)),
        sense=sense,
        sense_source=source,
        anterior_angle_deg=anterior,
        spacing_mm=spacing,
    )


def _segments_from_relative(rel_deg: NDArray[np.float64], level: str) -> NDArray[np.int16]:
    if level in ("basal", "mid"):
        k = np.floor(rel_deg / 60.0).astype(np.int64) % 6
        first = 1 if level == "basal" else 7
        return np.asarray(first + (k + 1) % 6, dtype=np.int16)
    k = np.floor(((rel_deg - 15.0) % 360.0) / 90.0).astype(np.int64) % 4
    return np.asarray(13 + (k + 1) % 4, dtype=np.int16)


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValidationError(f"level: expected one of {', '.join(LEVELS)}, found {level!r}")
    return level


def segment_map(
    myocardium_mask: ArrayLike,
    lv_center_yx: ArrayLike,
    insertion_yx: ArrayLike,
    level: str,
    *,
    spacing_mm: ArrayLike,
    geometry: SliceGeometry | None,
    septum_clockwise: bool | None = None,
) -> NDArray[np.int16]:
    """AHA segment numbers of the myocardial pixels of one slice.

    Parameters
    ----------
    myocardium_mask : array_like of bool, shape (y, x)
        LV myocardium.
    lv_center_yx : array_like, shape (2,)
        LV centre (blood-pool centroid, :func:`lv_center_yx`) in pixels.
    insertion_yx : array_like, shape (2,)
        Anterior RV insertion point in pixels (boundary of segments 1 and 2, 7 and 8).
    level : {"basal", "mid", "apical"}
    spacing_mm : (float, float)
        ``(dy, dx)`` in mm; angles are physical.
    geometry : SliceGeometry or None
        Gives the septal sense; see :func:`sector_frame`.
    septum_clockwise : bool, optional
        Explicit septal sense (required without geometry).

    Returns
    -------
    ndarray of int16, shape (y, x)
        1-6 (basal), 7-12 (mid) or 13-16 (apical) in the myocardium, 0 elsewhere.
    """
    myo = _mask2d("myocardium_mask", myocardium_mask)
    frame = sector_frame(
        lv_center_yx, insertion_yx, spacing_mm=spacing_mm, geometry=geometry, septum_clockwise=septum_clockwise
    )
    return _segment_map_from_frame(myo, frame, _check_level(level))


def _segment_map_from_frame(myo: NDArray[np.bool_], frame: SectorFrame, level: str) -> NDArray[np.int16]:
    out = np.zeros(myo.shape, dtype=np.int16)
    yy, xx = np.nonzero(myo)
    if yy.size:
        out[yy, xx] = _segments_from_relative(frame.relative_angle_deg(yy, xx), level)
    return out


def insertion_angle_deg(
    lv_center_yx: ArrayLike, insertion_yx: ArrayLike, *, spacing_mm: ArrayLike, geometry: SliceGeometry
) -> float:
    """Angle of the insertion point from the projected anterior, positive towards the septum."""
    frame = sector_frame(lv_center_yx, insertion_yx, spacing_mm=spacing_mm, geometry=geometry)
    value = frame.insertion_from_anterior_deg
    if value is None:  # pragma: no cover - geometry always gives an anterior angle here
        raise ValidationError("geometry: the anterior direction is not in the slice")
    return value


def transmural_depth(
    myocardium_mask: ArrayLike, blood_pool_mask: ArrayLike | None = None, *, spacing_mm: ArrayLike
) -> NDArray[np.float32]:
    """Normalised transmural depth of every myocardial pixel: 0 endocardium, 1 epicardium.

    ``depth = d_endo / (d_endo + d_epi)`` from the Euclidean distances (mm, pixel centres) to
    the nearest blood-pool pixel and to the nearest pixel outside myocardium and blood pool.

    Parameters
    ----------
    myocardium_mask : array_like of bool, shape (y, x)
    blood_pool_mask : array_like of bool, shape (y, x), optional
        LV blood pool; by default the region the myocardium encloses.
    spacing_mm : (float, float)

    Returns
    -------
    ndarray of float32, shape (y, x)
        Depth in (0, 1) in the myocardium, NaN elsewhere.
    """
    myo = _mask2d("myocardium_mask", myocardium_mask)
    spacing = as_spacing_mm(spacing_mm)
    if blood_pool_mask is None:
        pool = ndimage.binary_fill_holes(myo) & ~myo
    else:
        pool = _mask2d("blood_pool_mask", blood_pool_mask) & ~myo
        if pool.shape != myo.shape:
            raise ValidationError(f"blood_pool_mask: expected shape {myo.shape}, found {pool.shape}")
    out = np.full(myo.shape, np.nan, dtype=np.float32)
    if not myo.any():
        return out
    outside = ~(myo | pool)
    big = float(np.hypot(*np.multiply(myo.shape, spacing)))
    d_endo = ndimage.distance_transform_edt(~pool, sampling=spacing) if pool.any() else np.full(myo.shape, big)
    d_epi = ndimage.distance_transform_edt(~outside, sampling=spacing) if outside.any() else np.full(myo.shape, big)
    de, dp = d_endo[myo], d_epi[myo]
    out[myo] = (de / (de + dp)).astype(np.float32)
    return out


def myocardial_layers(depth: ArrayLike) -> NDArray[np.uint8]:
    """Endocardial (1, depth < 0.5) and epicardial (2, depth >= 0.5) halves; 0 outside."""
    d = np.asarray(depth, dtype=float)
    out = np.zeros(d.shape, dtype=np.uint8)
    finite = np.isfinite(d)
    out[finite & (d < 0.5)] = LAYER_ENDO
    out[finite & (d >= 0.5)] = LAYER_EPI
    return out


@dataclass(frozen=True, eq=False)
class SliceSectors:
    """AHA analysis of one slice: level, sector frame, segment map and layers.

    Attributes
    ----------
    level : str
    frame : SectorFrame
    insertion_yx : (float, float)
        Anterior RV insertion point in pixels.
    segments : ndarray of int16, shape (y, x)
        Segment numbers, 0 outside the myocardium.
    depth : ndarray of float32, shape (y, x)
        Normalised transmural depth (:func:`transmural_depth`), NaN outside.
    layers : ndarray of uint8, shape (y, x)
        1 endocardial half, 2 epicardial half, 0 outside.
    """

    level: str
    frame: SectorFrame
    insertion_yx: tuple[float, float]
    segments: NDArray[np.int16]
    depth: NDArray[np.float32]
    layers: NDArray[np.uint8]


def analyse_slice(
    labels: ArrayLike,
    insertion_yx: ArrayLike,
    level: str,
    *,
    spacing_mm: ArrayLike,
    geometry: SliceGeometry | None,
    septum_clockwise: bool | None = None,
    center_yx: ArrayLike | None = None,
) -> SliceSectors:
    """Segments and layers of one slice from its label map and anterior insertion point.

    Parameters
    ----------
    labels : array_like of int, shape (y, x)
        0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool.
    insertion_yx : array_like, shape (2,)
        Anterior RV insertion point ``(y, x)`` in pixels.
    level : {"basal", "mid", "apical"}
    spacing_mm : (float, float)
    geometry : SliceGeometry or None
    septum_clockwise : bool, optional
        Explicit septal sense, see :func:`sector_frame`.
    center_yx : array_like, shape (2,), optional
        LV centre; the blood-pool centroid by default.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ValidationError(f"labels: expected an integer (y, x) label map, found {describe(lab)}")
    myo = lab == LABEL_MYO
    if not myo.any():
        raise ValidationError("labels: expected LV myocardium (label 2), found none")
    center = lv_center_yx(lab) if center_yx is None else as_point_yx("center_yx", center_yx)
    frame = sector_frame(
        center, insertion_yx, spacing_mm=spacing_mm, geometry=geometry, septum_clockwise=septum_clockwise
    )
    pool = lab == LABEL_LV
    depth = transmural_depth(myo, pool if pool.any() else None, spacing_mm=frame.spacing_mm)
    return SliceSectors(
        level=_check_level(level),
        frame=frame,
        insertion_yx=as_point_yx("insertion_yx", insertion_yx),
        segments=_segment_map_from_frame(myo, frame, level),
        depth=depth,
        layers=myocardial_layers(depth),
    )
