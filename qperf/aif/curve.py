"""Processing of arterial input curves: bolus landmarks, baseline, time grid, plasma, delay.

All functions take plain arrays (curves of shape ``(t,)`` or ``(..., t)``, times in seconds)
or :class:`~qperf.types.AifCurve` objects and return new arrays or curves; nothing is
modified in place.

The bolus landmarks follow the inline mapping pipeline: the upslope is where the
multi-scale smoothed gradient is largest, the foot is where that gradient, walking back
from the upslope, falls to a small fraction of its maximum, the peak is the first maximum
after the upslope and the valley the first minimum after the peak (the start of
recirculation).

References
----------
Xue H. et al., "Automatic in-line quantitative myocardial perfusion mapping: processing
algorithm and implementation", Magn Reson Med 2020;83:712-730.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage as ndi
from scipy.interpolate import CubicSpline

from qperf.errors import ValidationError, describe
from qperf.types import DEFAULT_HEMATOCRIT, AifCurve

#: Gaussian scales (in samples) whose normalised gradients are combined.
GRADIENT_SCALES: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
#: The foot is where the gradient falls below this fraction of its upslope maximum.
FOOT_GRADIENT_FRACTION = 0.1
#: A bolus must rise this many noise standard deviations above the baseline.
MIN_BOLUS_SNR = 6.0


@dataclass(frozen=True)
class BolusLandmarks:
    """Indices (into the curve) and times of the first-pass bolus landmarks.

    Attributes
    ----------
    foot, upslope, peak, valley : int
        Sample indices; ``valley`` is the last sample when no recirculation dip is seen.
    foot_s, peak_s, valley_s : float
        The same as times in seconds.
    baseline : float
        Mean of the samples before the foot (the first sample when the foot is sample 0).
    noise_sd : float
        Robust standard deviation of the sample-to-sample noise.
    peak_height : float
        Peak value minus baseline.
    """

    foot: int
    upslope: int
    peak: int
    valley: int
    foot_s: float
    peak_s: float
    valley_s: float
    baseline: float
    noise_sd: float
    peak_height: float


def _check_curve(name: str, values: ArrayLike, time_s: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] < 4:
        raise ValidationError(f"{name}.time_s: expected a 1D array of at least 4 times, found {describe(t)}")
    if v.shape[-1:] != t.shape:
        raise ValidationError(f"{name}: expected {t.shape[0]} samples (one per time), found shape {v.shape}")
    if not np.all(np.isfinite(t)) or not np.all(np.diff(t) > 0):
        raise ValidationError(f"{name}.time_s: expected finite, strictly increasing times")
    if not np.all(np.isfinite(v)):
        raise ValidationError(f"{name}: expected finite values, found NaN or infinity")
    return v, t


def noise_sd(values: ArrayLike) -> float:
    """Robust noise standard deviation of a curve from the median absolute first difference."""
    v = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return float(_noise_sd_rows(v)[0]) if v.shape[1] > 1 else 0.0


def multiscale_gradient(values: ArrayLike, scales: tuple[float, ...] = GRADIENT_SCALES) -> NDArray[np.float64]:
    """Mean over Gaussian scales (samples) of the smoothed gradient, each scaled to its maximum.

    Returns
    -------
    ndarray, shape (t,)
        Dimensionless, 1 where every scale peaks together.
    """
    v = np.asarray(values, dtype=np.float64)
    total = np.zeros_like(v)
    for sigma in scales:
        g = ndi.gaussian_filter1d(v, sigma, order=1, mode="nearest")
        top = float(np.max(g))
        if top > 0:
            total += g / top
    return total / len(scales)


def _first_rise_argmax(gradient: NDArray[np.float64]) -> int:
    """Index of the largest gradient of the first strong rise (ignores later recirculation)."""
    top = float(gradient.max())
    strong = np.flatnonzero(gradient >= 0.5 * top)
    start = int(strong[0])
    stop = start
    while stop + 1 < gradient.size and gradient[stop + 1] > 0:
        stop += 1
    return start + int(np.argmax(gradient[start : stop + 1]))


def _walk_to_foot(values: NDArray[np.float64], upslope: int) -> int:
    """Last baseline sample before the rise through ``upslope`` (finest-scale gradient)."""
    fine = ndi.gaussian_filter1d(values, GRADIENT_SCALES[0], order=1, mode="nearest")
    level = FOOT_GRADIENT_FRACTION * fine[upslope]
    foot = upslope
    while foot > 0 and fine[foot - 1] > level:
        foot -= 1
    return max(foot - 1, 0)


def detect_bolus(values: ArrayLike, time_s: ArrayLike, *, name: str = "aif") -> BolusLandmarks:
    """Find the foot, upslope, peak and valley of the first pass of a bolus curve.

    Parameters
    ----------
    values : array_like, shape (t,)
        Concentration (or signal) of an arterial (or tissue) curve.
    time_s : array_like, shape (t,)
        Strictly increasing sample times, s.
    name : str
        Used in error messages.

    Returns
    -------
    BolusLandmarks

    Raises
    ------
    ValidationError
        When the curve has no bolus: its rise is within the noise, or it still rises at the end.
    """
    v, t = _check_curve(name, values, time_s)
    if v.ndim != 1:
        raise ValidationError(f"{name}: expected a 1D curve, found shape {v.shape}")
    sd = noise_sd(v)
    smooth = ndi.gaussian_filter1d(v, 1.0, mode="nearest")
    grad = multiscale_gradient(v)
    if not grad.max() > 0:
        raise ValidationError(f"{name}: no bolus found (the curve never rises)")
    up = _first_rise_argmax(grad)
    foot = _walk_to_foot(v, up)
    peak = up
    while peak + 1 < v.size and smooth[peak + 1] >= smooth[peak]:
        peak += 1
    lo, hi = max(peak - 1, up), min(peak + 2, v.size)
    peak = lo + int(np.argmax(v[lo:hi]))
    valley_smooth = ndi.gaussian_filter1d(v, 1.5, mode="nearest")
    valley = peak
    while valley + 1 < v.size and valley_smooth[valley + 1] <= valley_smooth[valley]:
        valley += 1
    baseline = float(np.mean(v[:foot])) if foot > 0 else float(v[0])
    height = float(v[peak] - baseline)
    floor = MIN_BOLUS_SNR * sd
    if not height > max(floor, 1e-12):
        raise ValidationError(
            f"{name}: no bolus found (rise {height:.3g} above the baseline, expected more than {floor:.3g}, "
            f"{MIN_BOLUS_SNR:g} x the noise)"
        )
    if peak >= v.size - 1:
        raise ValidationError(f"{name}: no bolus found (the curve still rises at its last sample, t = {t[-1]:.2f} s)")
    return BolusLandmarks(
        foot=foot,
        upslope=up,
        peak=peak,
        valley=valley,
        foot_s=float(t[foot]),
        peak_s=float(t[peak]),
        valley_s=float(t[valley]),
        baseline=baseline,
        noise_sd=sd,
        peak_height=height,
    )


def remove_baseline(values: ArrayLike, foot: int) -> NDArray[np.float64]:
    """Subtract the mean of the samples before ``foot`` (along the last axis).

    Parameters
    ----------
    values : array_like, shape (..., t)
    foot : int
        Index of the first-pass foot; with 0, the first sample is the baseline.
    """
    v = np.asarray(values, dtype=np.float64)
    if not 0 <= foot < v.shape[-1]:
        raise ValidationError(f"foot: expected an index from 0 to {v.shape[-1] - 1}, found {foot}")
    base = v[..., :foot].mean(axis=-1, keepdims=True) if foot > 0 else v[..., :1]
    return np.asarray(v - base)


def regular_grid(start_s: float, stop_s: float, dt_s: float) -> NDArray[np.float64]:
    """Times ``start_s, start_s + dt_s, ...`` up to ``stop_s`` (included within 1e-6 s)."""
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise ValidationError(f"dt_s: expected a positive time step in seconds, found {dt_s!r}")
    if not stop_s > start_s:
        raise ValidationError(f"time range: expected stop after start, found {start_s:.3g} to {stop_s:.3g} s")
    n = int(math.floor((stop_s - start_s) / dt_s + 1e-6)) + 1
    if n < 4:
        raise ValidationError(
            f"dt_s: expected a step giving at least 4 samples over {stop_s - start_s:.3g} s, found {dt_s!r}"
        )
    return start_s + dt_s * np.arange(n, dtype=np.float64)


def resample(values: ArrayLike, time_s: ArrayLike, grid_s: ArrayLike, method: str = "cubic") -> NDArray[np.float64]:
    """Interpolate curves ``(..., t)`` from their own times onto ``grid_s``.

    Parameters
    ----------
    values : array_like, shape (..., t)
    time_s : array_like, shape (t,)
        Strictly increasing sample times, s.
    grid_s : array_like, shape (n,)
        Target times, s; those outside the sampled range take the nearest end value.
    method : {"cubic", "linear"}
        ``"cubic"``: a not-a-knot cubic spline through the samples (smooth bolus curves
        sampled once per heartbeat keep their curvature, which linear interpolation cuts,
        biasing high flows low); ``"linear"``: piecewise linear.

    Returns
    -------
    ndarray of float64, shape (..., n)
    """
    v, t = _check_curve("values", values, time_s)
    g = np.clip(np.asarray(grid_s, dtype=np.float64), t[0], t[-1])
    if method == "linear":
        idx = np.clip(np.searchsorted(t, g, side="right") - 1, 0, t.size - 2)
        w = np.clip((g - t[idx]) / (t[idx + 1] - t[idx]), 0.0, 1.0)
        return np.asarray(v[..., idx] * (1.0 - w) + v[..., idx + 1] * w)
    if method == "cubic":
        return np.asarray(CubicSpline(t, v, axis=-1)(g))
    raise ValidationError(f"method: expected 'cubic' or 'linear', found {method!r}")


def shift(values: ArrayLike, grid_s: ArrayLike, delay_s: float) -> NDArray[np.float64]:
    """A curve on a regular grid delayed by ``delay_s`` (positive: later), zero-filled at the start."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(grid_s, dtype=np.float64)
    if delay_s == 0:
        return v.copy()
    return np.interp(g - delay_s, g, v, left=0.0, right=float(v[-1]))


def blood_to_plasma(aif: AifCurve, hematocrit: float = DEFAULT_HEMATOCRIT) -> AifCurve:
    """Plasma concentration from whole blood: ``Cp = Cb / (1 - Hct)``; plasma curves pass through."""
    hct = float(hematocrit)
    if not (math.isfinite(hct) and 0.0 < hct < 1.0):
        raise ValidationError(f"hematocrit: expected a fraction between 0 and 1, found {hematocrit!r}")
    if aif.units != "gd_mmol_l":
        raise ValidationError(f"aif.units: expected gd_mmol_l to convert blood to plasma, found {aif.units!r}")
    if aif.kind == "plasma":
        return aif
    return AifCurve(aif.values / (1.0 - hct), aif.time_s, units="gd_mmol_l", kind="plasma")


def tissue_foot_s(
    tissue: ArrayLike,
    time_s: ArrayLike,
    *,
    blood_peak: float | None = None,
    min_pixels: int = 5,
    max_curves: int = 2048,
) -> float | None:
    """Typical arrival time (s) of contrast in tissue curves, or None without a clear arrival.

    Per curve, the upslope is the largest smoothed gradient and the foot the last sample
    before it where the gradient is below :data:`FOOT_GRADIENT_FRACTION` of that maximum; the
    median foot over curves that enhance clearly is returned. Curves that reach half of
    ``blood_peak`` are blood (ventricles, vessels), not tissue, and are left out.

    Parameters
    ----------
    tissue : array_like, shape (..., t)
        Tissue concentration curves.
    time_s : array_like, shape (t,)
    blood_peak : float or None
        Peak of the arterial curve (baseline removed), in the same units.
    min_pixels : int
        Fewest enhancing curves needed for an estimate.
    max_curves : int
        At most this many curves, evenly spread over the input, are examined.
    """
    v, t = _check_curve("tissue", tissue, time_s)
    curves = v.reshape(-1, t.size)
    if curves.shape[0] > max_curves:
        # A median needs no more: an even spread of curves over the image.
        curves = curves[:: int(math.ceil(curves.shape[0] / max_curves))]
    smooth = ndi.gaussian_filter1d(curves, 1.0, axis=-1, mode="nearest")
    grad = ndi.gaussian_filter1d(curves, 1.5, axis=-1, order=1, mode="nearest")
    n0 = max(3, t.size // 10)
    base = np.median(curves[:, :n0], axis=-1)
    sd = _noise_sd_rows(curves)
    rise = smooth.max(axis=-1) - base
    keep = rise > np.maximum(MIN_BOLUS_SNR * sd, 1e-12)
    if blood_peak is not None and blood_peak > 0:
        keep &= smooth.max(axis=-1) - base < 0.5 * blood_peak
    if np.count_nonzero(keep) < min_pixels:
        return None
    g = grad[keep]
    up = np.argmax(g, axis=-1)
    level = FOOT_GRADIENT_FRACTION * g[np.arange(g.shape[0]), up]
    index = np.arange(t.size)[None, :]
    calm = (g <= level[:, None]) & (index < up[:, None])
    foot = np.where(calm.any(axis=-1), t.size - 1 - np.argmax(calm[:, ::-1], axis=-1), 0)
    return float(np.median(t[foot]))


def _noise_sd_rows(curves: NDArray[np.float64]) -> NDArray[np.float64]:
    d = np.diff(curves, axis=-1)
    med = np.median(d, axis=-1, keepdims=True)
    return np.asarray(1.4826 * np.median(np.abs(d - med), axis=-1) / math.sqrt(2.0))


@dataclass(frozen=True)
class DelayEstimate:
    """Global AIF-to-tissue delay.

    Attributes
    ----------
    measured_s : float or None
        Tissue foot minus AIF foot, s (None when the tissue shows no clear arrival).
    shift_s : float
        Shift applied to the AIF (positive: AIF moved later) so that the remaining delay lies in
        ``[0, max_delay_s]``.
    residual_s : float
        Delay left for the per-pixel fit, s.
    """

    measured_s: float | None
    shift_s: float
    residual_s: float


def bound_delay(aif_foot_s: float, tissue_foot: float | None, max_delay_s: float) -> DelayEstimate:
    """Bound the measured delay to ``[0, max_delay_s]``; the excess becomes a global AIF shift.

    A tissue that enhances before its input (negative delay, e.g. clocks that differ) gets the
    AIF moved later to meet it; a delay longer than the per-pixel search range gets the AIF
    moved so that the remaining delay is ``max_delay_s``.
    """
    if not (math.isfinite(max_delay_s) and max_delay_s >= 0):
        raise ValidationError(f"max_delay_s: expected a non-negative number of seconds, found {max_delay_s!r}")
    if tissue_foot is None:
        return DelayEstimate(None, 0.0, 0.0)
    measured = tissue_foot - aif_foot_s
    residual = min(max(measured, 0.0), max_delay_s)
    return DelayEstimate(measured, measured - residual, residual)
