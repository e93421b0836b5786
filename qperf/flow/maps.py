"""Pixel-wise parameter maps of one slice: :func:`compute_flow_maps` and its :class:`FlowResult`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qperf import kinetics
from qperf.aif.curve import BolusLandmarks, DelayEstimate
from qperf.errors import ValidationError, describe
from qperf.flow.delay import curve_delay, delayed_aif, group_curves
from qperf.flow.inputs import AifInput, PreparedCurves, check_pixel_mask, kinetic_model, prepare_curves
from qperf.gd import SrSequence
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
        The kinetic model's name.
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


def flow_at_upper_bound(
    result: FlowResult, tolerance: float = 0.02, model: kinetics.KineticModel | None = None
) -> NDArray[np.bool_]:
    """Pixels whose fitted flow lies at the upper bound of the model's flow range.

    Such a fit did not find a flow that explains the curve (typically a curve carrying blood
    from a neighbouring pool); its value is the bound, not a measurement. The flow is the
    model's first parameter (``Fp`` for BTEX and the two-compartment model, ``F`` for Fermi,
    ``Ktrans`` for Tofts).

    Parameters
    ----------
    result : FlowResult
    tolerance : float
        Relative distance from the bound.
    model : KineticModel, optional
        The model fitted, when it is not one of :func:`qperf.kinetics.available_models`
        (default: the model named by ``result.model``).

    Returns
    -------
    ndarray of bool, shape (y, x)
        True within ``tolerance`` (relative) of the upper bound.
    """
    info = (model or kinetics.get_model(result.model)).parameters[0]
    values = result.maps.get(info.map_name)
    if values is None:
        return np.zeros(result.status.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        at_bound: NDArray[np.bool_] = np.asarray(values >= info.upper * (1.0 - tolerance))
    return at_bound


def _check_options(
    series: PerfusionSeries,
    aif_kind: str | None,
    hematocrit: float,
    dt_s: float,
    fixed_delay_s: float | None,
    max_delay_s: float,
) -> None:
    """Refuse bad options of :func:`compute_flow_maps` with a one-line ValidationError."""
    if not isinstance(series, PerfusionSeries):
        raise ValidationError(f"series: expected a PerfusionSeries, found {describe(series)}")
    if aif_kind is not None and aif_kind not in AIF_KINDS:
        raise ValidationError(f"aif_kind: expected one of {', '.join(AIF_KINDS)}, found {aif_kind!r}")
    if not (isinstance(hematocrit, (int, float)) and 0.0 < hematocrit < 1.0):
        raise ValidationError(f"hematocrit: expected a fraction between 0 and 1, found {hematocrit!r}")
    if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
        raise ValidationError(f"dt_s: expected a positive time step in seconds, found {dt_s!r}")
    if fixed_delay_s is not None and not (
        isinstance(fixed_delay_s, (int, float)) and 0.0 <= fixed_delay_s <= max_delay_s + 1e-9
    ):
        raise ValidationError(f"fixed_delay_s: expected a delay in [0, {max_delay_s:g}] s, found {fixed_delay_s!r}")


def _common_delay(
    model: kinetics.KineticModel,
    prep: PreparedCurves,
    pixels: NDArray[np.bool_],
    delay_pixels: NDArray[np.bool_] | None,
    fixed_delay_s: float | None,
    max_delay_s: float,
    hematocrit: float,
) -> float | None:
    """The delay (s) every pixel is fitted with: the fixed one, the one shared delay that fits
    the curves of ``delay_pixels`` best, or None (each pixel's own delay is searched)."""
    if fixed_delay_s is not None:
        return float(fixed_delay_s)
    if delay_pixels is None:
        return None
    curves = group_curves(prep.tissue[delay_pixels[pixels]])
    return curve_delay(model, curves, prep.plasma, prep.grid - prep.grid[0], max_delay_s, hematocrit)


def _fit_pixels(
    model: kinetics.KineticModel,
    prep: PreparedCurves,
    common_delay_s: float | None,
    max_delay_s: float,
    hematocrit: float,
) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.int8]]:
    """The model fitted to every pixel: its maps (flat, ``delay_s`` from the AIF as shifted) and status."""
    time_fit = prep.grid - prep.grid[0]
    plasma, fixed_s, search_s = prep.plasma, 0.0, max_delay_s
    if common_delay_s is not None:
        plasma, fixed_s, search_s = delayed_aif(prep.plasma, time_fit, common_delay_s), common_delay_s, 0.0
    fit = model.bind(plasma, time_fit, hematocrit).fit(prep.tissue, max_delay_s=search_s)
    values = {name: np.array(v, dtype=np.float64) for name, v in fit.maps().items()}
    values["delay_s"] = values["delay_s"] + fixed_s
    return values, np.asarray(fit.status, dtype=np.int8)


def _scatter(values: ArrayLike, pixels: NDArray[np.bool_]) -> NDArray[np.float32]:
    full = np.full(pixels.shape, np.nan, dtype=np.float32)
    full[pixels] = np.asarray(values, dtype=np.float32)
    return full


def _assemble_maps(
    values: dict[str, NDArray[np.float64]], pixels: NDArray[np.bool_], shift_s: float, hematocrit: float
) -> dict[str, NDArray[np.float32]]:
    """``(y, x)`` float32 maps of the fitted pixels, with the global shift and MBF."""
    maps: dict[str, NDArray[np.float32]] = {}
    for name, flat in values.items():
        full = _scatter(flat, pixels)
        if name == "delay_s" and shift_s != 0.0:
            full[pixels] += np.float32(shift_s)
        maps[name] = full
    if "fp_ml_min_g" in maps:
        # Myocardial blood flow is whole-blood flow: the plasma flow fitted against the plasma
        # AIF, divided by the plasma fraction (as Vb = Vp / (1 - Hct)).
        maps["mbf_ml_min_g"] = (maps["fp_ml_min_g"] / np.float32(1.0 - hematocrit)).astype(np.float32)
        if "fp_ml_min_g_sd" in maps:
            maps["mbf_ml_min_g_sd"] = (maps["fp_ml_min_g_sd"] / np.float32(1.0 - hematocrit)).astype(np.float32)
    return maps


def compute_flow_maps(
    series: PerfusionSeries,
    aif: AifInput,
    *,
    model: str | kinetics.KineticModel = "btex",
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
    delay: str | None = None,
) -> FlowResult:
    """Pixel-wise kinetic parameter maps of one slice.

    Parameters
    ----------
    series : PerfusionSeries
        ``(t, y, x)`` in ``"gd_mmol_l"``, or ``"signal"`` with PD frames and readout metadata.
    aif : AifCurve or PerfusionSeries or sequence of PerfusionSeries
        The arterial input: a curve in mmol/L (blood or plasma), or the AIF images (one
        series per echo) from which the LV blood pool is found and converted.
    model : str or KineticModel
        A :mod:`qperf.kinetics` model name (``"btex"``, ``"fermi"``, ``"2cxm"``, ``"tofts"``,
        ``"extended_tofts"``) or any :class:`qperf.kinetics.KineticModel`.
    dt_s : float
        Step of the regular fitting grid, s.
    hematocrit : float
        For blood to plasma, and plasma flow to MBF.
    aif_kind : {"blood", "plasma"} or None
        What the AIF curve holds; None takes the curve's own ``kind``.
    mask : array_like of bool, (y, x), optional
        Pixels to fit (e.g. the myocardium); all pixels when None.
    max_delay_s : float
        Largest AIF-to-tissue delay searched, s.
    sequence, aif_sequence : SrSequence, optional
        Readouts of the series and of the AIF images when their metadata lack them.
    aif_method : str
        LV detector for AIF images (see :func:`qperf.aif.detect_lv`; "auto" by default).
    progress : callable(fraction, message), optional
    delay_mask : array_like of bool, (y, x), optional
        The pixels whose curves give the shared delay (e.g. the myocardium away from blood);
        the fitted pixels (``mask``) when None.
    fixed_delay_s : float, optional
        Every pixel fitted with this delay behind the AIF (s; a cubic spline between grid
        samples), e.g. one delay for all slices of a study; overrides ``delay`` and
        ``delay_mask``.
    delay : {"shared", "pixel"} or None
        ``"shared"``: one delay for every pixel, the one that fits the curves of
        ``delay_mask`` (:func:`qperf.flow.delay.curve_delay`). None (default): ``"shared"``
        when ``mask`` or ``delay_mask`` says where the tissue is, ``"pixel"`` otherwise (a
        delay shared by a whole image would follow its blood pools). ``"pixel"``: each pixel's own
        delay searched in whole grid samples in ``[0, max_delay_s]``, as the original
        look-up-table fit does. Per pixel, a stress flow is read 25 % high at 5 % noise (the
        later delay and higher flow fit the noise), and a delay between grid samples reads
        it up to 17 % high or low (``benchmarks/bench_delay.py``: 90th percentile of the
        error 22 % per pixel, 9 % shared).

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
    _check_options(series, aif_kind, hematocrit, dt_s, fixed_delay_s, max_delay_s)
    pixels = check_pixel_mask(mask, series.shape)
    fitted_model = kinetic_model(model)
    if delay is None:
        delay = "pixel" if mask is None and delay_mask is None else "shared"
    if delay not in ("shared", "pixel"):
        raise ValidationError(f"delay: expected 'shared' or 'pixel', found {delay!r}")
    if delay == "pixel" and delay_mask is not None:
        raise ValidationError("delay_mask: only for a shared delay (delay='shared'), found delay='pixel'")
    delay_pixels = None
    if delay == "shared":
        delay_pixels = (
            pixels if delay_mask is None else check_pixel_mask(delay_mask, series.shape, "delay_mask") & pixels
        )
        if not delay_pixels.any():
            raise ValidationError("delay_mask: expected pixels inside the fitted mask, found none")

    report(0.0, "converting to Gd")
    prep = prepare_curves(
        series, aif, pixels, dt_s, hematocrit, aif_kind, max_delay_s, sequence, aif_sequence, aif_method
    )
    report(0.2, f"fitting {fitted_model.name} to {prep.tissue.shape[0]} pixels")
    common = _common_delay(fitted_model, prep, pixels, delay_pixels, fixed_delay_s, max_delay_s, hematocrit)
    values, fit_status = _fit_pixels(fitted_model, prep, common, max_delay_s, hematocrit)
    report(0.95, "assembling maps")
    status = np.full(series.shape, STATUS_MASKED, dtype=np.int8)
    status[pixels] = fit_status
    tissue_full = np.zeros((prep.grid.size, *series.shape), dtype=np.float32)
    tissue_full[:, pixels] = prep.tissue.T.astype(np.float32)
    report(1.0, "done")
    return FlowResult(
        maps=_assemble_maps(values, pixels, prep.delay.shift_s, hematocrit),
        status=status,
        aif=AifCurve(prep.plasma, prep.grid, units="gd_mmol_l", kind="plasma"),
        time_s=prep.grid,
        tissue_mmol_l=tissue_full,
        model=fitted_model.name,
        landmarks=prep.landmarks,
        delay=prep.delay,
        aif_mask=prep.aif_mask,
        spacing_mm=series.spacing_mm,
        geometry=series.geometry,
    )
