"""Where a slice lies in patient space: :class:`SliceGeometry` and pixel <-> RAS conversions.

Physical space is DICOM patient space, LPS (x to the patient's left, y to posterior, z to
superior), in millimetres; :meth:`SliceGeometry.ijk_to_ras` gives Slicer's RAS. Pixel
coordinates are ``(y, x)`` (row, column) as everywhere in QPerf (:mod:`qperf.types`, which
re-exports these names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError, describe

__all__ = ["SliceGeometry", "direction_name", "ras_to_yx", "yx_to_ras"]


def _unit_vector(name: str, value: ArrayLike) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=float)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name}: expected 3 finite numbers, found {describe(value)}")
    norm = float(np.linalg.norm(arr))
    if not norm > 0:
        raise ValidationError(f"{name}: expected a non-zero direction, found {arr.tolist()}")
    arr = arr / norm
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class SliceGeometry:
    """Where a 2D slice lies in patient space (LPS, mm).

    Parameters
    ----------
    origin_mm : tuple of 3 float
        LPS position of the centre of pixel ``(y=0, x=0)`` (DICOM ImagePositionPatient).
    x_direction : tuple of 3 float
        Unit vector along which the column index ``x`` increases (first triplet of DICOM
        ImageOrientationPatient).
    y_direction : tuple of 3 float
        Unit vector along which the row index ``y`` increases (second triplet).
    slice_thickness_mm : float
        Nominal slice thickness, used as the third spacing when a 3D grid is needed.
    """

    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    x_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    y_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    slice_thickness_mm: float = 8.0

    def __post_init__(self) -> None:
        origin = np.asarray(self.origin_mm, dtype=float)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise ValidationError(f"geometry.origin_mm: expected 3 finite numbers, found {describe(self.origin_mm)}")
        xd = _unit_vector("geometry.x_direction", self.x_direction)
        yd = _unit_vector("geometry.y_direction", self.y_direction)
        if abs(float(np.dot(xd, yd))) > 1e-3:
            raise ValidationError(
                f"geometry: x_direction and y_direction must be orthogonal, found dot product {np.dot(xd, yd):.4f}"
            )
        if not (math.isfinite(self.slice_thickness_mm) and self.slice_thickness_mm > 0):
            raise ValidationError(
                f"geometry.slice_thickness_mm: expected a positive number, found {self.slice_thickness_mm!r}"
            )
        object.__setattr__(self, "origin_mm", tuple(float(v) for v in origin))
        object.__setattr__(self, "x_direction", xd)
        object.__setattr__(self, "y_direction", yd)
        object.__setattr__(self, "slice_thickness_mm", float(self.slice_thickness_mm))

    @property
    def normal(self) -> NDArray[np.float64]:
        """Slice normal, ``x_direction x y_direction`` (LPS unit vector)."""
        return np.cross(np.asarray(self.x_direction), np.asarray(self.y_direction))

    def ijk_to_lps(self, spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
        """4x4 matrix from voxel index ``(i=x, j=y, k=0)`` to LPS millimetres."""
        dy, dx = spacing_mm
        m = np.eye(4)
        m[:3, 0] = np.asarray(self.x_direction) * dx
        m[:3, 1] = np.asarray(self.y_direction) * dy
        m[:3, 2] = self.normal * self.slice_thickness_mm
        m[:3, 3] = self.origin_mm
        return m

    def ijk_to_ras(self, spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
        """4x4 matrix from voxel index ``(i=x, j=y, k=0)`` to Slicer's RAS millimetres."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps(spacing_mm)

    def pixel_to_lps(self, y: ArrayLike, x: ArrayLike, spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
        """LPS positions (..., 3) of (possibly fractional) pixel coordinates ``(y, x)``."""
        yy = np.asarray(y, dtype=float)[..., None]
        xx = np.asarray(x, dtype=float)[..., None]
        dy, dx = spacing_mm
        return (
            np.asarray(self.origin_mm) + xx * dx * np.asarray(self.x_direction) + yy * dy * np.asarray(self.y_direction)
        )

    @classmethod
    def from_ijk_to_lps(cls, matrix: ArrayLike) -> tuple[SliceGeometry, tuple[float, float]]:
        """Inverse of :meth:`ijk_to_lps`: geometry and ``(dy, dx)`` from a 4x4 (or 3x4) matrix."""
        m = np.asarray(matrix, dtype=float)
        if m.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(m)):
            raise ValidationError(f"ijk_to_lps: expected a finite 4x4 matrix, found {describe(matrix)}")
        dx = float(np.linalg.norm(m[:3, 0]))
        dy = float(np.linalg.norm(m[:3, 1]))
        dz = float(np.linalg.norm(m[:3, 2]))
        if not (dx > 0 and dy > 0):
            raise ValidationError("ijk_to_lps: in-plane spacing must be positive")
        geometry = cls(
            origin_mm=tuple(m[:3, 3]),  # type: ignore[arg-type]
            x_direction=tuple(m[:3, 0] / dx),  # type: ignore[arg-type]
            y_direction=tuple(m[:3, 1] / dy),  # type: ignore[arg-type]
            slice_thickness_mm=dz if dz > 0 else 8.0,
        )
        return geometry, (dy, dx)

    def describe(self) -> str:
        """One-line summary naming the anatomical directions of the image axes."""
        return (
            f"origin LPS ({', '.join(f'{v:.1f}' for v in self.origin_mm)}) mm, "
            f"x towards {direction_name(self.x_direction)}, y towards {direction_name(self.y_direction)}, "
            f"normal towards {direction_name(self.normal)}"
        )


def direction_name(vector: ArrayLike) -> str:
    """Anatomical name of an LPS direction, e.g. ``"L"`` or ``"P+S"`` for oblique ones."""
    v = np.asarray(vector, dtype=float)
    names = (("R", "L"), ("A", "P"), ("I", "S"))
    order = np.argsort(-np.abs(v))
    parts = [names[i][int(v[i] > 0)] for i in order if abs(v[i]) >= 0.3]
    return "+".join(parts) if parts else "?"


def yx_to_ras(ijk_to_ras: ArrayLike, point_yx: ArrayLike) -> NDArray[np.float64]:
    """RAS position (mm) of a (possibly fractional) pixel ``(y, x)`` of a slice (``k = 0``).

    Parameters
    ----------
    ijk_to_ras : array_like, shape (4, 4)
        The slice's IJK-to-RAS matrix (:meth:`PerfusionSeries.ijk_to_ras`); ``i`` is the
        column ``x``, ``j`` the row ``y``.
    point_yx : array_like, shape (2,)

    Returns
    -------
    ndarray, float64, shape (3,)
    """
    m = np.asarray(ijk_to_ras, dtype=float)
    y, x = (float(v) for v in np.asarray(point_yx, dtype=float).reshape(2))
    return (m @ np.array([x, y, 0.0, 1.0]))[:3]


def ras_to_yx(ijk_to_ras: ArrayLike, ras: ArrayLike) -> tuple[float, float]:
    """Pixel ``(y, x)`` of a RAS position (mm), projected onto the slice plane (the inverse of :func:`yx_to_ras`)."""
    m = np.asarray(ijk_to_ras, dtype=float)
    position = np.asarray(ras, dtype=float).reshape(-1)[:3]
    ijk = np.linalg.inv(m) @ np.array([*position, 1.0])
    return (float(ijk[1]), float(ijk[0]))
