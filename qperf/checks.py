"""Checks of numbers that can be read but cannot be right: data, AIF curves, points.

The readers check types and ranges of what a file records (:mod:`qperf.io.schema`); these
functions check what the numbers mean, at the entry of the steps that use them (the one-click
analysis, ``qperf segment``, ``moco``, ``flowmap``, ``aif-detect``, training and evaluation):

- a series whose values are all equal (all zero included) holds no image and is refused;
  a series that does not enhance (no pixel's curve rises above 5 % of the image's intensity,
  or 0.05 mmol/L in Gd) gets a warning;
- an AIF curve must enhance and peak within a physiological range: see :data:`AIF_PEAK_GD_MMOL_L`
  and :data:`AIF_PEAK_ENHANCEMENT`; beyond :data:`AIF_PEAK_LIMIT_GD_MMOL_L` it is refused;
- points (RV insertion points) must lie inside the image.

A warning is a :class:`~qperf.errors.QPerfWarning` (the command line prints it as
``qperf <command>: warning: ...``) and the same text goes into the outputs' QC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from qperf.errors import ValidationError, warn
from qperf.types import AifCurve, PerfusionSeries

__all__ = [
    "AIF_PEAK_ENHANCEMENT",
    "AIF_PEAK_GD_MMOL_L",
    "AIF_PEAK_LIMIT_GD_MMOL_L",
    "check_aif",
    "check_point_yx",
    "check_series",
    "series_problem",
]

#: Physiological range of the peak of a first-pass arterial input in whole blood, mmol/L: from
#: half-dose first passes (about 2-4 mmol/L at 0.025-0.05 mmol/kg) to double dose (about 15-20
#: mmol/L at 0.1-0.2 mmol/kg); dual-sequence studies report 3-15 mmol/L. A plasma curve's range
#: is this divided by (1 - hematocrit). Outside it the AIF is used, with a warning.
AIF_PEAK_GD_MMOL_L = (1.0, 25.0)
#: Above this (a fifth of the contrast agent's strength in the vial) a curve is not a blood
#: concentration in mmol/L: it is refused.
AIF_PEAK_LIMIT_GD_MMOL_L = 100.0
#: Physiological range of the peak of an AIF in signal units over its baseline (peak / baseline):
#: the LV blood pool of dual-sequence AIF images brightens 3-10 times; below 1.5 or above 50
#: the curve is used with a warning. A curve that does not rise 5 % above its baseline (or whose
#: baseline is not positive) has no enhancement and is refused.
AIF_PEAK_ENHANCEMENT = (1.5, 50.0)
#: A series enhances when some pixel's curve (smoothed over 3 frames) rises by this share of
#: the image's intensity (99th percentile of the temporal median), or by 0.05 mmol/L in Gd.
SERIES_ENHANCEMENT = 0.05
SERIES_ENHANCEMENT_GD_MMOL_L = 0.05


def series_problem(series: PerfusionSeries) -> str | None:
    """Why the values of a series cannot be an image (all equal), or None."""
    data = series.data
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        what = "every value is 0" if lo == 0 else f"every value is {lo:g}"
        return f"constant data ({what}); expected a perfusion series"
    return None


def _enhancement(series: PerfusionSeries) -> tuple[float, float]:
    """The largest rise of a pixel's smoothed curve (99.5th percentile over pixels) and the intensity scale."""
    dyn = np.asarray(series.dynamic, dtype=np.float32)
    if dyn.shape[0] < 3:
        return float("inf"), 1.0
    smooth = ndimage.uniform_filter1d(dyn, size=3, axis=0, mode="nearest")
    rise = np.percentile(smooth.max(axis=0) - smooth.min(axis=0), 99.5)
    scale = float(np.percentile(np.abs(np.median(dyn, axis=0)), 99))
    return float(rise), scale


def check_series(series: PerfusionSeries, where: str) -> list[str]:
    """Refuse constant data; warn about (and return) a series that does not enhance.

    Raises
    ------
    ValidationError
        Every value of the series is the same.
    """
    problem = series_problem(series)
    if problem:
        raise ValidationError(f"{where}: {problem}")
    rise, scale = _enhancement(series)
    if series.units == "gd_mmol_l":
        flat = rise < SERIES_ENHANCEMENT_GD_MMOL_L
    else:
        flat = rise < SERIES_ENHANCEMENT * max(scale, 1e-12)
    if not flat:
        return []
    message = (
        f"{where}: no enhancement (no pixel's curve rises by {100 * SERIES_ENHANCEMENT:.0f} % of the image "
        "intensity); is the contrast in this series?"
    )
    warn(message)
    return [message]


def check_aif(aif: AifCurve, where: str, hematocrit: float = 0.42) -> list[str]:
    """Refuse an AIF curve that does not enhance or cannot be a concentration; warn outside the physiological range.

    Returns the warnings given.

    Raises
    ------
    ValidationError
        No enhancement, a non-positive baseline (signal), or a peak above
        :data:`AIF_PEAK_LIMIT_GD_MMOL_L` (Gd).
    """
    values = np.asarray(aif.values, dtype=float)
    peak = float(values.max())
    baseline = float(np.median(values[: max(1, min(3, values.size // 4))]))
    if aif.units == "signal":
        if baseline <= 0 or peak < 1.05 * baseline:
            raise ValidationError(
                f"{where}: no enhancement (peak {peak:.4g} over a baseline of {baseline:.4g} signal units); "
                "expected an arterial input that rises above a positive baseline"
            )
        low, high = AIF_PEAK_ENHANCEMENT
        ratio = peak / baseline
        if low <= ratio <= high:
            return []
        message = f"{where}: AIF peak {ratio:.3g} times its baseline, outside the physiological range {low:g}-{high:g}"
    else:
        limit = AIF_PEAK_LIMIT_GD_MMOL_L
        scale = 1.0 / (1.0 - hematocrit) if aif.kind == "plasma" else 1.0
        if peak < 0.1 or peak - baseline < 0.1:
            raise ValidationError(
                f"{where}: no enhancement (peak {peak:.4g} mmol/L, baseline {baseline:.4g} mmol/L); "
                "expected a first-pass arterial input rising above 0.1 mmol/L"
            )
        if peak > limit * scale:
            raise ValidationError(
                f"{where}: AIF peak {peak:.4g} mmol/L is not a blood concentration (expected at most "
                f"{limit * scale:g} mmol/L; physiological {AIF_PEAK_GD_MMOL_L[0] * scale:g}-"
                f"{AIF_PEAK_GD_MMOL_L[1] * scale:.3g}); are the units mmol/L?"
            )
        low, high = (v * scale for v in AIF_PEAK_GD_MMOL_L)
        if low <= peak <= high:
            return []
        message = (
            f"{where}: AIF peak {peak:.3g} mmol/L ({aif.kind}), outside the physiological range "
            f"{low:.3g}-{high:.3g} mmol/L"
        )
    warn(message)
    return [message]


def check_point_yx(point: Sequence[float] | Any, shape: tuple[int, int], where: str) -> tuple[float, float]:
    """A finite ``(y, x)`` point inside an image of ``shape`` (pixel centres from 0 to n - 1).

    Raises
    ------
    ValidationError
        Not two finite numbers, or outside the image.
    """
    try:
        y, x = (float(v) for v in point)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: expected a point (y, x) in pixels, found {point!r}") from None
    if not (np.isfinite(y) and np.isfinite(x)):
        raise ValidationError(f"{where}: expected a point (y, x) in pixels, found ({y}, {x})")
    ny, nx = shape
    if not (-0.5 <= y <= ny - 0.5 and -0.5 <= x <= nx - 0.5):
        raise ValidationError(
            f"{where}: point ({y:g}, {x:g}) lies outside the image of {ny} x {nx} pixels "
            f"(expected y from 0 to {ny - 1}, x from 0 to {nx - 1})"
        )
    return (y, x)
