"""Segmentation accuracy metrics.

Overlap (Dice, precision, recall, false-positive and false-negative rates), boundary distances
in millimetres (mean symmetric boundary distance, Hausdorff), and the RV insertion-angle error.

Conventions (as in Xue et al. 2020): the false-positive rate is ``FP / |reference|`` and the
false-negative rate ``FN / |reference|``; precision ``TP / |prediction|``; recall
``TP / |reference|``. Boundaries are the pixels of a mask that touch the outside
(4-connectivity); distances between boundary pixel centres use the pixel spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf.errors import ValidationError


def _pair(pred: ArrayLike, ref: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    p = np.asarray(pred)
    r = np.asarray(ref)
    if p.shape != r.shape:
        raise ValidationError(f"prediction: expected the reference's shape {r.shape}, found {p.shape}")
    if p.ndim == 0:
        raise ValidationError("prediction: expected a mask array, found a scalar")
    return p.astype(bool), r.astype(bool)


def dice(pred: ArrayLike, ref: ArrayLike) -> float:
    """Dice coefficient ``2 |P & R| / (|P| + |R|)`` of two boolean masks; 1.0 when both are empty."""
    p, r = _pair(pred, ref)
    denom = int(p.sum()) + int(r.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(p, r).sum()) / denom


@dataclass(frozen=True)
class OverlapMetrics:
    """Overlap of a predicted mask with a reference mask (fractions)."""

    dice: float
    false_positive_rate: float
    false_negative_rate: float
    precision: float
    recall: float


def overlap(pred: ArrayLike, ref: ArrayLike) -> OverlapMetrics:
    """Dice, FP rate (FP/|R|), FN rate (FN/|R|), precision and recall; NaN where undefined."""
    p, r = _pair(pred, ref)
    tp = int(np.logical_and(p, r).sum())
    fp = int(np.logical_and(p, ~r).sum())
    fn = int(np.logical_and(~p, r).sum())
    n_ref, n_pred = tp + fn, tp + fp
    nan = float("nan")
    return OverlapMetrics(
        dice=dice(p, r),
        false_positive_rate=fp / n_ref if n_ref else nan,
        false_negative_rate=fn / n_ref if n_ref else nan,
        precision=tp / n_pred if n_pred else nan,
        recall=tp / n_ref if n_ref else nan,
    )


def _spacing(spacing_mm: ArrayLike, ndim: int) -> NDArray[np.float64]:
    s = np.asarray(spacing_mm, dtype=float).reshape(-1)
    if s.shape != (ndim,) or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise ValidationError(f"spacing_mm: expected {ndim} positive numbers, found {spacing_mm!r}")
    return s


def boundary(mask: ArrayLike) -> NDArray[np.bool_]:
    """Pixels of ``mask`` with at least one 4-neighbour outside it (image edges count as outside)."""
    m = np.asarray(mask, dtype=bool)
    eroded = ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(m.ndim, 1), border_value=0)
    return m & ~eroded


def _surface_distances(a: NDArray[np.bool_], b: NDArray[np.bool_], spacing: NDArray[np.float64]) -> NDArray[np.float64]:
    """Distance (mm) from every boundary pixel of ``a`` to the nearest boundary pixel of ``b``."""
    ba, bb = boundary(a), boundary(b)
    dist_to_b = ndimage.distance_transform_edt(~bb, sampling=spacing)
    return np.asarray(dist_to_b[ba], dtype=np.float64)


def boundary_distances(pred: ArrayLike, ref: ArrayLike, spacing_mm: ArrayLike) -> tuple[float, float]:
    """Mean symmetric boundary distance and Hausdorff distance, both in mm.

    Parameters
    ----------
    pred, ref : array_like of bool, same shape (y, x)
    spacing_mm : (dy, dx)

    Returns
    -------
    (mean_mm, hausdorff_mm) : floats; NaN when either mask is empty.
    """
    p, r = _pair(pred, ref)
    s = _spacing(spacing_mm, p.ndim)
    if not p.any() or not r.any():
        return float("nan"), float("nan")
    d_pr = _surface_distances(p, r, s)
    d_rp = _surface_distances(r, p, s)
    both = np.concatenate([d_pr, d_rp])
    return float(both.mean()), float(max(d_pr.max(), d_rp.max()))


def surface_distances_mm(pred: ArrayLike, ref: ArrayLike, spacing_mm: ArrayLike) -> tuple[float, float, float]:
    """Mean symmetric surface distance, 95th-percentile and maximum Hausdorff distance, mm.

    The 95 % Hausdorff distance is the 95th percentile of the pooled boundary-to-boundary
    distances of both directions (as MONAI's ``compute_hausdorff_distance(percentile=95)`` per
    direction, taking the larger); NaN when either mask is empty.
    """
    p, r = _pair(pred, ref)
    s = _spacing(spacing_mm, p.ndim)
    if not p.any() or not r.any():
        return float("nan"), float("nan"), float("nan")
    d_pr = _surface_distances(p, r, s)
    d_rp = _surface_distances(r, p, s)
    hd95 = max(float(np.percentile(d_pr, 95)), float(np.percentile(d_rp, 95)))
    return float(np.concatenate([d_pr, d_rp]).mean()), hd95, float(max(d_pr.max(), d_rp.max()))


def angle_about(point_yx: ArrayLike, centre_yx: ArrayLike, spacing_mm: ArrayLike) -> float:
    """Angle (degrees, in (-180, 180]) of a point about a centre in physical in-plane coordinates.

    Measured from the +x (column) axis towards +y (rows), in mm so anisotropic pixels are handled.
    """
    p = np.asarray(point_yx, dtype=float)
    c = np.asarray(centre_yx, dtype=float)
    s = _spacing(spacing_mm, 2)
    if p.shape != (2,) or c.shape != (2,):
        raise ValidationError(f"point_yx, centre_yx: expected (y, x) pairs, found {p.shape} and {c.shape}")
    d = (p - c) * s
    return math.degrees(math.atan2(d[0], d[1]))


def angle_difference_deg(a_deg: float, b_deg: float) -> float:
    """Absolute difference of two angles on the circle, in [0, 180] degrees."""
    d = (float(a_deg) - float(b_deg) + 180.0) % 360.0 - 180.0
    return abs(d)


def insertion_angle_error(
    pred_point_yx: ArrayLike, ref_point_yx: ArrayLike, lv_centre_yx: ArrayLike, spacing_mm: ArrayLike
) -> float:
    """Angle (degrees) between predicted and reference insertion points seen from the LV centre."""
    return angle_difference_deg(
        angle_about(pred_point_yx, lv_centre_yx, spacing_mm), angle_about(ref_point_yx, lv_centre_yx, spacing_mm)
    )


def lv_centre(labels: ArrayLike, lv_label: int = 1) -> tuple[float, float]:
    """Centroid ``(y, x)`` in pixels of the LV blood pool of a label map; raises when it is empty."""
    lab = np.asarray(labels)
    m = lab == lv_label
    if not m.any():
        raise ValidationError(f"labels: expected an LV blood pool (label {lv_label}), found none")
    cy, cx = ndimage.center_of_mass(m)
    return float(cy), float(cx)


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class overlap and boundary scores of one label map against a reference."""

    label: int
    overlap: OverlapMetrics
    mean_boundary_mm: float
    hausdorff_mm: float


def score_labels(pred: ArrayLike, ref: ArrayLike, spacing_mm: ArrayLike, label: int) -> SegmentationScores:
    """Overlap and boundary metrics of one class of two label maps (y, x)."""
    p = np.asarray(pred) == label
    r = np.asarray(ref) == label
    mean_mm, hd_mm = boundary_distances(p, r, spacing_mm)
    return SegmentationScores(label, overlap(p, r), mean_mm, hd_mm)
