"""Moving labels and points between the corrected series and the acquired frames."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf.errors import ValidationError, describe
from qperf.motion.fields import sample_field, warp_labels

if TYPE_CHECKING:
    from qperf.motion.driver import MotionResult


def _check_result(result: object) -> MotionResult:
    from qperf.motion.driver import MotionResult

    if not isinstance(result, MotionResult):
        raise ValidationError(f"result: expected the MotionResult of motion.correct_series, found {describe(result)}")
    return result


def labels_to_original(labels_corrected: ArrayLike, result: MotionResult) -> NDArray[np.int16]:
    """Map labels drawn on the corrected series onto every acquired (moving) frame.

    Parameters
    ----------
    labels_corrected : array_like of int, shape (y, x) or (t, y, x)
        One label map for the whole corrected series, or one per frame.
    result : MotionResult

    Returns
    -------
    ndarray, int16, shape (t, y, x)
        ``out[t](q) = labels[t](q + inverse_px[t, :, q])``, nearest neighbour.
    """
    result = _check_result(result)
    lab = np.asarray(labels_corrected)
    t, _, ny, nx = result.inverse_px.shape
    if lab.shape not in ((ny, nx), (t, ny, nx)):
        raise ValidationError(
            f"labels_corrected: expected shape ({ny}, {nx}) or ({t}, {ny}, {nx}), found {describe(labels_corrected)}"
        )
    if lab.ndim == 2:
        lab = np.broadcast_to(lab, (t, ny, nx))
    return warp_labels(lab, result.inverse_px)


def labels_to_corrected(labels_original_frame: ArrayLike, frame_index: int, result: MotionResult) -> NDArray[np.int16]:
    """Map a label map drawn on one acquired frame into the corrected (key-frame) geometry.

    Parameters
    ----------
    labels_original_frame : array_like of int, shape (y, x)
    frame_index : int
        The frame it was drawn on (index into all frames, PD included).
    result : MotionResult

    Returns
    -------
    ndarray, int16, shape (y, x)
        ``out(p) = labels(p + forward_px[frame_index, :, p])``, nearest neighbour.
    """
    result = _check_result(result)
    t, _, ny, nx = result.forward_px.shape
    lab = np.asarray(labels_original_frame)
    if lab.shape != (ny, nx):
        raise ValidationError(
            f"labels_original_frame: expected shape ({ny}, {nx}), found {describe(labels_original_frame)}"
        )
    if not isinstance(frame_index, (int, np.integer)) or not -t <= frame_index < t:
        raise ValidationError(f"frame_index: expected an integer in [0, {t - 1}], found {frame_index!r}")
    return warp_labels(lab[None], result.forward_px[frame_index][None])[0]


def points_to_original(points_yx: ArrayLike, result: MotionResult) -> NDArray[np.float32]:
    """Positions in every acquired frame of points marked on the corrected series.

    Parameters
    ----------
    points_yx : array_like, shape (n, 2)
        (row, column) pixel coordinates in the corrected series (e.g. RV insertion points).
    result : MotionResult

    Returns
    -------
    ndarray, float32, shape (t, n, 2)
        ``q = p + forward_px[t, :, p]`` (bilinear), (row, column) per frame.
    """
    result = _check_result(result)
    pts = np.asarray(points_yx, dtype=np.float32)
    if pts.ndim == 1 and pts.shape == (2,):
        pts = pts[None]
    disp = sample_field(result.forward_px, pts)
    return (pts[None] + disp).astype(np.float32)


def labels_over_frames(labels_ref: ArrayLike, result: MotionResult | None, n_frames: int) -> NDArray[np.uint8]:
    """Reference-grid labels ``(y, x)`` on every acquired frame, ``(t, y, x)`` uint8.

    Without a motion result (a series that was not corrected) the map is repeated.
    """
    lab = np.asarray(labels_ref, dtype=np.uint8)
    if result is None:
        return np.repeat(lab[None], int(n_frames), axis=0)
    return np.asarray(labels_to_original(lab, result), dtype=np.uint8)


def point_over_frames(point_yx: ArrayLike, result: MotionResult | None, n_frames: int) -> NDArray[np.float64]:
    """A reference-grid point ``(y, x)`` on every acquired frame, ``(t, 2)`` float64 pixels."""
    point = np.asarray(point_yx, dtype=np.float64).reshape(1, 2)
    if result is None:
        return np.repeat(point, int(n_frames), axis=0)
    return np.asarray(points_to_original(point, result), dtype=np.float64)[:, 0, :]


def frame_labels_to_reference(
    labels_frame: ArrayLike, frame_index: int, result: MotionResult | None
) -> NDArray[np.uint8]:
    """Labels ``(y, x)`` drawn on acquired frame ``frame_index``, on the reference grid."""
    lab = np.asarray(labels_frame, dtype=np.uint8)
    if result is None:
        return lab.copy()
    return np.asarray(labels_to_corrected(lab, frame_index, result), dtype=np.uint8)


def frame_point_to_reference(point_yx: ArrayLike, frame_index: int, result: MotionResult | None) -> tuple[float, float]:
    """A point ``(y, x)`` placed on acquired frame ``frame_index``, in reference-grid pixels.

    The inverse of :func:`points_to_original` at that frame: ``p = q + inverse_px[frame](q)``.
    """
    point = np.asarray(point_yx, dtype=np.float64).reshape(1, 2)
    if result is None:
        return (float(point[0, 0]), float(point[0, 1]))
    result = _check_result(result)
    t = result.inverse_px.shape[0]
    if not isinstance(frame_index, (int, np.integer)) or not 0 <= frame_index < t:
        raise ValidationError(f"frame_index: expected an integer in [0, {t - 1}], found {frame_index!r}")
    moved = (
        point[0]
        + np.asarray(sample_field(result.inverse_px[frame_index : frame_index + 1], point), dtype=np.float64)[0, 0]
    )
    return (float(moved[0]), float(moved[1]))
