"""Pixel-wise myocardial blood flow mapping: a perfusion series and its AIF to parameter maps.

The chain of the inline mapping pipeline:

1. the series to Gd concentration (:func:`qperf.gd.series_to_gd`, myocardial T1) unless it
   already is;
2. the AIF from a curve, or from AIF images (LV detection, T2* correction, blood T1);
3. bolus foot, peak and valley of the AIF; baseline (the frames before the foot) removed from
   the AIF and from every tissue curve;
4. AIF and tissue resampled from their own acquisition times onto one regular grid
   (``dt_s``, 0.5 s by default) that the AIF covers;
5. blood to plasma, ``Cp = Cb / (1 - Hct)``;
6. the global AIF-to-tissue delay measured from the bolus arrival and bounded to
   ``[0, max_delay_s]`` (an excess becomes a shift of the AIF), the per-pixel delay is left
   to the fit;
7. the kinetic model fitted to every pixel in the mask (:mod:`qperf.kinetics`), on the grid
   counted from its first sample (so clocks that start before zero are fine);
8. myocardial blood flow reported as whole-blood flow, ``MBF = Fp / (1 - Hct)`` (the plasma
   flow ``Fp`` is kept as ``fp_ml_min_g``), like ``Vb = Vp / (1 - Hct)``; this is the
   convention of the published BTEX maps (see ``Testing/test_flow.py``, real rest case).

>>> from qperf.flow import compute_flow_maps
>>> result = compute_flow_maps(series, aif_curve, model="btex", mask=myocardium)
>>> result.maps["mbf_ml_min_g"]          # (y, x) float32, NaN where not fitted
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from qperf import kinetics
from qperf.aif.curve import (
    BolusLandmarks,
    DelayEstimate,
    blood_to_plasma,
    bound_delay,
    detect_bolus,
    regular_grid,
    resample,
    shift,
    tissue_foot_s,
)
from qperf.aif.extract import aif_from_images
from qperf.errors import ValidationError, describe
from qperf.gd import SrSequence, series_to_gd
from qperf.progress import ProgressCallback, null_progress
from qperf.types import AIF_KINDS, DEFAULT_HEMATOCRIT, AifCurve, PerfusionSeries

#: Status code of pixels outside the mask (as :class:`qperf.kinetics.FitStatus.MASKED`).
STATUS_MASKED = 1

_UNIT_SUFFIXES = ("_ml_min_g", "_ml_g", "_per_min", "_per_s", "_mmol_l", "_s")


def map_file_stem(map_name: str) -> str:
    """File stem of a map: its name without the unit, e.g. ``"mbf_ml_min_g"`` -> ``"mbf"``.

    Standard-deviation maps keep their suffix: ``"ps_ml_min_g_sd"`` -> ``"ps_sd"``.
    """
    name, sd = (map_name[:-3], "_sd") if map_name.endswith("_sd") else (map_name, "")
    for suffix in _UNIT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name + sd


@dataclass(frozen=True, eq=False)
class FlowResult:
    """Parameter maps of one slice.

    Attributes
    ----------
    maps : dict of str to ndarray of float32, each (y, x)
        Maps with units in their names (``"mbf_ml_min_g"``, ``"fp_ml_min_g"``, ``"ps_ml_min_g"``,
        ``"vp_ml_g"``, ``"vb_ml_g"``, ``"visf_ml_g"``, ``"delay_s"``, ``"nrmse"`` for BTEX), NaN
        where not fitted. ``mbf_ml_min_g`` is myocardial (whole-)blood flow,
        ``Fp / (1 - Hct)``, from the plasma flow ``fp_ml_min_g`` fitted against the plasma AIF
        (as ``vb = vp / (1 - Hct)``). ``delay_s`` is the delay from the AIF as given to each
        pixel (global shift included).
    status : ndarray of int8, (y, x)
        :class:`qperf.kinetics.FitStatus` codes (1 outside the mask).
    aif : AifCurve
        The plasma AIF used (baseline removed, shifted), on the fitting grid, on the series'
        clock.
    time_s : ndarray of float64, (n,)
        The fitting grid (s, series clock).
    tissue_mmol_l : ndarray of float32, (n, y, x)
        The tissue curves fitted (baseline removed), on the fitting grid; 0 outside the mask.
    model : str
    landmarks : BolusLandmarks
        Foot, peak and valley of the AIF (indices into its own samples).
    delay : DelayEstimate
        Measured global delay and the AIF shift applied.
    aif_mask : ndarray of bool (y', x') or None
        The LV pool used when the AIF came from images.
    spacing_mm, geometry
        Of the series (the maps share its grid).
    """

    maps: dict[str, NDArray[np.float32]]
    status: NDArray[np.int8]
    aif: AifCurve
    time_s: NDArray[np.float64]
    tissue_mmol_l: NDArray[np.float32]
    model: str
    landmarks: BolusLandmarks
    delay: DelayEstimate
    aif_mask: NDArray[np.bool_] | None
    spacing_mm: tuple[float, float]
    geometry: Any

    @property
    def n_fitted(self) -> int:
        """Pixels with a successful fit."""
        return int(np.count_nonzero(self.status == 0))


def smooth_within(series: PerfusionSeries, mask: ArrayLike, sigma_px: float) -> PerfusionSeries:
    """Gaussian smoothing of every frame inside ``mask`` only (normalised convolution).

    Each pixel of the mask becomes the Gaussian-weighted mean of the mask's pixels around it;
    pixels outside the mask neither change nor contribute, so blood next to the myocardium
    is not mixed into it. Pixel-wise kinetic fits are biased high at realistic noise (the
    flow estimate is skewed: the cost is flat towards high flow), and the bias grows with the
    noise variance; perfusion images are acquired at a coarser resolution than their pixel
    grid, so a sub-pixel Gaussian (sigma 0.7 px: about a 3 x 3 neighbourhood) costs little
    resolution and removes most of that bias (phantom, stress, true labels and AIF: median
    per-segment error 19 % -> 3 % and 29 % -> 10 %).

    Parameters
    ----------
    series : PerfusionSeries
        ``(t, y, x)``; the proton-density frames are smoothed like the others.
    mask : array_like of bool, shape (y, x)
        The region to smooth within (the myocardium).
    sigma_px : float
        Gaussian standard deviation in pixels (0: the series unchanged).

    Returns
    -------
    PerfusionSeries
        A new series (the input is not modified).
    """
    m = np.asarray(mask)
    if m.shape != series.shape:
        raise ValidationError(f"mask: expected shape {series.shape} (the series' matrix), found {describe(mask)}")
    if not (math.isfinite(sigma_px) and sigma_px >= 0.0):
        raise ValidationError(f"sigma_px: expected a finite value >= 0, found {sigma_px!r}")
    inside = m.astype(bool)
    if sigma_px == 0.0 or not inside.any():
        return series
    weight = inside.astype(np.float64)
    norm = ndimage.gaussian_filter(weight, sigma_px, truncate=2.0)
    data = np.array(series.data, dtype=np.float32, copy=True)
    summed = ndimage.gaussian_filter(data * weight[None].astype(np.float32), (0.0, sigma_px, sigma_px), truncate=2.0)
    data[:, inside] = summed[:, inside] / norm[inside].astype(np.float32)
    return dataclasses.replace(series, data=data)


def flow_at_upper_bound(result: FlowResult, tolerance: float = 0.02) -> NDArray[np.bool_]:
    """Pixels whose fitted flow lies at the upper bound of the model's flow range.

    Such a fit did not find a flow that explains the curve (typically a curve carrying blood
    from a neighbouring pool); its value is the bound, not a measurement. The flow is the
    model's first parameter (``Fp`` for BTEX and the two-compartment model, ``F`` for Fermi,
    ``Ktrans`` for Tofts).

    Returns
    -------
    ndarray of bool, shape (y, x)
        True within ``tolerance`` (relative) of the upper bound.
    """
    info = kinetics.get_model(result.model).parameters[0]
    values = result.maps.get(info.map_name)
    if values is None:
        return np.zeros(result.status.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        at_bound: NDArray[np.bool_] = np.asarray(values >= info.upper * (1.0 - tolerance))
    return at_bound


def delayed_aif(plasma: NDArray[np.float64], time_s: NDArray[np.float64], delay_s: float) -> NDArray[np.float64]:
    """The AIF delayed by ``delay_s`` (zero before its start), by a cubic spline between samples.

    Whole-sample delays reproduce the samples exactly. Between samples a linear interpolation
    would average neighbouring samples and blunt the bolus peak (fitted against such an AIF,
    a noise-free curve delayed by 0.5 s preferred 0.625 s).
    """
    if delay_s == 0.0:
        return plasma
    out = resample(plasma, time_s, time_s - delay_s, method="cubic")
    out[time_s - delay_s < time_s[0] - 1e-9] = 0.0
    return out


#: Chi-square (1 degree of freedom, 95 %) that a later delay must gain over an earlier one.
DELAY_CHI2 = 3.84
#: Steps per grid sample of :func:`refine_delay` (0.125 s on the default 0.5 s grid).
DELAY_STEPS_PER_SAMPLE = 4


def chi2_profile(
    model: kinetics.KineticModel,
    curve: NDArray[np.float64],
    plasma: NDArray[np.float64],
    time_s: NDArray[np.float64],
    max_delay_s: float,
    extra: dict[str, Any] | None = None,
) -> NDArray[np.float64]:
    """Residual sum of squares of a curve fitted at every whole-sample delay, in noise variances.

    Returns ``(n_delays,)``: the RSS at delay ``d`` samples divided by the noise variance
    estimated from the best fit (``inf`` where the fit failed).
    """
    dt = float(time_s[1] - time_s[0])
    n_delays = max(1, min(int(np.floor(max_delay_s / dt + 1e-9)) + 1, curve.size - 2))
    rss = _rss_at_delays(model, curve, plasma, time_s, np.arange(n_delays) * dt, extra)
    if not np.isfinite(rss).any():
        return rss
    result: NDArray[np.float64] = rss / _noise_variance(float(rss.min()), curve, model)
    return result


def _rss_at_delays(
    model: kinetics.KineticModel,
    curve: NDArray[np.float64],
    plasma: NDArray[np.float64],
    time_s: NDArray[np.float64],
    delays_s: NDArray[np.floating],
    extra: dict[str, Any] | None,
) -> NDArray[np.float64]:
    """Residual sums of squares of ``curve`` fitted with the AIF delayed by each of ``delays_s``.

    ``inf`` where a fit failed.
    """
    norm2 = float(curve @ curve)
    rss = np.full(delays_s.size, np.inf)
    for i, delay_s in enumerate(delays_s):
        fit = model.fit(
            curve[None],
            delayed_aif(plasma, time_s, float(delay_s)),
            time_s,
            mask=None,
            max_delay_s=0.0,
            **(extra or {}),
        )
        value = float(np.asarray(fit.nrmse).reshape(-1)[0]) ** 2 * norm2
        if math.isfinite(value):
            rss[i] = value
    return rss


def _noise_variance(best_rss: float, curve: NDArray[np.float64], model: kinetics.KineticModel) -> float:
    """The noise variance estimated from the best fit's residual sum of squares."""
    return max(best_rss, 1e-30) / max(curve.size - len(model.parameters) - 1, 1)


def earliest_delay(chi2: NDArray[np.float64]) -> int | None:
    """The earliest delay (samples) whose chi-square exceeds the smallest by less than ``DELAY_CHI2``.

    A later delay trades against a higher flow and a shorter transit, so the fits at
    neighbouring delays can lie within the noise of each other; a later delay is taken only
    when it fits significantly better (a likelihood-ratio test at 95 %). None when no delay
    could be fitted.
    """
    finite = np.isfinite(chi2)
    if not finite.any():
        return None
    return int(np.nonzero(chi2 <= float(chi2[finite].min()) + DELAY_CHI2)[0][0])


def refine_delay(
    model: kinetics.KineticModel,
    curve: NDArray[np.float64],
    plasma: NDArray[np.float64],
    time_s: NDArray[np.float64],
    samples: int,
    extra: dict[str, Any] | None = None,
) -> float:
    """Refine a whole-sample delay towards earlier delays, in quarter steps (s).

    The tissue can lag the AIF by a fraction of a grid step (the AIF image and each slice are
    acquired at different moments of the heartbeat); then neither neighbouring whole sample
    fits, and the later one reads the lag as flow (rest phantoms: 60-90 % high). The delays
    ``(samples - 1, samples]`` steps are tried in quarter steps and the earliest whose residual
    exceeds the best of them by less than :data:`DELAY_CHI2` noise variances is taken. Only
    earlier delays are tried: noise moves the best fit of the mean curve to later delays.
    """
    dt = float(time_s[1] - time_s[0])
    if samples <= 0:
        return 0.0
    delays = (samples - 1 + np.arange(1, DELAY_STEPS_PER_SAMPLE + 1) / DELAY_STEPS_PER_SAMPLE) * dt
    rss = _rss_at_delays(model, curve, plasma, time_s, delays, extra)
    if not np.isfinite(rss).any():
        return samples * dt
    best = float(rss[np.isfinite(rss)].min())
    variance = _noise_variance(best, curve, model)
    return float(delays[np.nonzero(rss <= best + DELAY_CHI2 * variance)[0][0]])


def _fit_values(fit: Any) -> dict[str, NDArray[np.float64]]:
    """Per-pixel maps of a fit (flat arrays, copies), with ``status`` and the plasma flow."""
    values = {name: np.array(v, dtype=np.float64) for name, v in fit.maps().items()}
    if "Fp" in fit.params:
        values["fp_ml_min_g"] = np.array(fit.params["Fp"], dtype=np.float64)
        if "Fp" in fit.sd:
            values["fp_ml_min_g_sd"] = np.array(fit.sd["Fp"], dtype=np.float64)
    values["status"] = np.array(fit.status, dtype=np.float64)
    return values


def _aif_blood_or_plasma(
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    aif_kind: str | None,
    aif_sequence: SrSequence | None,
    aif_method: str,
) -> tuple[AifCurve, NDArray[np.bool_] | None]:
    if isinstance(aif, AifCurve):
        if aif.units != "gd_mmol_l":
            raise ValidationError(
                "aif.units: expected gd_mmol_l for an AIF curve (a signal curve has no proton-density reference), "
                "found signal; give the AIF images instead"
            )
        kind = aif_kind or aif.kind
        return (aif if kind == aif.kind else AifCurve(aif.values, aif.time_s, kind=kind)), None
    if isinstance(aif, PerfusionSeries) or (
        isinstance(aif, Sequence) and len(aif) > 0 and all(isinstance(a, PerfusionSeries) for a in aif)
    ):
        extraction = aif_from_images(aif, method=aif_method, sequence=aif_sequence)
        curve = extraction.aif
        if aif_kind == "plasma":
            raise ValidationError(
                "aif_kind: AIF images give whole-blood concentration; expected 'blood', found 'plasma'"
            )
        return curve, extraction.mask
    raise ValidationError(f"aif: expected an AifCurve or AIF image series, found {describe(aif)}")


def _check_covers(aif: AifCurve, time_s: NDArray[np.float64], interval_s: float) -> None:
    tol = 1.5 * max(interval_s, 1e-6)
    if aif.time_s[0] > time_s[0] + tol or aif.time_s[-1] < time_s[-1] - tol:
        raise ValidationError(
            f"aif.time_s: expected times covering the series ({time_s[0]:.2f} to {time_s[-1]:.2f} s), "
            f"found {aif.time_s[0]:.2f} to {aif.time_s[-1]:.2f} s (the AIF is shorter than the series)"
        )


def _check_mask(mask: ArrayLike | None, shape: tuple[int, int], name: str = "mask") -> NDArray[np.bool_]:
    if mask is None:
        return np.ones(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValidationError(f"{name}: expected shape {shape} (the series' matrix), found {describe(m)}")
    if m.dtype.kind == "f" and not np.all(np.isfinite(m)):
        raise ValidationError(f"{name}: expected finite values, found NaN or infinity")
    out = m.astype(bool)
    if not out.any():
        raise ValidationError(f"{name}: expected at least one pixel to fit, found none")
    return out


def _scatter(values: ArrayLike, pixels: NDArray[np.bool_]) -> NDArray[np.float32]:
    full = np.full(pixels.shape, np.nan, dtype=np.float32)
    full[pixels] = np.asarray(values, dtype=np.float32)
    return full


@dataclass(frozen=True, eq=False)
class _Prepared:
    """Tissue curves (pixels of the mask, on the fitting grid) and the plasma AIF."""

    tissue: NDArray[np.float64]
    plasma: NDArray[np.float64]
    grid: NDArray[np.float64]
    landmarks: BolusLandmarks
    delay: DelayEstimate
    aif_mask: NDArray[np.bool_] | None


def _prepare(
    series: PerfusionSeries,
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    pixels: NDArray[np.bool_],
    dt_s: float,
    hematocrit: float,
    aif_kind: str | None,
    max_delay_s: float,
    sequence: SrSequence | None,
    aif_sequence: SrSequence | None,
    aif_method: str,
) -> _Prepared:
    """Steps 1-6 of the chain (module notes): Gd, AIF, landmarks, baseline, grid, plasma, global delay."""
    gd = series_to_gd(series, tissue="myocardium", sequence=sequence)
    curve, aif_mask = _aif_blood_or_plasma(aif, aif_kind, aif_sequence, aif_method)
    time_s = gd.dynamic_time_s
    _check_covers(curve, time_s, gd.frame_interval_s)
    landmarks = detect_bolus(curve.values, curve.time_s, name="aif")
    start = max(float(time_s[0]), float(curve.time_s[0]))
    stop = min(float(time_s[-1]), float(curve.time_s[-1]))
    grid = regular_grid(start, stop, dt_s)

    aif_grid = resample(curve.values - landmarks.baseline, curve.time_s, grid)
    plasma = blood_to_plasma(AifCurve(aif_grid, grid, kind=curve.kind), hematocrit).values

    frames = gd.dynamic[:, pixels].astype(np.float64)
    tissue = resample(frames.T, time_s, grid)
    before_foot = time_s < landmarks.foot_s
    if np.count_nonzero(before_foot) >= 1:
        tissue = tissue - robust_baseline(frames[before_foot])[:, None]

    blood_peak = landmarks.peak_height if curve.kind == "blood" else landmarks.peak_height * (1.0 - hematocrit)
    delay = bound_delay(landmarks.foot_s, tissue_foot_s(tissue, grid, blood_peak=blood_peak), max_delay_s)
    if delay.shift_s != 0.0:
        plasma = shift(plasma, grid, delay.shift_s)
    return _Prepared(tissue, plasma, grid, landmarks, delay, aif_mask)


def robust_baseline(frames: NDArray[np.floating], n_sd: float = 3.0) -> NDArray[np.float64]:
    """Per-pixel mean of the baseline frames ``(t, n)`` within ``n_sd`` robust SDs of their median.

    A breath the registration could not follow puts other tissue (fat, liver) under a pixel
    for a frame or two, far from the pixel's other baseline frames; the mean of the rest is the
    baseline. With noise alone nearly every frame is kept, and the estimate is the mean's.
    """
    values = np.asarray(frames, dtype=np.float64)
    median = np.median(values, axis=0)
    spread = 1.4826 * np.median(np.abs(values - median), axis=0)
    kept = np.abs(values - median) <= n_sd * spread + 1e-12
    return np.asarray(np.sum(values * kept, axis=0) / np.maximum(np.count_nonzero(kept, axis=0), 1))


#: A frame whose pixels depart from their running medians of five frames by this fraction of
#: the mean curve's enhancement more than a typical frame's do is an outlier
#: (:func:`outlying_frames`).
OUTLYING_FRAME_FRACTION = 0.1
#: At most this fraction of the frames is taken as outlying.
OUTLYING_FRAME_MAX_FRACTION = 0.1


def outlying_frames(curves: ArrayLike) -> NDArray[np.bool_]:
    """Frames of a slice's myocardial curves ``(t, n)`` that depart from their neighbours (bool per frame).

    A gasp that the registration cannot follow puts other tissue (blood, liver, fat) under the
    myocardium for one or two frames. A pixel's curve departs then from its running median of
    five frames (which passes rising and falling stretches unchanged and removes runs of up to
    two frames). A frame's departure is the median over the pixels of their absolute
    departures; the frame is an outlier when that exceeds the median over the frames (noise)
    by more than :data:`OUTLYING_FRAME_FRACTION` of the enhancement of the pixels' mean curve.
    On 24 static phantoms (12 stress, 12 rest) no frame came above 0.06 (the median cuts a sharp
    stress peak a little); frames of breathing phantoms that the registration had not aligned
    came at 0.1-0.97, and a rest phantom's two-frame gasp, fitted, read the apical flow 7
    times too high. At most
    :data:`OUTLYING_FRAME_MAX_FRACTION` of the frames, the farthest, are returned.
    """
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim == 1:
        c = c[:, None]
    out = np.zeros(c.shape[0], dtype=bool)
    if c.ndim != 2 or c.shape[0] < 7 or c.shape[1] == 0 or not np.all(np.isfinite(c)):
        return out
    mean_trend = ndimage.median_filter(c.mean(axis=1), size=5, mode="nearest")
    enhancement = float(mean_trend.max() - mean_trend.min())
    if enhancement <= 0.0:
        return out
    frames = np.arange(c.shape[0])
    for _ in range(3):
        # the running medians are taken with the frames found so far bridged, so that a
        # gasp's frames do not make their neighbours depart as well
        filled = c.copy()
        if out.any():
            kept = frames[~out]
            for k in frames[out]:
                filled[k] = _bridge(c, kept, k)
        departure = np.median(np.abs(c - ndimage.median_filter(filled, size=(5, 1), mode="nearest")), axis=1)
        excess = (departure - np.median(departure)) / enhancement
        candidates = np.nonzero(excess > OUTLYING_FRAME_FRACTION)[0]
        worst_first = candidates[np.argsort(excess[candidates])[::-1]]
        found = np.zeros_like(out)
        found[worst_first[: int(OUTLYING_FRAME_MAX_FRACTION * c.shape[0])]] = True
        if np.array_equal(found, out):
            break
        out = found
    return out


def _bridge(curves: NDArray[np.float64], kept: NDArray[np.intp], frame: int) -> NDArray[np.float64]:
    """The pixels' values at ``frame`` interpolated linearly between the nearest ``kept`` frames."""
    after = int(np.searchsorted(kept, frame))
    if after == 0:
        return np.asarray(curves[kept[0]])
    if after == kept.size:
        return np.asarray(curves[kept[-1]])
    a, b = int(kept[after - 1]), int(kept[after])
    w = (frame - a) / (b - a)
    return np.asarray((1.0 - w) * curves[a] + w * curves[b])


def _fit_extra(model: kinetics.KineticModel, hematocrit: float) -> dict[str, Any]:
    return {"hematocrit": hematocrit} if "hematocrit" in inspect.signature(model.fit).parameters else {}


def _mean_curve_inputs(
    series: PerfusionSeries,
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    region: ArrayLike,
    model: str,
    dt_s: float,
    hematocrit: float,
    max_delay_s: float,
    aif_method: str,
) -> tuple[kinetics.KineticModel, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    """The model, the mean curve of ``region``, the plasma AIF, the fitting times and fit options."""
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {describe(series)}")
    pixels = _check_mask(region, series.shape, "region")
    kinetic_model = kinetics.get_model(model)
    prep = _prepare(series, aif, pixels, dt_s, hematocrit, None, max_delay_s, None, None, aif_method)
    return (
        kinetic_model,
        prep.tissue.mean(axis=0),
        prep.plasma,
        prep.grid - prep.grid[0],
        _fit_extra(kinetic_model, hematocrit),
    )


def delay_chi2_profile(
    series: PerfusionSeries,
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    region: ArrayLike,
    *,
    model: str = "btex",
    dt_s: float = 0.5,
    hematocrit: float = DEFAULT_HEMATOCRIT,
    max_delay_s: float = 3.0,
    aif_method: str = "auto",
) -> NDArray[np.float64]:
    """Chi-square of the mean curve of ``region`` at every whole-sample delay (see :func:`chi2_profile`)."""
    model_, curve, plasma, time_fit, extra = _mean_curve_inputs(
        series, aif, region, model, dt_s, hematocrit, max_delay_s, aif_method
    )
    return chi2_profile(model_, curve, plasma, time_fit, max_delay_s, extra)


def mean_curve_delay(
    series: PerfusionSeries,
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    region: ArrayLike,
    *,
    model: str = "btex",
    dt_s: float = 0.5,
    hematocrit: float = DEFAULT_HEMATOCRIT,
    max_delay_s: float = 3.0,
    aif_method: str = "auto",
) -> float | None:
    """The delay (s) of the mean curve of ``region``: :func:`earliest_delay`, then :func:`refine_delay`.

    None when no delay could be fitted. The value is what ``delay_mask`` of
    :func:`compute_flow_maps` uses, and can be passed to other slices as ``fixed_delay_s``.
    """
    model_, curve, plasma, time_fit, extra = _mean_curve_inputs(
        series, aif, region, model, dt_s, hematocrit, max_delay_s, aif_method
    )
    samples = earliest_delay(chi2_profile(model_, curve, plasma, time_fit, max_delay_s, extra))
    if samples is None:
        return None
    return refine_delay(model_, curve, plasma, time_fit, samples, extra)


def compute_flow_maps(
    series: PerfusionSeries,
    aif: AifCurve | PerfusionSeries | Sequence[PerfusionSeries],
    *,
    model: str = "btex",
    dt_s: float = 0.5,
    hematocrit: float = DEFAULT_HEMATOCRIT,
    aif_kind: str | None = None,
    mask: ArrayLike | None = None,
    max_delay_s: float = 3.0,
    sequence: SrSequence | None = None,
    aif_sequence: SrSequence | None = None,
    aif_method: str = "auto",
    progress: ProgressCallback | None = None,
    delay_mask: ArrayLike | None = None,
    fixed_delay_s: float | None = None,
) -> FlowResult:
    """Pixel-wise kinetic parameter maps of one slice.

    Parameters
    ----------
    series : PerfusionSeries
        ``(t, y, x)`` in ``"gd_mmol_l"``, or ``"signal"`` with PD frames and readout metadata.
    aif : AifCurve or PerfusionSeries or sequence of PerfusionSeries
        The arterial input: a curve in mmol/L (blood or plasma), or the AIF images (one
        series per echo) from which the LV blood pool is found and converted.
    model : str
        A :mod:`qperf.kinetics` model: ``"btex"``, ``"fermi"``, ``"2cxm"``, ``"tofts"``.
    dt_s : float
        Step of the regular fitting grid, s.
    hematocrit : float
        For blood to plasma.
    aif_kind : {"blood", "plasma"} or None
        What the AIF curve holds; None takes the curve's own ``kind``.
    mask : array_like of bool, (y, x), optional
        Pixels to fit (e.g. the myocardium); all pixels when None.
    max_delay_s : float
        Largest AIF-to-tissue delay the per-pixel fit searches, s.
    sequence, aif_sequence : SrSequence, optional
        Readouts of the series and of the AIF images when their metadata lack them.
    aif_method : str
        LV detector for AIF images (see :func:`qperf.aif.detect_lv`; "auto" by default).
    progress : callable(fraction, message), optional
    delay_mask : array_like of bool, (y, x), optional
        When given (e.g. the myocardium), the delay is fitted once, to the mean curve of
        these pixels, and every pixel is fitted with that delay; otherwise each pixel's delay
        is searched in ``[0, max_delay_s]``. At stress flows the cost of a single pixel is
        nearly flat along a valley where a later delay trades against a higher flow, so noise
        sends many pixels far along it (phantom curves at 5 % noise: 0.5 s later with about
        three times the flow, the mean of the flow map 25 % high); the mean curve, with a
        fraction of the noise, pins the delay (12 of 12 noise draws right, flow within 3 %):
        the earliest delay that fits as well (:func:`earliest_delay`), refined towards earlier
        delays in quarter steps (:func:`refine_delay`).
    fixed_delay_s : float, optional
        Every pixel fitted with this delay behind the AIF (s; between grid samples the AIF is
        interpolated by a cubic spline), e.g. one
        delay for all slices of a study (:func:`delay_chi2_profile`); overrides ``delay_mask``.

    Returns
    -------
    FlowResult

    Raises
    ------
    ValidationError
        Bad or inconsistent input: an AIF that does not cover the series or has no bolus,
        metadata missing for the Gd conversion, a mask of the wrong shape, a bad grid step.
    """
    report = progress or null_progress
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {describe(series)}")
    if aif_kind is not None and aif_kind not in AIF_KINDS:
        raise ValidationError(f"aif_kind: expected one of {', '.join(AIF_KINDS)}, found {aif_kind!r}")
    if not (isinstance(hematocrit, (int, float)) and 0.0 < hematocrit < 1.0):
        raise ValidationError(f"hematocrit: expected a fraction between 0 and 1, found {hematocrit!r}")
    if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
        raise ValidationError(f"dt_s: expected a positive time step in seconds, found {dt_s!r}")
    pixels = _check_mask(mask, series.shape)
    kinetic_model = kinetics.get_model(model)
    delay_pixels = None if delay_mask is None else _check_mask(delay_mask, series.shape, "delay_mask") & pixels
    if delay_pixels is not None and not delay_pixels.any():
        raise ValidationError("delay_mask: expected pixels inside the fitted mask, found none")

    report(0.0, "converting to Gd")
    prep = _prepare(series, aif, pixels, dt_s, hematocrit, aif_kind, max_delay_s, sequence, aif_sequence, aif_method)
    tissue, plasma, grid, delay = prep.tissue, prep.plasma, prep.grid, prep.delay
    report(0.2, f"fitting {model} to {tissue.shape[0]} pixels")
    extra = _fit_extra(kinetic_model, hematocrit)
    time_fit = grid - grid[0]
    fit_plasma, fixed_s, search_s = plasma, 0.0, max_delay_s
    chosen: float | None = None
    if fixed_delay_s is not None:
        if not (isinstance(fixed_delay_s, (int, float)) and 0.0 <= fixed_delay_s <= max_delay_s + 1e-9):
            raise ValidationError(f"fixed_delay_s: expected a delay in [0, {max_delay_s:g}] s, found {fixed_delay_s!r}")
        chosen = float(fixed_delay_s)
    elif delay_pixels is not None:
        mean_curve = tissue[delay_pixels[pixels]].mean(axis=0)
        samples = earliest_delay(chi2_profile(kinetic_model, mean_curve, plasma, time_fit, max_delay_s, extra))
        if samples is not None:
            chosen = refine_delay(kinetic_model, mean_curve, plasma, time_fit, samples, extra)
    if chosen is not None:
        fixed_s, search_s = chosen, 0.0
        fit_plasma = delayed_aif(plasma, time_fit, chosen)
    fit = kinetic_model.fit(tissue, fit_plasma, time_fit, mask=None, max_delay_s=search_s, **extra)
    values = _fit_values(fit)
    values["delay_s"] = values["delay_s"] + fixed_s
    report(0.95, "assembling maps")

    ny, nx = series.shape
    status = np.full((ny, nx), STATUS_MASKED, dtype=np.int8)
    status[pixels] = values.pop("status").astype(np.int8)
    maps: dict[str, NDArray[np.float32]] = {}
    for name, flat in values.items():
        full = _scatter(flat, pixels)
        if name == "delay_s" and delay.shift_s != 0.0:
            full[pixels] += np.float32(delay.shift_s)
        maps[name] = full
    if "fp_ml_min_g" in maps:
        # Myocardial blood flow is whole-blood flow: the plasma flow fitted against the plasma
        # AIF, divided by the plasma fraction (as Vb = Vp / (1 - Hct)).
        maps["mbf_ml_min_g"] = (maps["fp_ml_min_g"] / np.float32(1.0 - hematocrit)).astype(np.float32)
        if "fp_ml_min_g_sd" in maps:
            maps["mbf_ml_min_g_sd"] = (maps["fp_ml_min_g_sd"] / np.float32(1.0 - hematocrit)).astype(np.float32)
    tissue_full = np.zeros((grid.size, ny, nx), dtype=np.float32)
    tissue_full[:, pixels] = tissue.T.astype(np.float32)
    report(1.0, "done")
    return FlowResult(
        maps=maps,
        status=status,
        aif=AifCurve(plasma, grid, units="gd_mmol_l", kind="plasma"),
        time_s=grid,
        tissue_mmol_l=tissue_full,
        model=kinetic_model.name,
        landmarks=prep.landmarks,
        delay=delay,
        aif_mask=prep.aif_mask,
        spacing_mm=series.spacing_mm,
        geometry=series.geometry,
    )
