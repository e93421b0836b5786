"""What the fits of :mod:`qperf.flow` start from: tissue curves and the plasma AIF on one grid.

Steps 1-6 of the chain described in :mod:`qperf.flow`: the series to Gd, the AIF from a
curve or from AIF images, the bolus landmarks, the baseline removed, the curves resampled
onto a regular grid, blood to plasma and the global delay. Tissue curves here are
``(n, t)``: one row per pixel of the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
from qperf.errors import ValidationError, describe
from qperf.flow.frames import robust_baseline
from qperf.gd import SrSequence, series_to_gd
from qperf.segmentation.aif_lv import aif_from_images
from qperf.types import AifCurve, PerfusionSeries

#: The arterial input :func:`qperf.flow.compute_flow_maps` accepts: a curve or AIF images.
AifInput: TypeAlias = AifCurve | PerfusionSeries | Sequence[PerfusionSeries]


def kinetic_model(model: str | kinetics.KineticModel) -> kinetics.KineticModel:
    """A model given by name (:func:`qperf.kinetics.get_model`), or the model itself."""
    if isinstance(model, kinetics.KineticModel):
        return model
    return kinetics.get_model(model)


def check_pixel_mask(mask: ArrayLike | None, shape: tuple[int, int], name: str = "mask") -> NDArray[np.bool_]:
    """A boolean ``(y, x)`` mask with at least one pixel (all pixels when ``mask`` is None).

    Raises
    ------
    ValidationError
        On another shape, non-finite values or an empty mask.
    """
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


def _aif_blood_or_plasma(
    aif: AifInput, aif_kind: str | None, aif_sequence: SrSequence | None, aif_method: str
) -> tuple[AifCurve, NDArray[np.bool_] | None]:
    """The AIF curve in mmol/L and, when it came from images, the LV pool used."""
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
        if aif_kind == "plasma":
            raise ValidationError(
                "aif_kind: AIF images give whole-blood concentration; expected 'blood', found 'plasma'"
            )
        return extraction.aif, extraction.mask
    raise ValidationError(f"aif: expected an AifCurve or AIF image series, found {describe(aif)}")


def _check_covers(aif: AifCurve, time_s: NDArray[np.float64], interval_s: float) -> None:
    tol = 1.5 * max(interval_s, 1e-6)
    if aif.time_s[0] > time_s[0] + tol or aif.time_s[-1] < time_s[-1] - tol:
        raise ValidationError(
            f"aif.time_s: expected times covering the series ({time_s[0]:.2f} to {time_s[-1]:.2f} s), "
            f"found {aif.time_s[0]:.2f} to {aif.time_s[-1]:.2f} s (the AIF is shorter than the series)"
        )


@dataclass(frozen=True, eq=False)
class PreparedCurves:
    """Tissue curves of the pixels of a mask and the plasma AIF, on one regular grid.

    Attributes
    ----------
    tissue : ndarray of float64, shape ``(n, t)``
        Baseline removed (mmol/L).
    plasma : ndarray of float64, shape ``(t,)``
        Plasma AIF (mmol/L), baseline removed, shifted by ``delay.shift_s``.
    grid : ndarray of float64, shape ``(t,)``
        The fitting grid (s, series clock).
    landmarks : BolusLandmarks
    delay : DelayEstimate
    aif_mask : ndarray of bool or None
        The LV pool used when the AIF came from images.
    """

    tissue: NDArray[np.float64]
    plasma: NDArray[np.float64]
    grid: NDArray[np.float64]
    landmarks: BolusLandmarks
    delay: DelayEstimate
    aif_mask: NDArray[np.bool_] | None


def prepare_curves(
    series: PerfusionSeries,
    aif: AifInput,
    pixels: NDArray[np.bool_],
    dt_s: float,
    hematocrit: float,
    aif_kind: str | None,
    max_delay_s: float,
    sequence: SrSequence | None,
    aif_sequence: SrSequence | None,
    aif_method: str,
) -> PreparedCurves:
    """Steps 1-6 of the chain (:mod:`qperf.flow`): Gd, AIF, landmarks, baseline, grid, plasma, global delay."""
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
    return PreparedCurves(tissue, plasma, grid, landmarks, delay, aif_mask)
