"""Regions of a slice's label map that the workflow's steps use.

The flow fit covers the heart region; the delay is fitted on the myocardium out of reach of the
pools' ringing; the curves are smoothed within the myocardium away from blood; segment
statistics leave out the borders that share their area with blood or fat, and high outliers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from qperf.aha.stats import MIN_SEGMENT_PIXELS
from qperf.types import LABEL_BACKGROUND, LABEL_LV, LABEL_MYO, LABEL_RV

#: Margin (mm) around the heart that the flow fit covers.
FIT_MARGIN_MM = 8.0


def heart_region(
    labels: NDArray[Any], spacing_mm: tuple[float, float], margin_mm: float = FIT_MARGIN_MM
) -> NDArray[np.bool_]:
    """Blood pools and myocardium, dilated by ``margin_mm``: the pixels the flow fit covers."""
    heart = np.isin(labels, (LABEL_LV, LABEL_MYO, LABEL_RV))
    if not heart.any():
        return heart
    radius = (margin_mm / spacing_mm[0], margin_mm / spacing_mm[1])
    yy, xx = np.ogrid[-int(radius[0]) : int(radius[0]) + 1, -int(radius[1]) : int(radius[1]) + 1]
    disk = (yy / max(radius[0], 1e-6)) ** 2 + (xx / max(radius[1], 1e-6)) ** 2 <= 1.0
    return ndimage.binary_dilation(heart, structure=disk)


def away_from_blood(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """Myocardial pixels that do not touch a blood pool (LV or RV, 4-connected)."""
    blood = np.isin(labels, (LABEL_LV, LABEL_RV))
    return (labels == LABEL_MYO) & ~ndimage.binary_dilation(blood)


#: Most background pixels among its eight neighbours an epicardial border pixel may have to
#: top up a segment with too few pixels (:func:`statistics_mask`): a straight border, not a
#: corner sticking out of the wall.
MAX_BORDER_BACKGROUND = 3


def statistics_mask(
    labels: NDArray[Any], segments: NDArray[Any] | None = None, min_pixels: int = MIN_SEGMENT_PIXELS
) -> NDArray[np.bool_]:
    """Myocardial pixels whose values enter the segment statistics: away from blood, and away
    from the outside of the heart where the segment has pixels to spare.

    Both borders share their area with something else. At the blood border it is blood, whose
    concentration is many times the tissue's: on phantom studies
    (``benchmarks/bench_segment_pixels.py``, 16 studies with their true labels) the pixels that
    touch a pool (4-connected) read MBF 21-186 % above their truth, so they are always left
    out. At the epicardial border it is fat, lung or liver, which hardly enhance during the
    first pass: the flow is diluted, by 5-9 % where a border pixel has two or three background
    pixels among its eight neighbours (a straight border) and by 20 % with four or more (a
    corner sticking out). The pixels that touch the outside (4-connected) are left out too,
    except that with ``segments`` (AHA numbers, 0 elsewhere) a segment keeping fewer than
    ``min_pixels`` is topped up to ``min_pixels`` with its straight-border pixels (at most
    :data:`MAX_BORDER_BACKGROUND` background neighbours), least diluted first. On 6 phantom
    studies segmented by the network this kept 46 % of the myocardium instead of 41 % and left
    31 % of the segments under 10 pixels instead of 52 %; the median absolute segment error
    stayed 8.6 % (8.7 % before), the median signed error went from -2.4 % to -4.5 %.

    Parameters
    ----------
    labels : ndarray of int, (y, x)
        0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.
    segments : ndarray of int, (y, x), optional
        AHA segment numbers (0 outside).
    min_pixels : int
        The pixels a segment is topped up to (:data:`qperf.aha.MIN_SEGMENT_PIXELS`).

    Returns
    -------
    ndarray of bool, (y, x)
    """
    labels = np.asarray(labels)
    inner = away_from_blood(labels)
    outside = labels == LABEL_BACKGROUND
    mask = inner & ~ndimage.binary_dilation(outside)
    if segments is None:
        return mask
    segments = np.asarray(segments)
    diluted = ndimage.convolve(outside.astype(np.int16), np.ones((3, 3), dtype=np.int16), mode="constant").ravel()
    flat = mask.ravel()
    for segment in np.unique(segments[inner]):
        here = segments == segment
        missing = min_pixels - int(np.count_nonzero(mask & here))
        if segment == 0 or missing <= 0:
            continue
        border = np.flatnonzero(inner & here & ~mask)
        border = border[diluted[border] <= MAX_BORDER_BACKGROUND]
        flat[border[np.argsort(diluted[border], kind="stable")[:missing]]] = True
    return mask


#: Robust standard deviations above the slice median beyond which a pixel's MBF is an outlier.
OUTLIER_ROBUST_SD = 5.0
#: Floor of the robust SD, as a fraction of the median: the spread real tissue has (transmural
#: gradient, heterogeneity) even where noise is low.
OUTLIER_SD_FLOOR = 0.15


def _above_robust_range(values: NDArray[np.floating]) -> float:
    """The value above which a sample of MBF values counts as a high outlier (inf when too few)."""
    values = values[np.isfinite(values)]
    if values.size < 10:
        return float("inf")
    median = float(np.median(values))
    robust_sd = 1.4826 * float(np.median(np.abs(values - median)))
    return median + OUTLIER_ROBUST_SD * max(robust_sd, OUTLIER_SD_FLOOR * abs(median), 1e-6)


def high_outliers(
    mbf: NDArray[np.floating] | None, mask: NDArray[np.bool_], segments: NDArray[Any] | None = None
) -> NDArray[np.bool_]:
    """Pixels of ``mask`` whose MBF lies far above both the slice's and their own segment's.

    "Far above" is more than :data:`OUTLIER_ROBUST_SD` robust SDs above the median, the robust
    SD being 1.4826 times the median absolute deviation, at least :data:`OUTLIER_SD_FLOOR`
    times the median. Flow far above the rest of the myocardium comes from blood in the pixel
    (a label border a little inside a pool, the acquisition's point-spread function spreading
    the pool's bolus beyond the first pixel), read by the fit as a short transit at a high flow;
    on the real rest case such pixels (10 % of them, 3-10 ml/min/g against a median of 1.0)
    raised the slice mean by 30-60 %. Only the high side is cut: low flow is what an
    ischaemic segment shows. With ``segments`` (AHA numbers, 0 elsewhere) a pixel must also be
    far above the median of its own segment (segments of fewer than 10 pixels: the slice's test
    alone): a whole territory with a high flow, next to an ischaemic one that lowers the
    slice's median, is physiology, not blood.
    """
    out = np.zeros(mask.shape, dtype=bool)
    if mbf is None:
        return out
    mbf = np.asarray(mbf)
    with np.errstate(invalid="ignore"):
        out = mask & (mbf > _above_robust_range(mbf[mask]))
        if segments is not None:
            for segment in np.unique(segments[out]):
                inside = mask & (segments == segment)
                if np.count_nonzero(np.isfinite(mbf[inside])) >= 10:
                    out[inside] &= mbf[inside] > _above_robust_range(mbf[inside])
    return out


#: Pixels (Euclidean) from the nearest blood pool beyond which the myocardium fits the delay.
DELAY_BLOOD_DISTANCE_PX = 2.0
#: Fewest pixels that region needs; a thinner wall fits the delay on its inner myocardium.
DELAY_MIN_PIXELS = 20


def delay_region(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """The myocardium whose curves give a slice's delay: beyond the reach of the pools' ringing.

    A blood pool's bolus, many times brighter than the tissue, rings through the acquisition's
    point-spread function into the first two pixels around it (the dark-rim artefact): an
    early negative copy of the blood curve, which a later delay and a higher flow imitate. On
    phantoms with realistic resolution the inner myocardium (all pixels not touching a pool)
    chose 0.125-0.375 s for a tissue without delay and read flow 7-13 % high; the pixels more
    than :data:`DELAY_BLOOD_DISTANCE_PX` pixels from blood chose 0. Walls too thin to have
    :data:`DELAY_MIN_PIXELS` such pixels use the inner myocardium.
    """
    blood = np.isin(labels, (LABEL_LV, LABEL_RV))
    far = (np.asarray(labels) == LABEL_MYO) & (ndimage.distance_transform_edt(~blood) > DELAY_BLOOD_DISTANCE_PX)
    return far if np.count_nonzero(far) >= DELAY_MIN_PIXELS else inner_myocardium(labels)


def inner_myocardium(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """Myocardium away from the blood pools (all of it when that leaves nothing).

    The region the curves are smoothed within (and the delay is fitted on when the wall is
    thin): the pixels that touch a pool carry some of its blood curve, which smoothing would
    spread inwards.
    """
    inner = away_from_blood(labels)
    return inner if inner.any() else np.asarray(labels == LABEL_MYO)


def motion_region(labels: NDArray[Any]) -> NDArray[np.bool_] | None:
    """The heart (blood pools and myocardium) that motion correction registers, or None.

    The union over frames of labels given per frame ``(t, y, x)``; None (the whole image) when
    the labels have no heart.
    """
    heart = np.isin(np.asarray(labels), (LABEL_LV, LABEL_MYO, LABEL_RV))
    union = np.asarray(heart.any(axis=0) if heart.ndim == 3 else heart, dtype=bool)
    return union if union.any() else None
